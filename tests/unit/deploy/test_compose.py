"""deploy/compose.yaml holds together (no Docker engine runs here to try it): services,
start order, health checks, the shipped nginx config and valid gateway settings."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from broker.settings import ENV_PREFIX
from gateway.cli import build_parser as gateway_parser
from gateway.emulator.cli import build_parser as emulator_parser
from gateway.settings import GatewaySettings
from tests.support.nginx import (
    REPO,
    WEBLINK_CONF,
    WEBLINK_PATH,
    find_directives,
    parse_nginx_conf,
)
from tests.support.requirements import skip_or_fail

COMPOSE = REPO / "deploy" / "compose.yaml"
GATEWAYS = ("gateway-1", "gateway-2", "gateway-3")


def load_yaml(path: Path) -> Any:
    """Load a YAML file with PyYAML, failing under CI and skipping elsewhere if absent."""
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        message = "PyYAML is not installed: pip install pyyaml (the dev extra needs it)"
        skip_or_fail(message)
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = load_yaml(COMPOSE)
    assert isinstance(compose, dict)
    return dict(compose["services"])


def gateway_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service["environment"]
    assert isinstance(environment, dict), "use the mapping form of environment"
    return {str(name): str(value) for name, value in environment.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target path → source of each short-syntax volume (``source:target[:mode]``)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        found[target] = source
    return found


def test_compose_runs_rabbitmq_three_gateways_nginx_and_a_printer_fleet(services):
    """`docker compose up` starts RabbitMQ, gateway-1..3, nginx, the certificate job and printers."""
    assert set(services) == {"rabbitmq", *GATEWAYS, "certs", "nginx", "printers"}
    assert "management" in services["rabbitmq"]["image"]
    assert "15672:15672" in services["rabbitmq"]["ports"]


def test_gateways_build_the_repository_image_and_wait_for_rabbitmq(services):
    """Each gateway is built from the root Dockerfile and starts once RabbitMQ is healthy."""
    for name in GATEWAYS:
        gateway = services[name]
        assert gateway["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert gateway["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
        assert gateway["entrypoint"] == ["zebra-gateway"]


def test_every_long_running_service_has_a_healthcheck(services):
    """RabbitMQ, the gateways (zebra-gateway --check) and nginx report their health."""
    for name in ("rabbitmq", *GATEWAYS, "nginx"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert len(test) > 1, name
    for name in GATEWAYS:
        command = services[name]["healthcheck"]["test"][1:]
        assert command == ["zebra-gateway", "--check"]
        assert vars(gateway_parser().parse_args(command[1:]))["check"] is True
    assert "/healthz" in " ".join(services["nginx"]["healthcheck"]["test"])


def test_gateway_settings_are_real_settings_fields(services, monkeypatch):
    """Every ZEBRA_BROKER_* variable of a gateway names a GatewaySettings field and validates."""
    fields = set(GatewaySettings.model_fields)
    for name in GATEWAYS:
        environment = gateway_environment(services[name])
        for variable in environment:
            assert variable.startswith(ENV_PREFIX), variable
            assert variable.removeprefix(ENV_PREFIX).lower() in fields, variable
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        settings = GatewaySettings(_env_file=None)
        assert settings.replica == name
        assert settings.ws_path == WEBLINK_PATH
        for variable in environment:
            monkeypatch.delenv(variable)


def test_gateways_reach_rabbitmq_with_its_configured_user(services):
    """The gateways' AMQP URL points at the rabbitmq service with the user it creates."""
    rabbitmq_env = services["rabbitmq"]["environment"]
    for name in GATEWAYS:
        url = urlsplit(gateway_environment(services[name])["ZEBRA_BROKER_AMQP_URL"])
        assert url.hostname == "rabbitmq"
        assert url.username == rabbitmq_env["RABBITMQ_DEFAULT_USER"]
        assert url.password == rabbitmq_env["RABBITMQ_DEFAULT_PASS"]


def test_nginx_mounts_the_shipped_weblink_conf_and_proxies_to_the_gateways(services):
    """nginx loads deploy/nginx/weblink.conf, whose upstream lists gateway-1..3 on their port."""
    nginx = services["nginx"]
    volumes = mounts(nginx)
    (target,) = [t for t, s in volumes.items() if s.endswith("weblink.conf")]
    assert (COMPOSE.parent / volumes[target]).resolve() == WEBLINK_CONF
    assert target.startswith("/etc/nginx/conf.d/")
    assert target.endswith(".conf")
    conf = parse_nginx_conf(WEBLINK_CONF.read_text())
    (upstream,) = find_directives(conf, "upstream", "zebra_gateways")
    ports = {
        name: gateway_environment(services[name])["ZEBRA_BROKER_PORT"]
        for name in GATEWAYS
    }
    assert [d.args[0] for d in upstream.find("server")] == [
        f"{name}:{port}" for name, port in ports.items()
    ]
    assert set(nginx["depends_on"]) == {"certs", *GATEWAYS}


def test_nginx_reads_its_certificate_from_the_self_signed_volume(services):
    """The certs job writes tls.crt/tls.key into the volume nginx mounts where weblink.conf looks."""
    (server,) = find_directives(parse_nginx_conf(WEBLINK_CONF.read_text()), "server")
    certificate = Path(server.one("ssl_certificate").args[0])
    key = Path(server.one("ssl_certificate_key").args[0])
    assert certificate.parent == key.parent
    nginx_mounts = mounts(services["nginx"])
    volume = nginx_mounts[str(certificate.parent)]
    assert mounts(services["certs"]) == {"/tls": volume}
    script = services["certs"]["command"][0]
    assert f"/tls/{certificate.name}" in script
    assert f"/tls/{key.name}" in script
    assert services["nginx"]["depends_on"]["certs"] == {
        "condition": "service_completed_successfully"
    }


def test_printer_fleet_dials_nginx_over_tls_with_valid_emulator_flags(services):
    """20 emulated printers dial wss://nginx on the WebLink path, trusting the volume's cert."""
    printers = services["printers"]
    assert printers["entrypoint"] == ["zebra-printer-emulator"]
    args = emulator_parser().parse_args([str(a) for a in printers["command"]])
    assert args.count == 20
    url = urlsplit(args.url)
    assert (url.scheme, url.hostname, url.path) == ("wss", "nginx", WEBLINK_PATH)
    (cafile_dir,) = [t for t, s in mounts(printers).items() if s == "tls"]
    assert args.cafile == f"{cafile_dir}/tls.crt"
    assert printers["depends_on"]["nginx"] == {"condition": "service_healthy"}

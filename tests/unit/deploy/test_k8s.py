"""deploy/k8s: the properties an SRE checks first, read from the manifests, and the
real validators (kustomize, kubernetes-validate, the Gateway API schemas, nginx -t).

Two views of the manifests: the base's source files (always, needs only PyYAML),
and the example overlay as ``kubectl kustomize`` builds it (needs the tools that
``scripts/validate_deploy.sh install`` puts in build/deploy-tools). A missing tool
skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from broker.topology import Channel, Topology
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from tests.support.requirements import skip_or_fail

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
NGINX_COMPONENT = K8S / "components" / "nginx"
WEBLINK_CONF = REPO / "deploy" / "nginx" / "weblink.conf"
TOOLS = REPO / "build" / "deploy-tools"
VALIDATE_SCRIPT = REPO / "scripts" / "validate_deploy.sh"
#: Oldest and newest Kubernetes the manifests are validated against.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
#: Secrets the manifests use but do not create (TLS certificates of the site).
EXTERNAL_SECRETS = {"zebra-nginx-tls", "zebra-weblink-tls"}
#: Measured gateway memory (docs/operations.md, "Sizing"): at rest, per printer.
MEASURED_BASE_MIB = 45
MEASURED_PER_PRINTER_KIB = 60
SERIAL = "50J161000398"


# -- helpers -----------------------------------------------------------------------


def yaml_module() -> Any:
    """PyYAML, failing under CI and skipping elsewhere if it is not installed."""
    try:
        return importlib.import_module("yaml")
    except ImportError:
        message = "PyYAML is not installed: pip install pyyaml (the dev extra needs it)"
        skip_or_fail(message)


def require_tool(
    name: str, hint: str = "run scripts/validate_deploy.sh install"
) -> str:
    """A tool from build/deploy-tools or PATH; skip (fail under CI) if missing."""
    for candidate in (TOOLS / "bin" / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    message = f"{name} is not installed: {hint}"
    skip_or_fail(message)


def run(
    *command: str, cwd: Path = REPO, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, **kwargs
    )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize's ``envs:`` reads them (comments skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key] = value
    return values


def generated(kind: str, generator: dict[str, Any], root: Path) -> dict[str, Any]:
    """A ConfigMap or Secret from a kustomize generator (name without hash suffix)."""
    data: dict[str, str] = {}
    for env in generator.get("envs", []):
        data.update(read_env_file(root / env))
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for entry in generator.get("files", []):
        key, _, source = entry.partition("=")
        source = source or key
        data[Path(key).name] = (root / source).read_text()
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": generator["name"]},
        "data": data,
    }


def load_kustomization(root: Path) -> list[dict[str, Any]]:
    """The resources and generated objects of a kustomization, without patches.

    Enough to check the source files; what kustomize really builds is checked
    against ``kubectl kustomize`` output in the tests that need the tool.
    """
    yaml = yaml_module()
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = root / resource
        if path.is_dir():
            documents.extend(load_kustomization(path))
        else:
            documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for component in kustomization.get("components", []):
        documents.extend(load_kustomization(root / component))
    for generator in kustomization.get("configMapGenerator", []):
        documents.append(generated("ConfigMap", generator, root))
    for generator in kustomization.get("secretGenerator", []):
        documents.append(generated("Secret", generator, root))
    return documents


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` named ``name`` (a hash suffix is allowed)."""
    found = [
        d
        for d in documents
        if d["kind"] == kind
        and re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
    ]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [
        c
        for c in deployment["spec"]["template"]["spec"]["containers"]
        if c["name"] == name
    ]
    return dict(found)


def quantity_mib(value: str) -> float:
    """A Kubernetes memory quantity (Mi, Gi, M, G or bytes) in MiB."""
    units = {
        "Ki": 1 / 1024,
        "Mi": 1.0,
        "Gi": 1024.0,
        "M": 1e6 / 2**20,
        "G": 1e9 / 2**20,
    }
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|M|G)?", value)
    assert match is not None, value
    return float(match[1]) * (units[match[2]] if match[2] else 1 / 2**20)


def prestop_seconds(container_spec: dict[str, Any]) -> int:
    """The preStop pause: ``exec: sleep N`` or the native ``sleep`` action."""
    pre_stop = container_spec["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return load_kustomization(BASE)


@pytest.fixture(scope="module")
def gateway_env() -> dict[str, str]:
    return read_env_file(BASE / "gateway" / "gateway.env")


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    """The example overlay as kubectl kustomize builds it."""
    kubectl = require_tool("kubectl")
    result = run(
        kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(OVERLAY)
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml_module().safe_load_all(result.stdout) if d]


@pytest.fixture(params=["source", "built"])
def manifests(
    request: pytest.FixtureRequest, base: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Both views: the base's files, and the built overlay."""
    if request.param == "source":
        return base
    return list(request.getfixturevalue("built"))


@pytest.fixture
def gateway_deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return find(manifests, "Deployment", "zebra-gateway")


@pytest.fixture
def gateway_container(gateway_deployment: dict[str, Any]) -> dict[str, Any]:
    return container(gateway_deployment, "gateway")


# -- settings ----------------------------------------------------------------------


def test_config_map_holds_valid_gateway_settings(
    gateway_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ZEBRA_BROKER_* line names a gateway setting and validates."""
    fields = {f"ZEBRA_BROKER_{name.upper()}" for name in GatewaySettings.model_fields}
    assert set(gateway_env) <= fields, set(gateway_env) - fields
    assert "ZEBRA_BROKER_AMQP_URL" not in gateway_env, (
        "credentials belong in the Secret"
    )
    for key, value in gateway_env.items():
        monkeypatch.setenv(key, value)
    settings = GatewaySettings()
    assert settings.ws_path == "/zebra/weblink/"
    assert settings.log_format == "json"


def test_amqp_secret_points_at_the_rabbitmq_cluster(base: list[dict[str, Any]]) -> None:
    """The example AMQP URL names the RabbitmqCluster's Service, AMQP port and vhost."""
    url = read_env_file(OVERLAY / "gateway-amqp.env")["ZEBRA_BROKER_AMQP_URL"]
    parts = urlsplit(url)
    cluster = find(base, "RabbitmqCluster", "zebra-rabbitmq")
    assert parts.scheme == "amqp"
    assert parts.hostname == cluster["metadata"]["name"]
    assert parts.port == 5672
    definitions = json.loads((BASE / "rabbitmq" / "definitions.json").read_text())
    assert parts.path.lstrip("/") in {v["name"] for v in definitions["vhosts"]}


# -- the gateway Deployment ----------------------------------------------------------


def test_probes_use_the_gateway_endpoints_on_its_port(
    gateway_container: dict[str, Any], gateway_env: dict[str, str]
) -> None:
    """Liveness /healthz, readiness /readyz, startup /healthz, all on the WebLink port."""
    ports = {p["name"]: p["containerPort"] for p in gateway_container["ports"]}
    assert ports == {"weblink": int(gateway_env["ZEBRA_BROKER_PORT"])}
    expected = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in expected.items():
        http_get = gateway_container[probe]["httpGet"]
        assert http_get["path"] == path, probe
        assert http_get["port"] in ("weblink", ports["weblink"]), probe


def test_liveness_tolerates_a_busy_loop(gateway_container: dict[str, Any]) -> None:
    """Liveness gives a loop busy with a reconnect storm at least 30 s."""
    liveness = gateway_container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30
    assert liveness["timeoutSeconds"] >= 3


def test_grace_period_covers_prestop_and_drain(
    gateway_deployment: dict[str, Any],
    gateway_container: dict[str, Any],
    gateway_env: dict[str, str],
) -> None:
    """terminationGracePeriodSeconds > preStop + shutdown timeout + grace period."""
    grace = gateway_deployment["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    pre_stop = prestop_seconds(gateway_container)
    drain = float(gateway_env["ZEBRA_BROKER_SHUTDOWN_TIMEOUT"])
    spread = float(gateway_env["ZEBRA_BROKER_SHUTDOWN_GRACE_PERIOD"])
    assert pre_stop >= 5, "endpoints need a few seconds to be removed everywhere"
    assert grace >= pre_stop + drain + spread + 10, (grace, pre_stop, drain, spread)


def test_runs_as_the_image_user_with_a_read_only_root(
    gateway_deployment: dict[str, Any], gateway_container: dict[str, Any]
) -> None:
    """Non-root (the Dockerfile's UID), read-only root, no privilege, no token."""
    pod = gateway_deployment["spec"]["template"]["spec"]
    dockerfile_user = re.findall(
        r"^USER\s+(\d+)", (REPO / "Dockerfile").read_text(), re.M
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user[-1]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = gateway_container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


def test_replica_name_is_the_pod_name(gateway_container: dict[str, Any]) -> None:
    """ZEBRA_BROKER_REPLICA comes from metadata.name (management UI, presence)."""
    env = {e["name"]: e for e in gateway_container.get("env", [])}
    field = env["ZEBRA_BROKER_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.name"


def test_three_replicas_spread_over_nodes_and_zones(
    gateway_deployment: dict[str, Any],
) -> None:
    """3 replicas; spread by hostname (hard) and zone (soft), never more than one down."""
    spec = gateway_deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_labels = spec["template"]["metadata"]["labels"]
    constraints = {
        c["topologyKey"]: c
        for c in spec["template"]["spec"]["topologySpreadConstraints"]
    }
    assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert (
        constraints["topology.kubernetes.io/zone"]["whenUnsatisfiable"]
        == "ScheduleAnyway"
    )
    for constraint in constraints.values():
        selector = constraint["labelSelector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert constraint["maxSkew"] == 1


def test_memory_is_sized_from_the_measured_figures(
    manifests: list[dict[str, Any]], gateway_container: dict[str, Any]
) -> None:
    """The memory limit holds twice the measured need at the autoscaler's target."""
    hpa = find(manifests, "HorizontalPodAutoscaler", "zebra-gateway")
    target = int(hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"])
    need_mib = MEASURED_BASE_MIB + target * MEASURED_PER_PRINTER_KIB / 1024
    resources = gateway_container["resources"]
    assert quantity_mib(resources["requests"]["memory"]) >= need_mib
    assert quantity_mib(resources["limits"]["memory"]) >= 2 * need_mib
    assert "cpu" in resources["requests"]


def test_config_and_secret_are_loaded(gateway_container: dict[str, Any]) -> None:
    """Settings from the ConfigMap, the AMQP URL from the Secret."""
    sources = gateway_container["envFrom"]
    names = {
        kind: source[kind]["name"]
        for source in sources
        for kind in ("configMapRef", "secretRef")
        if kind in source
    }
    assert names["configMapRef"].startswith("zebra-gateway-config")
    assert names["secretRef"].startswith("zebra-gateway-amqp")


def test_prometheus_annotations_name_the_metrics_port(
    gateway_deployment: dict[str, Any], gateway_container: dict[str, Any]
) -> None:
    """The scrape annotations point at the port that serves /metrics."""
    annotations = gateway_deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert (
        int(annotations["prometheus.io/port"])
        == gateway_container["ports"][0]["containerPort"]
    )


# -- Service, PDB, HPA, NetworkPolicy --------------------------------------------------


def test_service_selects_the_gateway_pods(
    manifests: list[dict[str, Any]], gateway_deployment: dict[str, Any]
) -> None:
    """The Service targets the named WebLink port of the gateway pods."""
    service = find(manifests, "Service", "zebra-gateway")
    pod_labels = gateway_deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "weblink"
    assert port["port"] == 8080


def test_pod_disruption_budget_never_blocks_a_drain(
    manifests: list[dict[str, Any]], gateway_deployment: dict[str, Any]
) -> None:
    """maxUnavailable 1 (not minAvailable), unhealthy pods always evictable."""
    pdb = find(manifests, "PodDisruptionBudget", "zebra-gateway")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    pod_labels = gateway_deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_autoscaler_scales_on_connected_printers_slowly_down(
    manifests: list[dict[str, Any]],
) -> None:
    """autoscaling/v2 on the printers-connected gauge; scale-down waits 10 minutes."""
    hpa = find(manifests, "HorizontalPodAutoscaler", "zebra-gateway")
    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "zebra-gateway",
    }
    assert spec["minReplicas"] >= 3
    assert spec["maxReplicas"] > spec["minReplicas"]
    (metric,) = spec["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    exported = Metrics(process_metrics=False).render()[0].decode()
    assert re.search(rf"^# TYPE {name} gauge$", exported, re.M), name
    assert metric["pods"]["target"]["type"] == "AverageValue"
    down = spec["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 600
    for policy in down["policies"]:
        assert policy == {"type": "Pods", "value": 1, "periodSeconds": 600}
    up = spec["behavior"]["scaleUp"]
    assert up["stabilizationWindowSeconds"] < down["stabilizationWindowSeconds"]


def test_network_policy_opens_only_the_gateway_port_and_rabbitmq(
    manifests: list[dict[str, Any]],
) -> None:
    """Ingress only to 8080 from named sources; egress only AMQP and DNS."""
    policy = find(manifests, "NetworkPolicy", "zebra-gateway")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "zebra-gateway"
    }
    sources = []
    for rule in policy["ingress"]:
        assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
        assert rule["from"], "an ingress rule without sources opens the port to all"
        sources.extend(rule["from"])
    assert {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "zebra-nginx"}}
    } in sources
    egress_ports = sorted(
        (port["protocol"], port["port"])
        for rule in policy["egress"]
        for port in rule["ports"]
    )
    assert egress_ports == [("TCP", 53), ("TCP", 5672), ("UDP", 53)]
    (amqp,) = [r for r in policy["egress"] if r["ports"][0]["port"] == 5672]
    assert amqp["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "zebra-rabbitmq"}}}
    ]


# -- RabbitMQ ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    return dict(json.loads((BASE / "rabbitmq" / "definitions.json").read_text()))


@pytest.fixture(scope="module")
def users() -> dict[str, Any]:
    return dict(json.loads((OVERLAY / "rabbitmq-users.json").read_text()))


def permissions(definitions: dict[str, Any], user: str) -> dict[str, re.Pattern[str]]:
    (entry,) = [p for p in definitions["permissions"] if p["user"] == user]
    return {kind: re.compile(entry[kind]) for kind in ("configure", "write", "read")}


def allowed(pattern: re.Pattern[str], resource: str) -> bool:
    """RabbitMQ matches permission patterns unanchored (re:run), like re.search."""
    return pattern.search(resource) is not None


def test_rabbitmq_cluster_imports_the_definitions(base: list[dict[str, Any]]) -> None:
    """Three nodes; load_definitions is the folder the override mounts both files in."""
    cluster = find(base, "RabbitmqCluster", "zebra-rabbitmq")
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    assert cluster["spec"]["replicas"] == 3
    config = cluster["spec"]["rabbitmq"]["additionalConfig"]
    folder = re.search(r"^load_definitions\s*=\s*(\S+)", config, re.M)
    assert folder is not None
    pod = cluster["spec"]["override"]["statefulSet"]["spec"]["template"]["spec"]
    (rabbitmq,) = pod["containers"]
    assert rabbitmq["name"] == "rabbitmq"
    mounts = {m["name"]: m for m in rabbitmq["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = sorted(m["mountPath"] for m in mounts.values())
    assert files == [
        f"{folder[1]}/01-users.json",
        f"{folder[1]}/02-definitions.json",
    ], "users first: the permissions refer to them"
    definitions_map = volumes["zebra-definitions"]["configMap"]["name"]
    assert find(base, "ConfigMap", definitions_map)["data"]["definitions.json"]
    assert volumes["zebra-users"]["secret"]["secretName"] == "zebra-rabbitmq-users"


def test_printer_queue_policy_matches_the_gateway_queues(
    definitions: dict[str, Any], gateway_env: dict[str, str]
) -> None:
    """The policy applies to printer queues only, with the gateway's own arguments."""
    (policy,) = definitions["policies"]
    topology = Topology(namespace=gateway_env["ZEBRA_BROKER_NAMESPACE"])
    pattern = re.compile(policy["pattern"])
    assert policy["pattern"] == r"^zebra\.printer\."
    for channel in Channel:
        assert pattern.search(topology.printer_queue(SERIAL, channel))
    for other in (
        topology.dead_letter_queue,
        topology.replicas_queue,
        topology.control_queue("gw-1"),
    ):
        assert not pattern.search(other), other
    arguments = topology.printer_queue_spec(SERIAL, Channel.RAW).arguments
    assert policy["apply-to"] == "queues"
    assert policy["definition"]["max-length"] == int(
        gateway_env["ZEBRA_BROKER_QUEUE_MAX_LENGTH"]
    )
    assert policy["definition"]["overflow"] == arguments["x-overflow"]
    assert (
        policy["definition"]["dead-letter-exchange"]
        == arguments["x-dead-letter-exchange"]
    )


def test_gateway_user_may_run_the_gateway(definitions: dict[str, Any]) -> None:
    """The gateway user owns the zebra.* topology and replies via the default exchange."""
    topology = Topology()
    rights = permissions(definitions, "zebra-gateway")
    printer_queue = topology.printer_queue(SERIAL, Channel.RAW)
    for name in (
        printer_queue,
        topology.control_queue("gw-1"),
        topology.dead_letter_queue,
    ):
        assert allowed(rights["configure"], name)
        assert allowed(rights["read"], name)
    for exchange in (
        topology.events_exchange,
        topology.control_exchange,
        "amq.default",
    ):
        assert allowed(rights["write"], exchange)
    assert not allowed(rights["configure"], "other-app.queue")


def test_producer_user_publishes_requests_and_reads_only_its_own(
    definitions: dict[str, Any],
) -> None:
    """label-service: publish to zebra.requests, read events and its own queues only."""
    topology = Topology()
    rights = permissions(definitions, "label-service")
    assert allowed(rights["write"], topology.requests_exchange)
    assert allowed(rights["write"], topology.presence_exchange)
    assert not allowed(rights["write"], topology.control_exchange)
    assert not allowed(rights["write"], topology.events_exchange)
    assert not allowed(rights["write"], "amq.default")
    assert allowed(rights["read"], topology.events_exchange)
    assert allowed(rights["read"], "label-service.replies")
    assert allowed(rights["read"], "zebra.watch.0123456789abcdef")
    for printer_queue in (
        topology.printer_queue(SERIAL, Channel.RAW),
        topology.printer_queue(SERIAL, Channel.CONFIG),
    ):
        assert not allowed(rights["read"], printer_queue)
        assert not allowed(rights["configure"], printer_queue)
    assert not allowed(rights["read"], topology.dead_letter_queue)
    assert not allowed(rights["configure"], "other-service.replies")


def test_every_permission_names_a_user_and_the_vhost(
    definitions: dict[str, Any], users: dict[str, Any]
) -> None:
    """Permissions refer to defined users and the defined vhost."""
    vhosts = {v["name"] for v in definitions["vhosts"]}
    names = {u["name"] for u in users["users"]}
    for permission in definitions["permissions"]:
        assert permission["vhost"] in vhosts
        assert permission["user"] in names
    admins = [u for u in users["users"] if "administrator" in u["tags"]]
    assert admins, "someone must be able to log in to the management UI"


def test_example_password_matches_its_hash(users: dict[str, Any]) -> None:
    """The gateway's example URL logs in: its password hashes to users.json's hash."""
    url = urlsplit(read_env_file(OVERLAY / "gateway-amqp.env")["ZEBRA_BROKER_AMQP_URL"])
    (user,) = [u for u in users["users"] if u["name"] == url.username]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    salted = base64.b64decode(user["password_hash"])
    salt, digest = salted[:4], salted[4:]
    assert url.password is not None
    assert hashlib.sha256(salt + url.password.encode()).digest() == digest


# -- exposure ------------------------------------------------------------------------


def test_http_route_sends_the_weblink_path_to_the_gateway(
    built: list[dict[str, Any]], gateway_env: dict[str, str]
) -> None:
    """Exact ZEBRA_BROKER_WS_PATH to the zebra-gateway Service, from the Gateway's HTTPS listener."""
    route = find(built, "HTTPRoute", "zebra-weblink")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    (match,) = rule["matches"]
    assert match["path"] == {
        "type": "Exact",
        "value": gateway_env["ZEBRA_BROKER_WS_PATH"],
    }
    (backend,) = rule["backendRefs"]
    service = find(built, "Service", backend["name"])
    assert backend["port"] in [p["port"] for p in service["spec"]["ports"]]
    assert rule["timeouts"]["request"] == "0s", "a printer socket lives for days"
    (parent,) = route["spec"]["parentRefs"]
    gateway = find(built, "Gateway", parent["name"])
    listener = {item["name"]: item for item in gateway["spec"]["listeners"]}[
        parent["sectionName"]
    ]
    assert listener["protocol"] == "HTTPS"
    assert listener["hostname"] in route["spec"]["hostnames"]


def test_nginx_runs_the_shipped_weblink_conf(built: list[dict[str, Any]]) -> None:
    """The nginx ConfigMap holds deploy/nginx/weblink.conf byte for byte."""
    config_map = find(built, "ConfigMap", "zebra-nginx")
    assert config_map["data"]["weblink.conf"] == WEBLINK_CONF.read_text()
    deployment = find(built, "Deployment", "zebra-nginx")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    sysctls = {s["name"]: s["value"] for s in pod["securityContext"]["sysctls"]}
    assert sysctls == {"net.ipv4.ip_unprivileged_port_start": "0"}
    (init,) = pod["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    host, _, port = env["GATEWAY_UPSTREAM"].partition(":")
    service = find(built, "Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]


def test_rendering_changes_only_the_upstream_servers(tmp_path: Path) -> None:
    """render-weblink-conf.sh swaps the marked upstream servers and nothing else."""
    target = tmp_path / "weblink.conf"
    result = run(
        "sh",
        str(NGINX_COMPONENT / "render-weblink-conf.sh"),
        env={
            **os.environ,
            "WEBLINK_CONF_SOURCE": str(WEBLINK_CONF),
            "WEBLINK_CONF_TARGET": str(target),
            "GATEWAY_UPSTREAM": "zebra-gateway:8080",
        },
    )
    assert result.returncode == 0, result.stderr
    original = WEBLINK_CONF.read_text().splitlines()
    rendered = target.read_text().splitlines()
    begin = next(
        i for i, line in enumerate(original) if "# upstream-servers: begin" in line
    )
    end = next(
        i for i, line in enumerate(original) if "# upstream-servers: end" in line
    )
    assert rendered[: begin + 1] == original[: begin + 1]
    assert rendered[begin + 1].strip() == "server zebra-gateway:8080;"
    assert rendered[begin + 2 :] == original[end:]


def test_rendering_refuses_a_file_without_markers(tmp_path: Path) -> None:
    """A weblink.conf without the markers fails the init container, loudly."""
    source = tmp_path / "plain.conf"
    source.write_text("upstream u { server a:1; }\n")
    result = run(
        "sh",
        str(NGINX_COMPONENT / "render-weblink-conf.sh"),
        env={
            **os.environ,
            "WEBLINK_CONF_SOURCE": str(source),
            "WEBLINK_CONF_TARGET": str(tmp_path / "out.conf"),
            "GATEWAY_UPSTREAM": "zebra-gateway:8080",
        },
    )
    assert result.returncode != 0
    assert "markers" in result.stderr


@pytest.fixture
def nginx_tree(tmp_path: Path) -> Path:
    """The pod's /etc/nginx, rebuilt in a temporary directory with a test certificate."""
    openssl = require_tool("openssl", "apt-get install openssl")
    tls = tmp_path / "tls"
    conf_d = tmp_path / "conf.d"
    scratch = tmp_path / "tmp"
    for directory in (tls, conf_d, scratch):
        directory.mkdir()
    made = run(
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=zebra-test", "-keyout", str(tls / "tls.key"), "-out", str(tls / "tls.crt"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    rendered = run(
        "sh",
        str(NGINX_COMPONENT / "render-weblink-conf.sh"),
        env={
            **os.environ,
            "WEBLINK_CONF_SOURCE": str(WEBLINK_CONF),
            "WEBLINK_CONF_TARGET": str(conf_d / "weblink.conf"),
            # nginx -t resolves upstream names: use an address here.
            "GATEWAY_UPSTREAM": "127.0.0.1:8080",
        },
    )
    assert rendered.returncode == 0, rendered.stderr
    weblink = (
        (conf_d / "weblink.conf").read_text().replace("/etc/nginx/tls/", f"{tls}/")
    )
    (conf_d / "weblink.conf").write_text(weblink)
    main = (NGINX_COMPONENT / "nginx.conf").read_text()
    main = main.replace("/tmp/", f"{scratch}/").replace(
        "/etc/nginx/conf.d/", f"{conf_d}/"
    )
    (tmp_path / "nginx.conf").write_text(main)
    return tmp_path


def test_nginx_accepts_the_pod_configuration(nginx_tree: Path) -> None:
    """nginx -t passes on the component's nginx.conf with the rendered weblink.conf."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()),
        None,
    )
    if nginx is None:
        message = "nginx is not installed: run scripts/nginx.sh"
        skip_or_fail(message)
    result = run(
        nginx, "-t", "-p", str(nginx_tree), "-c", str(nginx_tree / "nginx.conf")
    )
    assert result.returncode == 0, result.stderr


# -- the built overlay and the real validators -------------------------------------------


def test_overlay_puts_everything_in_one_namespace(built: list[dict[str, Any]]) -> None:
    """Every namespaced object lands in the overlay's namespace; the image is rewritten."""
    for document in built:
        if document["kind"] == "Namespace":
            assert document["metadata"]["name"] == "zebra"
            continue
        assert document["metadata"].get("namespace") == "zebra", document["metadata"]
    image = container(find(built, "Deployment", "zebra-gateway"), "gateway")["image"]
    assert image == "registry.example.com/zebra/zebra-weblink-broker:0.1.0"


def references(node: Any) -> Iterator[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a manifest refers to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if (
                key in ("configMap", "configMapRef", "configMapKeyRef")
                and "name" in value
            ):
                yield "ConfigMap", value["name"]
            elif key in ("secretRef", "secretKeyRef") and "name" in value:
                yield "Secret", value["name"]
            elif key == "secret" and "secretName" in value:
                yield "Secret", value["secretName"]
            yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def test_every_reference_resolves(built: list[dict[str, Any]]) -> None:
    """Each ConfigMap and Secret a pod or the RabbitmqCluster names exists in the build."""
    names = {(d["kind"], d["metadata"]["name"]) for d in built}
    referenced = set(references(built))
    assert {kind for kind, _ in referenced} == {"ConfigMap", "Secret"}
    for kind, name in referenced:
        if kind == "Secret" and name in EXTERNAL_SECRETS:
            continue
        assert (kind, name) in names, (kind, name)


def test_base_builds_with_default_load_restrictions() -> None:
    """The base needs no relaxed loader; the nginx component does (weblink.conf)."""
    kubectl = require_tool("kubectl")
    assert run(kubectl, "kustomize", str(BASE)).returncode == 0
    strict = run(kubectl, "kustomize", str(OVERLAY))
    assert strict.returncode != 0
    assert "security" in strict.stderr
    assert "weblink.conf" in strict.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(
    version: str, built: list[dict[str, Any]], tmp_path: Path
) -> None:
    """kubernetes-validate --strict accepts every built object it has a schema for."""
    validator = require_tool("kubernetes-validate")
    output = tmp_path / "example.yaml"
    output.write_text(yaml_module().safe_dump_all(built))
    result = run(validator, "--strict", "--quiet", "-k", version, str(output))
    assert result.returncode == 0, result.stdout + result.stderr
    # Custom resources without a packaged schema are reported, not silently passed.
    skipped = set(
        re.findall(
            r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr
        )
    )
    assert skipped <= {"RabbitmqCluster", "Gateway", "HTTPRoute"}, skipped


def test_gateway_api_objects_validate_against_their_schemas(
    built: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The Gateway and HTTPRoute match the Gateway API schemas (npm package)."""
    models = TOOLS / "node" / "node_modules" / "@kubernetes-models" / "gateway-api"
    if not models.is_dir() or shutil.which("node") is None:
        message = "Gateway API schemas are not installed: run scripts/validate_deploy.sh install"
        skip_or_fail(message)
    output = tmp_path / "example.yaml"
    output.write_text(yaml_module().safe_dump_all(built))
    result = run("bash", str(VALIDATE_SCRIPT), "gateway-api", str(output))
    assert result.returncode == 0, result.stderr
    assert "2 valid, 0 invalid" in result.stderr

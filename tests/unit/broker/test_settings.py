"""Client settings: precedence (flags > env > .env > defaults) and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import ConfigurationError
from broker.settings import ClientSettings, load_settings


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, so no developer .env is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("workdir")
def test_defaults() -> None:
    """Without flags, variables or .env, the documented defaults apply."""
    settings = load_settings(ClientSettings)
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.namespace == "zebra"
    assert settings.request_timeout == 30.0
    assert settings.queue_max_length == 10_000
    assert settings.queue_type == "classic"


def test_precedence(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword arguments beat variables, which beat .env, which beats defaults."""
    (workdir / ".env").write_text(
        "ZEBRA_BROKER_NAMESPACE=fromdotenv\nZEBRA_BROKER_REQUEST_TIMEOUT=7\n"
        "ZEBRA_BROKER_QUEUE_TYPE=quorum\n"
    )
    monkeypatch.setenv("ZEBRA_BROKER_NAMESPACE", "fromenv")
    monkeypatch.setenv("ZEBRA_BROKER_REQUEST_TIMEOUT", "9")
    settings = load_settings(ClientSettings, namespace="fromflag")
    assert settings.namespace == "fromflag"
    assert settings.request_timeout == 9.0
    assert settings.queue_type == "quorum"


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"namespace": "a.b"}, "--namespace / ZEBRA_BROKER_NAMESPACE"),
        ({"amqp_url": "http://x/"}, "--amqp-url / ZEBRA_BROKER_AMQP_URL"),
        ({"request_timeout": 0}, "--request-timeout / ZEBRA_BROKER_REQUEST_TIMEOUT"),
        ({"queue_type": "lazy"}, "--queue-type / ZEBRA_BROKER_QUEUE_TYPE"),
        ({"queue_max_length": 0}, "--queue-max-length / ZEBRA_BROKER_QUEUE_MAX_LENGTH"),
    ],
)
def test_errors_name_flag_and_variable(
    overrides: dict[str, object], names: str
) -> None:
    """A bad value is one ConfigurationError naming the flag and the variable."""
    with pytest.raises(ConfigurationError, match="invalid settings") as caught:
        load_settings(ClientSettings, **overrides)
    assert names in str(caught.value)


@pytest.mark.usefixtures("workdir")
def test_bad_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad variable is reported like a bad flag."""
    monkeypatch.setenv("ZEBRA_BROKER_NAMESPACE", "has space")
    with pytest.raises(ConfigurationError, match="ZEBRA_BROKER_NAMESPACE"):
        load_settings(ClientSettings)


@pytest.mark.usefixtures("workdir")
def test_url_for_logs_hides_credentials() -> None:
    """Logs show host, port and vhost, never the password."""
    settings = load_settings(
        ClientSettings, amqp_url="amqps://user:s3cret@mq.example:5671/prod"
    )
    assert settings.amqp_url_for_logs == "amqps://mq.example:5671/prod"
    assert "s3cret" not in repr(settings)


@pytest.mark.usefixtures("workdir")
def test_topology_follows_settings() -> None:
    """The settings' topology uses its namespace and queue arguments."""
    settings = load_settings(
        ClientSettings, namespace="acme", queue_max_length=5, queue_type="quorum"
    )
    topology = settings.topology
    assert (topology.namespace, topology.queue_max_length, topology.queue_type) == (
        "acme",
        5,
        "quorum",
    )

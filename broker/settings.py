"""Settings shared by every process, read from flags, ``ZEBRA_BROKER_*`` variables and
an optional ``.env`` file, in that order of precedence."""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.errors import ConfigurationError
from broker.topology import NAMESPACE_PATTERN, Topology

ENV_PREFIX = "ZEBRA_BROKER_"

SettingsT = TypeVar("SettingsT", bound="BaseBrokerSettings")


class BaseBrokerSettings(BaseSettings):
    """Settings every process needs: where RabbitMQ is, the namespace, logging."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="forbid", frozen=True
    )

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="RabbitMQ URL (amqp:// or amqps://); logs show host and vhost only",
    )
    namespace: str = Field(
        "zebra", description="prefix of every exchange and queue name"
    )
    queue_max_length: int = Field(
        10_000, ge=1, description="x-max-length of each printer queue (requests)"
    )
    queue_type: Literal["classic", "quorum"] = Field(
        "classic", description="x-queue-type of printer queues"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="minimum log level"
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="json lines, console lines, or auto (console on a TTY)"
    )

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not NAMESPACE_PATTERN.fullmatch(value):
            raise ValueError("only [A-Za-z0-9_-]{1,64} is allowed")
        return value

    @field_validator("amqp_url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        if urlsplit(value.get_secret_value()).scheme not in ("amqp", "amqps"):
            raise ValueError("must start with amqp:// or amqps://")
        return value

    @property
    def topology(self) -> Topology:
        return Topology(
            namespace=self.namespace,
            queue_max_length=self.queue_max_length,
            queue_type=self.queue_type,
        )

    @property
    def amqp_url_for_logs(self) -> str:
        """The AMQP URL without credentials."""
        parts = urlsplit(self.amqp_url.get_secret_value())
        return (
            f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}{parts.path or '/'}"
        )


class ClientSettings(BaseBrokerSettings):
    """Settings of the client library and the ``zebra-broker`` CLI."""

    request_timeout: float = Field(
        30.0, gt=0, description="seconds the CLI waits for an outcome"
    )


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings, turning validation errors into one ``ConfigurationError``.

    The message names the flag and the environment variable of each bad field.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            flag = "--" + name.replace("_", "-")
            problems.append(f"{flag} / {ENV_PREFIX}{name.upper()}: {error['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from exc

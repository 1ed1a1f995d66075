"""The gateway's Prometheus metrics (``gateway/metrics.py``, docs/operations.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.schemas import JobStatus, RequestType
from gateway.metrics import (
    CONTENT_TYPE,
    DECLARE_BUCKETS,
    REQUEST_BUCKETS,
    Metrics,
    code_label,
    publish_time,
    status_label,
    type_label,
)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("gw-1", process_metrics=False)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class TestPrintersAndSockets:
    """Gauges of printers and sockets, and counters of handshakes and closes."""

    def test_printers_connected_follows_online_and_offline(
        self, metrics: Metrics
    ) -> None:
        """printer_online/offline move the gauge the HPA scales on."""
        assert value(metrics, "zebra_gateway_printers_connected") == 0
        metrics.printer_online()
        metrics.printer_online()
        metrics.printer_offline()
        assert value(metrics, "zebra_gateway_printers_connected") == 1
        assert metrics.printers_connected == 1

    def test_gauges_never_go_negative(self, metrics: Metrics) -> None:
        """An unmatched offline, close or stop leaves the gauge at zero."""
        metrics.printer_offline()
        metrics.socket_closed("raw", 1000)
        metrics.consumer_stopped("config")
        assert value(metrics, "zebra_gateway_printers_connected") == 0
        assert value(metrics, "zebra_gateway_sockets_open", channel="raw") == 0
        assert value(metrics, "zebra_gateway_consumers", channel="config") == 0
        metrics.printer_online()
        assert metrics.printers_connected == 1

    def test_sockets_by_channel(self, metrics: Metrics) -> None:
        """Each channel has its own gauge; a close counts its code."""
        for channel in ("main", "raw", "raw", "config"):
            metrics.socket_opened(channel)
        metrics.socket_closed("raw", 1001)
        assert value(metrics, "zebra_gateway_sockets_open", channel="main") == 1
        assert value(metrics, "zebra_gateway_sockets_open", channel="raw") == 1
        assert value(metrics, "zebra_gateway_sockets_open", channel="config") == 1
        assert metrics.sockets_open("raw") == 1
        assert (
            value(
                metrics, "zebra_gateway_socket_closes_total", channel="raw", code="1001"
            )
            == 1
        )

    def test_channel_enum_values_are_accepted(self, metrics: Metrics) -> None:
        """ChannelKind members (StrEnum) count like their string values."""
        from gateway.weblink import ChannelKind

        metrics.socket_opened(ChannelKind.CONFIG)
        assert metrics.sockets_open("config") == 1

    def test_unknown_channel_is_other(self, metrics: Metrics) -> None:
        """A channel name outside main/raw/config cannot create new series."""
        metrics.socket_opened("bogus")
        assert metrics.sockets_open("other") == 1
        assert value(metrics, "zebra_gateway_sockets_open", channel="bogus") is None

    def test_handshakes_by_result(self, metrics: Metrics) -> None:
        """Accepted and rejected handshakes are counted apart, both from zero."""
        assert value(metrics, "zebra_gateway_handshakes_total", result="rejected") == 0
        metrics.handshake(accepted=True)
        metrics.handshake(accepted=True)
        metrics.handshake(accepted=False)
        assert value(metrics, "zebra_gateway_handshakes_total", result="accepted") == 2
        assert value(metrics, "zebra_gateway_handshakes_total", result="rejected") == 1


class TestCloseCodes:
    """Close codes stay a small closed set of label values."""

    @pytest.mark.parametrize(
        ("code", "label"),
        [
            (1000, "1000"),
            (1001, "1001"),
            (1006, "1006"),
            (4999, "4999"),
            (None, "none"),
            (999, "other"),
            (5000, "other"),
            (0, "other"),
        ],
    )
    def test_code_label(self, code: int | None, label: str) -> None:
        """Codes 1000-4999 are kept; none and out-of-range codes are grouped."""
        assert code_label(code) == label

    def test_close_without_code(self, metrics: Metrics) -> None:
        """A socket that ended without a close code counts as code none."""
        metrics.socket_opened("main")
        metrics.socket_closed("main", None)
        assert (
            value(
                metrics,
                "zebra_gateway_socket_closes_total",
                channel="main",
                code="none",
            )
            == 1
        )


class TestRequests:
    """Outcomes by type and status, and the publish-to-outcome histogram."""

    def test_every_type_and_status_starts_at_zero(self, metrics: Metrics) -> None:
        """All combinations exist at 0, so increase() sees the first failure."""
        for request_type in ("print", "query", "sgd", "unknown"):
            for status in JobStatus:
                assert (
                    value(
                        metrics,
                        "zebra_gateway_requests_total",
                        type=request_type,
                        status=status.value,
                    )
                    == 0
                )

    def test_request_finished(self, metrics: Metrics) -> None:
        """An outcome is counted by type and status and timed by type."""
        metrics.request_finished(RequestType.PRINT, JobStatus.DELIVERED, 0.004)
        metrics.request_finished(RequestType.PRINT, JobStatus.FAILED, 2.0)
        metrics.request_finished("zebra.sgd", "ok", 0.2)
        assert (
            value(
                metrics,
                "zebra_gateway_requests_total",
                type="print",
                status="delivered",
            )
            == 1
        )
        assert (
            value(metrics, "zebra_gateway_requests_total", type="sgd", status="ok") == 1
        )
        assert (
            value(metrics, "zebra_gateway_request_duration_seconds_count", type="print")
            == 2
        )
        assert value(
            metrics, "zebra_gateway_request_duration_seconds_sum", type="print"
        ) == pytest.approx(2.004)
        assert (
            value(
                metrics,
                "zebra_gateway_request_duration_seconds_bucket",
                type="print",
                le="0.005",
            )
            == 1
        )

    def test_rejected_before_type_known(self, metrics: Metrics) -> None:
        """A request without a usable type counts as type unknown, untimed."""
        metrics.request_finished(None, JobStatus.REJECTED, None)
        assert (
            value(
                metrics,
                "zebra_gateway_requests_total",
                type="unknown",
                status="rejected",
            )
            == 1
        )
        assert (
            value(
                metrics, "zebra_gateway_request_duration_seconds_count", type="unknown"
            )
            == 0
        )

    def test_negative_duration_is_clamped(self, metrics: Metrics) -> None:
        """A producer clock ahead of ours does not record a negative time."""
        metrics.request_finished("print", "delivered", -3.0)
        assert (
            value(metrics, "zebra_gateway_request_duration_seconds_sum", type="print")
            == 0
        )

    @pytest.mark.parametrize(
        ("given", "label"),
        [
            (RequestType.PRINT, "print"),
            (RequestType.QUERY, "query"),
            (RequestType.SGD, "sgd"),
            ("print", "print"),
            ("zebra.bogus", "unknown"),
            (None, "unknown"),
        ],
    )
    def test_type_label(self, given: str | None, label: str) -> None:
        """Request types map to short names; anything else is unknown."""
        assert type_label(given) == label

    def test_status_label(self) -> None:
        """Known statuses keep their value; anything else is other."""
        assert status_label(JobStatus.UNCERTAIN) == "uncertain"
        assert status_label("exploded") == "other"

    def test_request_buckets_span_1ms_to_60s(self) -> None:
        """The histogram resolves a millisecond answer and a minute's wait."""
        assert REQUEST_BUCKETS[0] == 0.001
        assert REQUEST_BUCKETS[-1] == 60.0
        assert list(REQUEST_BUCKETS) == sorted(REQUEST_BUCKETS)


class TestPublishTime:
    """Estimating when the producer published a request."""

    RECEIVED = 1_700_000_100.5

    def test_interceptor_header_wins(self) -> None:
        """RabbitMQ's timestamp_in_ms header gives millisecond resolution."""
        started = publish_time(
            received_at=self.RECEIVED,
            headers={"timestamp_in_ms": 1_700_000_100_250},
            timestamp=datetime.fromtimestamp(1_700_000_000, UTC),
        )
        assert started == pytest.approx(1_700_000_100.25)

    def test_old_timestamp_property_is_used(self) -> None:
        """A request that waited in its queue is timed from its AMQP timestamp."""
        started = publish_time(
            received_at=self.RECEIVED,
            timestamp=datetime.fromtimestamp(1_700_000_040, UTC),
        )
        assert started == 1_700_000_040

    def test_recent_timestamp_property_is_too_coarse(self) -> None:
        """Within a second, the whole-second property is worse than receipt time."""
        started = publish_time(
            received_at=self.RECEIVED,
            timestamp=datetime.fromtimestamp(1_700_000_100, UTC),
        )
        assert started == self.RECEIVED

    def test_nothing_known(self) -> None:
        """Without header or property the receipt time is the estimate."""
        assert publish_time(received_at=self.RECEIVED, headers={}) == self.RECEIVED

    def test_header_from_the_future_is_clamped(self) -> None:
        """A header later than receipt (clock skew) never yields a negative time."""
        started = publish_time(
            received_at=self.RECEIVED, headers={"timestamp_in_ms": 1_800_000_000_000}
        )
        assert started == self.RECEIVED

    def test_non_integer_header_is_ignored(self) -> None:
        """A malformed header falls back to the other sources."""
        started = publish_time(
            received_at=self.RECEIVED, headers={"timestamp_in_ms": "soon"}
        )
        assert started == self.RECEIVED


class TestRabbitMQ:
    """Declare time, reconnects and consumers held."""

    def test_queue_declared(self, metrics: Metrics) -> None:
        """Declare times land in the histogram's millisecond buckets."""
        metrics.queue_declared(0.003)
        metrics.queue_declared(0.4)
        name = "zebra_gateway_queue_declare_duration_seconds"
        assert value(metrics, f"{name}_count") == 2
        assert value(metrics, f"{name}_bucket", le="0.005") == 1
        assert value(metrics, f"{name}_bucket", le="0.5") == 2
        assert DECLARE_BUCKETS[0] < 0.003 < DECLARE_BUCKETS[-1]

    def test_amqp_reconnects(self, metrics: Metrics) -> None:
        """Each reconnect adds one."""
        assert value(metrics, "zebra_gateway_amqp_reconnects_total") == 0
        metrics.amqp_reconnected()
        assert value(metrics, "zebra_gateway_amqp_reconnects_total") == 1

    def test_consumers_by_channel(self, metrics: Metrics) -> None:
        """Raw and config consumers are counted apart."""
        metrics.consumer_started("raw")
        metrics.consumer_started("raw")
        metrics.consumer_started("config")
        metrics.consumer_stopped("raw")
        assert value(metrics, "zebra_gateway_consumers", channel="raw") == 1
        assert value(metrics, "zebra_gateway_consumers", channel="config") == 1
        assert metrics.consumers_held("raw") == 1

    def test_main_is_not_a_consumer_channel(self, metrics: Metrics) -> None:
        """A consumer reported on main does not create a main series."""
        metrics.consumer_started("main")
        assert value(metrics, "zebra_gateway_consumers", channel="main") is None


class TestExposition:
    """What GET /metrics answers."""

    def test_render_is_valid_text_format(self, metrics: Metrics) -> None:
        """The body parses as Prometheus text and carries the expected families."""
        metrics.printer_online()
        body, content_type = metrics.render()
        assert content_type == CONTENT_TYPE
        assert content_type.startswith("text/plain; version=0.0.4")
        families = {
            family.name: family
            for family in text_string_to_metric_families(body.decode())
        }
        for name, kind in {
            "zebra_gateway_printers_connected": "gauge",
            "zebra_gateway_sockets_open": "gauge",
            "zebra_gateway_handshakes": "counter",
            "zebra_gateway_requests": "counter",
            "zebra_gateway_request_duration_seconds": "histogram",
            "zebra_gateway_queue_declare_duration_seconds": "histogram",
            "zebra_gateway_amqp_reconnects": "counter",
            "zebra_gateway_consumers": "gauge",
            "zebra_gateway_info": "gauge",
        }.items():
            assert families[name].type == kind, name
        (info,) = families["zebra_gateway_info"].samples
        assert info.labels["replica"] == "gw-1"
        assert info.value == 1

    def test_registries_are_independent(self) -> None:
        """Two gateways in one process neither collide nor share values."""
        first = Metrics("a", process_metrics=False)
        second = Metrics("b", process_metrics=False)
        first.printer_online()
        assert first.printers_connected == 1
        assert second.printers_connected == 0
        assert second.registry.get_sample_value("zebra_gateway_printers_connected") == 0

    def test_process_metrics(self) -> None:
        """By default the process's memory and file descriptors are exported."""
        body, _ = Metrics("p").render()
        assert b"process_resident_memory_bytes" in body
        assert b"python_info" in body

    def test_without_process_metrics(self, metrics: Metrics) -> None:
        """process_metrics=False leaves only the gateway's own series."""
        body, _ = metrics.render()
        assert b"process_resident_memory_bytes" not in body

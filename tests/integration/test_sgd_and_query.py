"""SGD on the config channel and queries on the raw channel (contract §1 headers)."""

from __future__ import annotations

import pytest

from broker.errors import PrinterError
from broker.schemas import JobStatus
from tests.support.timing import SHORT

SERIAL = "50J000000001"


async def test_sgd_get_reads_settings(harness):
    """`sgd_get` returns the printer's values for every name asked."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    client = await harness.client()
    values = await client.sgd_get(SERIAL, "device.friendly_name", "appl.name")
    assert values["device.friendly_name"] == SERIAL
    assert "appl.name" in values


async def test_sgd_set_changes_the_printer(harness):
    """`sgd_set` writes the value on the printer and answers the value in effect."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    client = await harness.client()
    answer = await client.sgd_set(SERIAL, "device.friendly_name", "LINE-3")
    assert answer == {"device.friendly_name": "LINE-3"}
    assert printer.settings["device.friendly_name"] == "LINE-3"
    assert await client.sgd_get(SERIAL, "device.friendly_name") == {
        "device.friendly_name": "LINE-3"
    }


async def test_config_channel_opens_only_when_needed(harness):
    """The gateway opens the config channel on the first SGD request, not at connect."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    await printer.wait_channel("raw", timeout=SHORT)
    assert not printer.channel_open("config")
    client = await harness.client()
    await client.sgd_get(SERIAL, "device.friendly_name")
    assert printer.channel_open("config")


async def test_config_closed_after_each_reply_is_reopened(harness):
    """A printer that closes config with 1000 after every reply still answers each request."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL, close_config_after_reply=True)
    client = await harness.client()
    for n in range(4):
        answer = await client.sgd_set(SERIAL, "device.friendly_name", f"P{n}")
        assert answer == {"device.friendly_name": f"P{n}"}


async def test_split_pretty_replies_are_reassembled(harness):
    """A pretty-printed reply split into 7-byte messages is one answer."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL, split_replies=7)
    client = await harness.client()
    values = await client.sgd_get(SERIAL, "device.friendly_name", "device.unique_id")
    assert values == {"device.friendly_name": SERIAL, "device.unique_id": SERIAL}


async def test_several_keys_in_one_request_answer_together(harness):
    """Several settings in one SGD object are one request and one answer."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    client = await harness.client()
    outcome = await client.sgd(
        SERIAL, {"device.friendly_name": "A", "media.type": None}
    )
    assert outcome.status is JobStatus.OK
    assert set(outcome.sgd_values()) == {"device.friendly_name", "media.type"}
    assert printer.sgd_requests[-1] == {"device.friendly_name": "A", "media.type": None}


@pytest.mark.parametrize(
    ("data", "response", "check"),
    [
        (b"~HS", "frames:3", lambda body: body.count(b"\x03") == 3),
        (
            b"~HS",
            "line",
            lambda body: body.endswith(b"\r\n") and body.count(b"\x03") == 1,
        ),
        (
            b'! U1 getvar "device.friendly_name"\r\n',
            "idle",
            lambda body: SERIAL.encode() in body,
        ),
        (
            b'{}{"device.friendly_name":null}',
            "json",
            lambda body: SERIAL.encode() in body,
        ),
    ],
)
async def test_query_framings_return_the_answer(harness, data, response, check):
    """Each `x-zebra-response` framing returns the printer's complete answer."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    client = await harness.client()
    body = await client.query(SERIAL, data, response=response, timeout=SHORT)
    assert check(body), body


async def test_query_without_answer_times_out(harness):
    """A query the printer never answers ends `timeout` after `x-zebra-timeout-ms`."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL, answer_host_status=False)
    client = await harness.client()
    with pytest.raises(PrinterError) as caught:
        await client.query(
            SERIAL, b"~HS", response="frames:3", timeout_ms=300, timeout=SHORT
        )
    assert caught.value.outcome.status is JobStatus.TIMEOUT
    assert "0.3 s" in caught.value.outcome.error


async def test_sgd_without_answer_times_out_and_config_starts_over(harness):
    """An unanswered SGD request ends `timeout`; the config socket is replaced."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL, answer_sgd=False)
    client = await harness.client()
    with pytest.raises(PrinterError) as caught:
        await client.sgd_get(SERIAL, "device.friendly_name", timeout_ms=300)
    assert caught.value.outcome.status is JobStatus.TIMEOUT
    # A late reply could pair with the next request, so the gateway closed config.
    await printer.wait_channel_closed("config", timeout=SHORT)
    printer.options.answer_sgd = True
    assert await client.sgd_get(SERIAL, "device.friendly_name") == {
        "device.friendly_name": SERIAL
    }

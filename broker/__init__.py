"""Print broker for Zebra Link-OS printers: the public AMQP contract and its client.

``broker`` holds what a producer needs (the client library, the wire models, the
topology names, the settings and the exception tree) and what the gateway shares
with it. Quick start::

    from broker import BrokerClient

    async with BrokerClient(amqp_url="amqp://guest:guest@localhost/") as client:
        outcome = await client.print("50J161000398", "^XA^FO50,50^FDHello^FS^XZ")
        print(outcome.status)

The contract itself is written down in ``docs/contract.md``.
"""

from __future__ import annotations

from broker.client import (
    BrokerClient,
    EventStream,
    JobHandle,
    PresenceList,
    PrintClient,
)
from broker.errors import (
    BrokerUnavailable,
    ConfigurationError,
    PrintBrokerError,
    PrinterError,
    PublishError,
    QueueFull,
    RequestTimeout,
    SchemaError,
    UnroutableMessage,
)
from broker.schemas import (
    ChannelClosed,
    ChannelOpened,
    Confirm,
    Event,
    JobEvent,
    JobStatus,
    Outcome,
    PresenceReply,
    PrinterAlert,
    PrinterData,
    PrinterOffline,
    PrinterOnline,
    PrinterPresence,
    RequestType,
    ResponseFraming,
)
from broker.settings import ClientSettings, load_settings
from broker.topology import Channel, Topology

__all__ = [
    "BrokerClient",
    "BrokerUnavailable",
    "Channel",
    "ChannelClosed",
    "ChannelOpened",
    "ClientSettings",
    "ConfigurationError",
    "Confirm",
    "Event",
    "EventStream",
    "JobEvent",
    "JobHandle",
    "JobStatus",
    "Outcome",
    "PresenceList",
    "PresenceReply",
    "PrintBrokerError",
    "PrintClient",
    "PrinterAlert",
    "PrinterData",
    "PrinterError",
    "PrinterOffline",
    "PrinterOnline",
    "PrinterPresence",
    "PublishError",
    "QueueFull",
    "RequestTimeout",
    "RequestType",
    "ResponseFraming",
    "SchemaError",
    "Topology",
    "UnroutableMessage",
    "load_settings",
]

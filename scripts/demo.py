"""The README's first command: a gateway, an emulated printer and one label, end to end.

Starts a gateway replica on the given port (open to any printer: a development
setting), connects an emulated printer to it, prints a label and reads a setting through
RabbitMQ with the client library, then keeps serving so you can try ``zebra-broker``
from another terminal. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from broker.client import BrokerClient
from broker.logs import configure_logging
from broker.settings import ClientSettings
from gateway.emulator import EmulatorOptions, PrinterEmulator
from gateway.server import Gateway
from gateway.settings import GatewaySettings

SERIAL = "50J000000001"
LABEL = b"^XA^CF0,60^FO50,50^FDHello from zebra-weblink-broker^FS^PQ1^XZ"


async def demo(port: int) -> int:
    # Open to any printer: a development setting the gateway warns about at start.
    gateway = Gateway(GatewaySettings(port=port, replica="demo", allow_anonymous=True))
    await gateway.start()
    url = f"ws://127.0.0.1:{gateway.port}/"
    printer = PrinterEmulator(url, SERIAL, EmulatorOptions(retry_interval=2.0))
    await printer.start()
    await printer.wait_channel("raw", timeout=10)
    async with BrokerClient(ClientSettings()) as client:
        outcome = await client.print(SERIAL, LABEL, timeout=10)
        print(
            f"\n==> printed a label on {SERIAL}: job {outcome.job_id} {outcome.status}"
        )
        name = await client.sgd_get(SERIAL, "device.friendly_name")
        print(f"==> device.friendly_name = {name['device.friendly_name']!r}")
    print(
        f"\nGateway on {url} (health: http://127.0.0.1:{gateway.port}/healthz), "
        f"printer {SERIAL} connected. Try, in another terminal:\n"
        f"  .venv/bin/zebra-broker printers\n"
        f"  .venv/bin/zebra-broker sgd get {SERIAL} device.friendly_name\n"
        f"  .venv/bin/zebra-broker query {SERIAL} '~HS' --response frames:3\n"
        f"  echo '^XA^FDHi^FS^XZ' | .venv/bin/zebra-broker print --printer {SERIAL} -\n"
        f"  .venv/bin/zebra-broker watch\n"
        "Ctrl-C stops.\n",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await printer.close()
    await gateway.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int, nargs="?", default=8080)
    args = parser.parse_args()
    configure_logging("info", "console")
    return asyncio.run(demo(args.port))


if __name__ == "__main__":
    raise SystemExit(main())

"""A small asyncio TCP proxy for cutting connections in tests.

``disconnect_all`` aborts every connection (both sides see a reset), like a broker or
network failure. ``freeze`` stops forwarding without closing anything, like a network
that silently drops packets: both ends keep a half-open connection until their own
keep-alives notice.
"""

from __future__ import annotations

import asyncio


class TcpProxy:
    """Forward connections to ``target``; cut or freeze them on demand.

    With ``spare`` targets it is a small round-robin balancer: each new connection
    goes to the next target that accepts it.
    """

    def __init__(self, host: str, port: int, *spare: tuple[str, int]) -> None:
        self.target = (host, port)
        self.spare: list[tuple[str, int]] = list(spare)
        self._turn = 0
        self.transports: set[asyncio.WriteTransport] = set()
        self.port = 0
        self.server: asyncio.Server | None = None
        self._frozen: set[asyncio.WriteTransport] = set()

    async def start(self) -> TcpProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        targets = [self.target, *self.spare]
        self._turn += 1
        upstream = None
        for index in range(len(targets)):
            target = targets[(self._turn + index) % len(targets)]
            try:
                upstream = await asyncio.open_connection(*target)
                break
            except OSError:
                continue
        if upstream is None:
            writer.close()
            return
        upstream_reader, upstream_writer = upstream
        self.transports |= {writer.transport, upstream_writer.transport}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                if writer.transport in self._frozen:
                    continue  # dropped on the floor, like a dead network path
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            if writer.transport not in self._frozen:
                writer.transport.abort()

    def freeze(self) -> None:
        """Silently drop all traffic on the current connections; keep them open.

        A side that closes its end is not passed on: the other side is left with a
        half-open connection. New connections are forwarded normally.
        """
        self._frozen |= self.transports

    def disconnect_all(self) -> None:
        """Abort every connection through the proxy."""
        for transport in self.transports:
            transport.abort()
        self.transports.clear()

    async def stop_accepting(self) -> None:
        """Refuse new connections (the port closes) until :meth:`accept_again`."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def accept_again(self) -> None:
        """Listen again on the same port."""
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        for transport in self._frozen:
            transport.abort()
        self._frozen.clear()
        self.disconnect_all()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

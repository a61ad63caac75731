"""A scripted raw target for the ALB data-plane tests: it answers each request it receives
with the next bytes of its script, exactly as given, and records every byte it received."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import httptools

# What the target does after writing one answer.
KEEP, CLOSE, RESET = "keep", "close", "reset"


@dataclass
class Answer:
    data: bytes
    then: str = KEEP
    """keep | close (FIN) | reset (RST)"""
    pause: float = 0.0
    """Seconds between writing ``data`` and acting on ``then``."""


@dataclass
class RawTarget:
    """Answers the n-th request it completes (across connections) with ``script[n]``; requests
    past the script get the last answer."""

    script: list[Answer]
    received: list[bytes] = field(default_factory=list)
    """Every read, in order, across connections."""
    requests: int = 0
    connections: int = 0
    port: int = 0
    server: asyncio.base_events.Server | None = None
    transports: list[Any] = field(default_factory=list)

    @property
    def raw(self) -> bytes:
        return b"".join(self.received)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _RawProtocol(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for transport in self.transports:
            transport.abort()
        await asyncio.sleep(0)


def reset(transport: Any) -> None:
    """Close with a TCP reset (SO_LINGER 0)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _RawProtocol(asyncio.Protocol):
    def __init__(self, target: RawTarget) -> None:
        self.target = target
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.target.connections += 1
        self.target.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.target.received.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        t = self.target
        answer = t.script[min(t.requests, len(t.script) - 1)]
        t.requests += 1
        self.transport.write(answer.data)
        if answer.pause:
            asyncio.get_running_loop().call_later(answer.pause, self._then, answer.then)
        else:
            self._then(answer.then)

    def _then(self, then: str) -> None:
        if then == CLOSE:
            self.transport.close()
        elif then == RESET:
            reset(self.transport)

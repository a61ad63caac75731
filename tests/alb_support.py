"""Helpers for the ALB data-plane tests: an in-process data plane and scriptable backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools

from miniecs.alb.dataplane.main import DataPlane

BIG = bytes(range(256)) * 20_000
"""A 5 MB payload."""


@dataclass
class Seen:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


@dataclass
class Backend:
    """A target: answers 200 with its name, or misbehaves as ``mode`` says."""

    name: str
    mode: str = "ok"
    """ok | hop | continue | big | reset | garbage | silent | chunked | close-delimited | slow"""
    delay: float = 0.0
    requests: list[Seen] = field(default_factory=list)
    bytes_received: int = 0
    connections: int = 0
    port: int = 0
    server: asyncio.base_events.Server | None = None
    transports: list[Any] = field(default_factory=list)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _BackendProtocol(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for transport in self.transports:
            transport.abort()
        await asyncio.sleep(0)


class _BackendProtocol(asyncio.Protocol):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.backend.connections += 1
        self.backend.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.backend.bytes_received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode(), value.decode()))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        b = self.backend
        seen = Seen(self.parser.get_method().decode(), self.url.decode(), self.headers, self.body)
        b.requests.append(seen)
        self._reset()
        payload = f"{b.name} {seen.method} {seen.url} {len(seen.body)}".encode()
        if b.mode == "reset":
            self.transport.abort()
        elif b.mode == "garbage":
            self.transport.write(b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nno")
        elif b.mode == "silent":
            pass
        elif b.mode == "chunked":
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n"
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
            )
        elif b.mode == "close-delimited":
            self.transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + payload)
            self.transport.close()
        elif b.mode == "slow":
            asyncio.get_running_loop().call_later(b.delay, self._answer, payload)
        else:
            self._answer(payload)

    def _answer(self, payload: bytes) -> None:
        if self.transport.is_closing():
            return
        b = self.backend
        if b.mode == "big":
            payload = BIG
        interim = b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n" if b.mode == "continue" else b""
        hop = b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n" if b.mode == "hop" else b""
        self.transport.write(
            b"%sHTTP/1.1 200 OK\r\nContent-Length: %d\r\n%sX-Backend: %s\r\n\r\n%s"
            % (interim, len(payload), hop, b.name.encode(), payload)
        )


def config(
    port: int,
    targets: list[tuple[int, bool]] | list[int],
    *,
    version: int = 1,
    rules: list[dict[str, Any]] | None = None,
    limits: dict[str, Any] | None = None,
    health: dict[str, Any] | None = None,
    algorithm: str = "round_robin",
    idle_timeout: float = 60,
) -> dict[str, Any]:
    """A config with one listener forwarding to target group ``tg`` on 127.0.0.1 ports."""
    rows = []
    for t in targets:
        target_port, draining = (t, False) if isinstance(t, int) else t
        rows.append({"ip": "127.0.0.1", "port": target_port, "draining": draining})
    return {
        "version": version,
        "speed": 100.0,
        "bind": "127.0.0.1",
        "idle_timeout": idle_timeout,
        "limits": limits or {},
        "listeners": [
            {
                "arn": "listener",
                "port": port,
                "default_actions": [{"Type": "forward", "TargetGroupArn": "tg"}],
                "rules": rules or [],
            }
        ],
        "target_groups": [
            {
                "arn": "tg",
                "name": "tg",
                "port": 80,
                "algorithm": algorithm,
                "health_check": health or {"enabled": False},
                "targets": rows,
            }
        ],
    }


@contextlib.asynccontextmanager
async def data_plane(tmp: Path, doc: dict[str, Any]) -> AsyncIterator[DataPlane]:
    """A :class:`DataPlane` serving ``doc`` in this event loop, through its real config file."""
    path = tmp / "config.json"
    path.write_text(json.dumps(doc))
    plane = DataPlane(str(path), str(tmp / "state.json"))
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    port = doc["listeners"][0]["port"] if doc["listeners"] else None
    for _ in range(200):
        listener = plane.listeners.get(port) if port else None
        if port is None or (listener is not None and listener.server is not None):
            break
        await asyncio.sleep(0.01)
    try:
        yield plane
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def exchange(port: int, raw: bytes, wait: float = 5.0) -> bytes:
    """Send ``raw`` on a new connection and read until it is closed (at most ``wait`` s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    chunks = []
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except TimeoutError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return b"".join(chunks)


async def request(
    port: int, raw: bytes, wait: float = 5.0
) -> tuple[int, dict[str, str], bytes, bytes]:
    """One request on a new connection; (status, headers, body, raw response)."""
    data = await exchange(port, raw, wait)
    status, headers, body = parse_response(data)
    return status, headers, body, data


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


class Client:
    """A keep-alive HTTP/1.1 client on one connection, reading responses with httptools."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def send(self, raw: bytes) -> None:
        self.writer.write(raw)

    async def get(self, path: str = "/", extra: str = "") -> tuple[int, dict[str, str], bytes]:
        self.send(f"GET {path} HTTP/1.1\r\nHost: lb\r\n{extra}\r\n".encode())
        return await self.read()

    async def read(
        self, head_only: bool = False, wait: float = 5.0
    ) -> tuple[int, dict[str, str], bytes]:
        """One response (``head_only`` for a response to HEAD)."""
        done: list[bool] = []
        headers: dict[str, str] = {}
        body: list[bytes] = []

        class Callbacks:
            def on_header(self, name: bytes, value: bytes) -> None:
                headers[name.decode().lower()] = value.decode()

            def on_headers_complete(self) -> None:
                if head_only:
                    done.append(True)

            def on_body(self, chunk: bytes) -> None:
                body.append(chunk)

            def on_message_complete(self) -> None:
                done.append(True)

        parser = httptools.HttpResponseParser(Callbacks())
        async with asyncio.timeout(wait):
            while not done:
                chunk = await self.reader.read(1) if head_only else await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed before a complete response")
                parser.feed_data(chunk)
        return parser.get_status_code(), headers, b"".join(body)

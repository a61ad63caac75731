"""The awslogs log driver as Fargate runs it: a container's stdout and stderr, line by line with
the container's timestamps, into a CloudWatch Logs stream.

`awslogs_target` reads a container definition's logConfiguration (pure). `LogShipper` follows
containers through the runtime's log API: one reader thread per container (Docker's logs API
with timestamps, blocking reads, so a chatty container never waits on miniecs: Docker buffers
its output as it does for any container), and one writer thread that stores what the readers
read in batches, each batch in one transaction with the readers' new positions. After a restart
a reader asks Docker for the lines since its position's second and skips those it already
stored, so nothing is lost or stored twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from miniecs.logs.store import LogStore, NoSuchGroup, NoSuchStream, ReaderPosition

log = logging.getLogger(__name__)

CREATE_STREAM_FAILED = (
    "ResourceInitializationError: failed to validate logger args: create stream has been "
    "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: "
    "The specified log group does not exist. : exit status 1"
)
"""ECS's stopped reason when an awslogs container's group does not exist (and is not created)."""
MAX_BATCH = 5_000
"""Lines the writer stores per transaction at most."""
GATHER_SECONDS = 0.05
"""How long the writer lets lines gather after the first one before it stores them."""


@dataclass(frozen=True, slots=True)
class AwslogsTarget:
    group: str
    stream: str
    create_group: bool


def awslogs_target(container: dict[str, Any], task_id: str) -> AwslogsTarget | None:
    """Where a container's output goes under awslogs: group `awslogs-group`, stream
    `<awslogs-stream-prefix>/<container name>/<task id>` (without a prefix: the task id, as
    the stream of Docker's driver is named after the container). None for other drivers."""
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    if config.get("logDriver") == "awsfirelens":
        return firelens_target(container["name"], options, task_id)
    if config.get("logDriver") != "awslogs":
        return None
    prefix = options.get("awslogs-stream-prefix")
    stream = (
        f"{prefix}/{container['name']}/{task_id}" if prefix else f"{container['name']}/{task_id}"
    )
    return AwslogsTarget(
        group=str(options.get("awslogs-group") or ""),
        stream=stream,
        create_group=str(options.get("awslogs-create-group", "")).lower() == "true",
    )


def firelens_target(name: str, options: dict[str, Any], task_id: str) -> AwslogsTarget | None:
    """FireLens with Fluent Bit's CloudWatch output (`Name: cloudwatch` or `cloudwatch_logs`):
    the lines go to the same store, in `log_group_name`, stream `<log_stream_prefix><container
    name>-firelens-<task id>` (FireLens's tag), as the log router would send them. Other
    outputs have no local destination: the container keeps Docker's own logs."""
    if str(options.get("Name", "")).lower() not in ("cloudwatch", "cloudwatch_logs"):
        return None
    group = str(options.get("log_group_name") or "")
    prefix = str(options.get("log_stream_prefix") or "")
    stream = options.get("log_stream_name") or f"{prefix}{name}-firelens-{task_id}"
    return AwslogsTarget(
        group=group,
        stream=str(stream),
        create_group=str(options.get("auto_create_group", "")).lower() == "true",
    )


class LogSource(Protocol):
    """What the shipper needs from the container engine (blocking calls, run in threads)."""

    def log_lines(self, docker_name: str, since_s: int) -> Iterator[tuple[int, bytes]]:
        """(Docker timestamp in ns, line without its newline) from `since_s` on, following
        until the container stops."""
        ...

    def is_running(self, docker_name: str) -> bool: ...


class _Reader:
    def __init__(self, key: str, docker_name: str, target: AwslogsTarget) -> None:
        self.key = key
        self.docker_name = docker_name
        self.target = target
        self.thread: threading.Thread | None = None
        self.done = threading.Event()
        """Set when the reader has ended and everything it read is stored."""


class LogShipper:
    def __init__(
        self,
        store: LogStore,
        source: LogSource,
        now_ms: Callable[[], int],
    ) -> None:
        self.store = store
        self.source = source
        self.now_ms = now_ms
        self._readers: dict[str, _Reader] = {}
        self._queue: queue.SimpleQueue[tuple[_Reader, bytes | None, ReaderPosition | None]]
        self._queue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self.lines_stored = 0

    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="awslogs-writer", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Store what was read so far and stop the writer (readers are daemon threads that end
        with their container or the process)."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(5.0)

    def follow(self, key: str, docker_name: str, target: AwslogsTarget) -> None:
        """Follow a started container (idempotent by `key`, the container's runtime id)."""
        with self._lock:
            if key in self._readers or self._stop.is_set():
                return
            reader = _Reader(key, docker_name, target)
            self._readers[key] = reader
        reader.thread = threading.Thread(
            target=self._read, args=(reader,), name=f"awslogs-{docker_name}", daemon=True
        )
        reader.thread.start()

    def following(self, key: str) -> bool:
        return key in self._readers

    def finish(self, key: str, timeout: float) -> bool:
        """Wait (blocking) until the reader of a stopped container has stored its last line;
        True when it has, or when the container was never followed."""
        reader = self._readers.get(key)
        return reader is None or reader.done.wait(timeout)

    def forget(self, key: str) -> None:
        """The container is removed: drop its reader and stored position."""
        with self._lock:
            self._readers.pop(key, None)
        self.store.forget_reader(key)

    def _read(self, reader: _Reader) -> None:
        position = self.store.reader_position(reader.key)
        try:
            while not self._stop.is_set():
                position = self._read_once(reader, position)
                if not self.source.is_running(reader.docker_name):
                    break
                time.sleep(0.2)  # the stream broke while the container runs: reconnect
        except Exception as exc:
            log.warning("awslogs reader of %s ended: %s", reader.docker_name, exc)
        finally:
            self._queue.put((reader, None, None))

    def _read_once(self, reader: _Reader, position: ReaderPosition | None) -> ReaderPosition | None:
        """Queue the lines after `position`; returns the position of the last line queued."""
        since = position.ts_ns // 1_000_000_000 if position else 0
        seen = 0
        skipping = position is not None
        for ts, line in self.source.log_lines(reader.docker_name, since):
            if skipping and position is not None:
                if ts < position.ts_ns:
                    continue
                if ts == position.ts_ns and seen < position.count:
                    seen += 1
                    continue
                skipping = False
            if position is not None and ts == position.ts_ns:
                position = ReaderPosition(ts, position.count + 1)
            else:
                position = ReaderPosition(ts, 1)
            self._queue.put((reader, line, position))
        return position

    def _write_loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            items = [first]
            if not self._stop.is_set():
                # gather what arrives in the next moment too: one transaction for many lines
                time.sleep(GATHER_SECONDS)
            while len(items) < MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._store(items)
            if self._stop.is_set() and len(items) < MAX_BATCH:
                return  # what was read before the stop is stored; readers resume from it

    def _store(self, items: list[tuple[_Reader, bytes | None, ReaderPosition | None]]) -> None:
        batches: dict[str, tuple[_Reader, list[tuple[int, str]], ReaderPosition]] = {}
        ended: list[_Reader] = []
        for reader, line, position in items:
            if line is None or position is None:
                ended.append(reader)
                continue
            events = batches[reader.key][1] if reader.key in batches else []
            batches[reader.key] = (reader, events, position)
            message = line.decode("utf-8", "replace").rstrip("\r")
            if message:  # CloudWatch Logs refuses empty messages
                events.append((position.ts_ns // 1_000_000, message))
        now = self.now_ms()
        for key, (reader, events, position) in batches.items():
            target = reader.target
            try:
                try:
                    self.store.append(target.group, target.stream, events, now, (key, position))
                except NoSuchStream:
                    # Deleted while the task runs: re-created, as Docker's awslogs driver does.
                    self.store.ensure_stream(target.group, target.stream, now)
                    self.store.append(target.group, target.stream, events, now, (key, position))
                self.lines_stored += len(events)
            except NoSuchGroup:
                log.warning("log group %s is gone: %d lines dropped", target.group, len(events))
        for reader in ended:
            reader.done.set()

"""The data-plane process: applies configs, runs listeners, health checks, sweeper and state.

``python3 -m albdp --config /run/alb/config.json --state /run/alb/state.json``. Until a first
valid config arrives nothing listens. Applying a config compiles every listener first (a config
that does not compile is skipped whole), then updates target groups (their targets keep health
and pooled connections), answers 502 to in-flight requests of targets that left, reconciles the
health-check tasks and the listening sockets. On SIGTERM listeners close, in-flight requests
get a few seconds to finish and the state is written a last time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Coroutine
from typing import Any

from . import health, state
from .config import Config, ConfigError, ConfigWatcher, HealthCheck
from .plane import DESYNC_POLICY, Plane
from .proxy import Listener
from .routing import ListenerTable, compile_listener
from .targets import Target, TargetGroup

log = logging.getLogger("albdp")

SWEEP_SECONDS = 0.5
"""How often deadlines (408, idle, 504) are checked."""
SHUTDOWN_GRACE = 5.0
"""Seconds in-flight requests get to finish on SIGTERM."""


class DataPlane:
    """One load balancer's data plane."""

    def __init__(self, config_path: str, state_path: str | None) -> None:
        self.plane = Plane()
        self.config: Config | None = None
        self.listeners: dict[int, Listener] = {}
        self.bind: str | None = None
        self.checks: dict[tuple[str, str, int], tuple[HealthCheck, float, asyncio.Task[None]]] = {}
        self.watcher = ConfigWatcher(config_path, self.apply)
        self.state_path = state_path
        self._tasks: set[asyncio.Task[None]] = set()

    # --- config -------------------------------------------------------------------------------

    def apply(self, config: Config) -> None:
        """Make ``config`` current; raise ConfigError (changing nothing) if it does not compile."""
        known = {g.arn for g in config.target_groups}
        tables: dict[int, tuple[ListenerTable, str]] = {}
        for spec in config.listeners:
            try:
                tables[spec.port] = (compile_listener(spec, known), spec.arn)
            except (ConfigError, KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"listener {spec.arn}: {exc}") from exc
        plane = self.plane
        plane.limits = config.limits
        plane.idle_timeout = config.idle_timeout
        plane.desync_refuse, plane.desync_close = DESYNC_POLICY[config.desync_mitigation_mode]
        plane.speed = config.speed
        gone: list[Target] = []
        for arn in list(plane.groups):
            if arn not in known:
                group = plane.groups.pop(arn)
                for target in group.targets.values():
                    target.removed = True
                    target.close_idle()
                    gone.append(target)
        for tg_spec in config.target_groups:
            existing = plane.groups.get(tg_spec.arn)
            if existing is None:
                existing = plane.groups[tg_spec.arn] = TargetGroup(tg_spec)
            gone += existing.update(tg_spec, config.speed)
        if gone:
            self._fail_removed()
        self._reconcile_checks(config.speed)
        self._reconcile_listeners(config, {port: t for port, (t, _) in tables.items()})
        self.config = config

    def _fail_removed(self) -> None:
        """In-flight requests of targets that left the config: 502 (deregistration ended)."""
        for client in list(self.plane.clients):
            ex = client.active
            if ex is not None and ex.target is not None and ex.target.removed:
                client.fail(ex, 502)

    def _reconcile_checks(self, speed: float) -> None:
        wanted: dict[tuple[str, str, int], tuple[HealthCheck, Target]] = {}
        for group in self.plane.groups.values():
            check = group.spec.health_check
            if not check.enabled:
                continue
            for target in group.targets.values():
                wanted[(group.arn, target.ip, target.port)] = (check, target)
        for key in list(self.checks):
            check, spd, task = self.checks[key]
            if key not in wanted or wanted[key][0] != check or spd != speed:
                task.cancel()
                del self.checks[key]
        for key, (check, target) in wanted.items():
            if key not in self.checks:
                self.checks[key] = (check, speed, self._spawn(self._check(target, check, speed)))

    async def _check(self, target: Target, check: HealthCheck, speed: float) -> None:
        port = target.port if check.port == "traffic-port" else int(check.port)

        def put(value: health.Health) -> None:
            target.set_health(value, time.monotonic())

        await health.check_loop(target.ip, port, check, speed, lambda: target.health, put)

    def _reconcile_listeners(self, config: Config, tables: dict[int, ListenerTable]) -> None:
        rebind = self.bind is not None and self.bind != config.bind
        self.bind = config.bind
        for port in list(self.listeners):
            if rebind or port not in tables:
                listener = self.listeners.pop(port)
                if listener.server is not None:
                    listener.server.close()
        for port, table in tables.items():
            existing = self.listeners.get(port)
            if existing is not None:
                existing.table = table
                continue
            listener = Listener(self.plane, port, table)
            self.listeners[port] = listener
            self._spawn(self._listen(listener, config.bind))

    async def _listen(self, listener: Listener, host: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            listener.server = await loop.create_server(
                listener.protocol, host, listener.port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", host, listener.port, exc)
            self.listeners.pop(listener.port, None)
            return
        if self.listeners.get(listener.port) is not listener:
            listener.server.close()
            return
        log.info("listening on %s:%d", host, listener.port)

    # --- loops --------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(_guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def sweep(self) -> None:
        """One pass over the deadlines of every connection, and stale pooled connections."""
        plane = self.plane
        now = plane.tick()
        for client in list(plane.clients):
            client.expire(now)
        horizon = now - plane.idle_timeout
        for group in plane.groups.values():
            for target in group.targets.values():
                if target.suspect_until:
                    target.expire_suspicion(now)
                if target.idle and target.idle[0].idle_since < horizon:
                    stale = [c for c in target.idle if c.idle_since < horizon]
                    target.idle = [c for c in target.idle if c.idle_since >= horizon]
                    for conn in stale:
                        conn.close()

    async def _sweep_loop(self) -> None:
        while True:
            self.sweep()
            await asyncio.sleep(SWEEP_SECONDS)

    def document(self) -> dict[str, Any]:
        return state.snapshot(self.plane, self.config.version if self.config else None)

    async def run(self, stop: asyncio.Event) -> None:
        self.watcher.once()
        watcher = self._spawn(self.watcher.run())
        sweeper = self._spawn(self._sweep_loop())
        writer = (
            self._spawn(state.write_loop(self.state_path, self.document))
            if (self.state_path)
            else None
        )
        await stop.wait()
        watcher.cancel()
        for listener in self.listeners.values():
            if listener.server is not None:
                listener.server.close()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while any(c.active is not None for c in self.plane.clients):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for client in list(self.plane.clients):
            client.abort()
        for group in self.plane.groups.values():
            for target in group.targets.values():
                target.close_idle()
        for task in (sweeper, writer, *(t for _, _, t in self.checks.values())):
            if task is not None:
                task.cancel()
        if self.state_path:
            with contextlib.suppress(OSError):
                state.write_atomic(self.state_path, json.dumps(self.document()).encode())


async def _guarded(coro: Coroutine[Any, Any, None]) -> None:
    """Run a background loop; log a crash instead of losing it silently."""
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task failed")


async def serve(config_path: str, state_path: str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await DataPlane(config_path, state_path).run(stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="albdp", description="The miniecs ALB data plane.")
    parser.add_argument("--config", default="/run/alb/config.json")
    parser.add_argument("--state", default="/run/alb/state.json")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop not installed; using the default asyncio loop")
        asyncio.run(serve(args.config, args.state))
    else:
        uvloop.run(serve(args.config, args.state))

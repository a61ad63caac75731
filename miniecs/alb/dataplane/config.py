"""``config.json``: parsed into frozen dataclasses, validated, and polled for new versions.

The control plane writes the file with ``put_archive`` (see ``docs/alb-dataplane.md``); a file
that cannot be parsed or validated is a partial write or a mistake, so it is skipped until the
next poll and the data plane keeps serving its last good config. Rule conditions and actions stay
in ELBv2's own shapes here; :mod:`.routing` compiles them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DESYNC_MODES = ("monitor", "defensive", "strictest")
POLL_SECONDS = 0.05
"""How often the config file is checked for a change."""
ALGORITHMS = ("round_robin", "least_outstanding_requests", "weighted_random")


class ConfigError(ValueError):
    """The config is not valid; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A target group's health-check settings, in AWS seconds (divided by ``speed`` to run)."""

    enabled: bool = True
    protocol: str = "HTTP"
    port: str = "traffic-port"
    path: str = "/"
    interval: float = 30.0
    timeout: float = 5.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    matcher: str = "200"


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A registered target; ``draining`` once it is deregistered; ``down`` once the control
    plane saw its task's container die (chosen no more, in-flight requests 502)."""

    ip: str
    port: int
    draining: bool = False
    down: bool = False


@dataclass(frozen=True, slots=True)
class TargetGroupSpec:
    arn: str
    name: str
    port: int
    health_check: HealthCheck = field(default_factory=HealthCheck)
    algorithm: str = "round_robin"
    slow_start: float = 0.0
    """``slow_start.duration_seconds`` in AWS seconds; 0 is off."""
    targets: tuple[TargetSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSpec:
    arn: str
    priority: int
    conditions: tuple[dict[str, Any], ...]
    actions: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    arn: str
    port: int
    default_actions: tuple[dict[str, Any], ...]
    rules: tuple[RuleSpec, ...] = ()
    protocol: str = "HTTP"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that protect the data plane from its clients (optional ``limits`` object)."""

    max_head_bytes: int = 64 * 1024
    """Request line plus headers; more gets 431 (ALB's own limit is 64 KB of headers)."""
    max_body_bytes: int = 1 << 30
    """Request body; more gets 413."""
    head_timeout: float = 60.0
    """Real seconds from a request's first byte to the end of its head; then 408."""
    connect_timeout: float = 10.0
    """Real seconds to connect to a target; then 504."""


@dataclass(frozen=True, slots=True)
class Config:
    version: int
    speed: float = 1.0
    bind: str = "127.0.0.1"
    idle_timeout: float = 60.0
    """Real seconds a connection may stay without traffic (ALB ``idle_timeout.timeout_seconds``)."""
    listeners: tuple[ListenerSpec, ...] = ()
    target_groups: tuple[TargetGroupSpec, ...] = ()
    limits: Limits = field(default_factory=Limits)
    desync_mitigation_mode: str = "defensive"
    """ALB's ``routing.http.desync_mitigation_mode``: monitor, defensive or strictest."""


def parse(text: str | bytes) -> Config:
    """Parse and validate the JSON text of a config; raise :class:`ConfigError`."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not JSON: {exc}") from exc
    return from_dict(raw)


def from_dict(raw: Any) -> Config:
    """Validate a decoded config document."""
    doc = _obj(raw, "config")
    version = _int(doc.get("version"), "version", minimum=0)
    speed = _num(doc.get("speed", 1.0), "speed")
    if speed <= 0:
        raise ConfigError("speed: must be > 0")
    groups = tuple(
        _target_group(g, f"target_groups[{i}]")
        for i, g in enumerate(_list(doc.get("target_groups", []), "target_groups"))
    )
    listeners = tuple(
        _listener(x, f"listeners[{i}]")
        for i, x in enumerate(_list(doc.get("listeners", []), "listeners"))
    )
    ports = [x.port for x in listeners]
    if len(set(ports)) != len(ports):
        raise ConfigError("listeners: two listeners on one port")
    arns = [g.arn for g in groups]
    if len(set(arns)) != len(arns):
        raise ConfigError("target_groups: duplicate arn")
    idle = _num(doc.get("idle_timeout", 60), "idle_timeout")
    if idle <= 0:
        raise ConfigError("idle_timeout: must be > 0")
    mode = _str(doc.get("desync_mitigation_mode", "defensive"), "desync_mitigation_mode")
    if mode not in DESYNC_MODES:
        raise ConfigError(f"desync_mitigation_mode: one of {', '.join(DESYNC_MODES)}")
    return Config(
        version=version,
        speed=speed,
        bind=_str(doc.get("bind", "127.0.0.1"), "bind"),
        idle_timeout=idle,
        desync_mitigation_mode=mode,
        listeners=listeners,
        target_groups=groups,
        limits=_limits(doc.get("limits", {})),
    )


def _target_group(raw: Any, where: str) -> TargetGroupSpec:
    doc = _obj(raw, where)
    algorithm = _str(doc.get("algorithm", "round_robin"), f"{where}.algorithm")
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"{where}.algorithm: one of {', '.join(ALGORITHMS)}")
    targets = tuple(
        _target(t, f"{where}.targets[{i}]")
        for i, t in enumerate(_list(doc.get("targets", []), f"{where}.targets"))
    )
    if len({(t.ip, t.port) for t in targets}) != len(targets):
        raise ConfigError(f"{where}.targets: a target is listed twice")
    return TargetGroupSpec(
        arn=_str(doc.get("arn"), f"{where}.arn"),
        name=_str(doc.get("name", ""), f"{where}.name"),
        port=_port(doc.get("port", 80), f"{where}.port"),
        health_check=_health_check(doc.get("health_check", {}), f"{where}.health_check"),
        algorithm=algorithm,
        slow_start=_num(doc.get("slow_start", 0), f"{where}.slow_start"),
        targets=targets,
    )


def _health_check(raw: Any, where: str) -> HealthCheck:
    doc = _obj(raw, where)
    default = HealthCheck()
    port = doc.get("port", default.port)
    port = str(port)
    if port != "traffic-port":
        _port(_int_text(port, f"{where}.port"), f"{where}.port")
    path = _str(doc.get("path", default.path), f"{where}.path")
    if not path.startswith("/"):
        raise ConfigError(f"{where}.path: must start with /")
    check = HealthCheck(
        enabled=bool(doc.get("enabled", default.enabled)),
        protocol=_str(doc.get("protocol", default.protocol), f"{where}.protocol"),
        port=port,
        path=path,
        interval=_num(doc.get("interval", default.interval), f"{where}.interval"),
        timeout=_num(doc.get("timeout", default.timeout), f"{where}.timeout"),
        healthy_threshold=_int(
            doc.get("healthy_threshold", default.healthy_threshold),
            f"{where}.healthy_threshold",
            minimum=1,
        ),
        unhealthy_threshold=_int(
            doc.get("unhealthy_threshold", default.unhealthy_threshold),
            f"{where}.unhealthy_threshold",
            minimum=1,
        ),
        matcher=_str(doc.get("matcher", default.matcher), f"{where}.matcher"),
    )
    if check.interval <= 0 or check.timeout <= 0:
        raise ConfigError(f"{where}: interval and timeout must be > 0")
    parse_matcher(check.matcher, f"{where}.matcher")
    return check


def parse_matcher(text: str, where: str = "matcher") -> tuple[tuple[int, int], ...]:
    """``"200"``, ``"200,202"``, ``"200-299"`` → inclusive code ranges."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        first = _int_text(low, where)
        last = _int_text(high, where) if high else first
        if not 100 <= first <= last <= 599:
            raise ConfigError(f"{where}: {text!r} is not a list of HTTP codes or ranges")
        ranges.append((first, last))
    return tuple(ranges)


def _target(raw: Any, where: str) -> TargetSpec:
    doc = _obj(raw, where)
    return TargetSpec(
        ip=_str(doc.get("ip"), f"{where}.ip"),
        port=_port(doc.get("port"), f"{where}.port"),
        draining=bool(doc.get("draining", False)),
        down=bool(doc.get("down", False)),
    )


def _listener(raw: Any, where: str) -> ListenerSpec:
    doc = _obj(raw, where)
    rules = tuple(
        _rule(r, f"{where}.rules[{i}]")
        for i, r in enumerate(_list(doc.get("rules", []), f"{where}.rules"))
    )
    priorities = [r.priority for r in rules]
    if len(set(priorities)) != len(priorities):
        raise ConfigError(f"{where}.rules: duplicate priority")
    protocol = _str(doc.get("protocol", "HTTP"), f"{where}.protocol")
    if protocol != "HTTP":
        raise ConfigError(f"{where}.protocol: only HTTP is served")
    return ListenerSpec(
        arn=_str(doc.get("arn"), f"{where}.arn"),
        port=_port(doc.get("port"), f"{where}.port"),
        default_actions=_actions(doc.get("default_actions"), f"{where}.default_actions"),
        rules=rules,
        protocol=protocol,
    )


def _rule(raw: Any, where: str) -> RuleSpec:
    doc = _obj(raw, where)
    return RuleSpec(
        arn=_str(doc.get("arn", ""), f"{where}.arn"),
        priority=_int(doc.get("priority"), f"{where}.priority", minimum=1),
        conditions=tuple(
            _obj(c, f"{where}.conditions[{i}]")
            for i, c in enumerate(_list(doc.get("conditions", []), f"{where}.conditions"))
        ),
        actions=_actions(doc.get("actions"), f"{where}.actions"),
    )


def _actions(raw: Any, where: str) -> tuple[dict[str, Any], ...]:
    actions = tuple(_obj(a, f"{where}[{i}]") for i, a in enumerate(_list(raw, where)))
    if not actions:
        raise ConfigError(f"{where}: at least one action")
    return actions


def _limits(raw: Any) -> Limits:
    doc = _obj(raw, "limits")
    default = Limits()
    limits = Limits(
        max_head_bytes=_int(
            doc.get("max_head_bytes", default.max_head_bytes), "limits.max_head_bytes", minimum=1
        ),
        max_body_bytes=_int(
            doc.get("max_body_bytes", default.max_body_bytes), "limits.max_body_bytes", minimum=0
        ),
        head_timeout=_num(doc.get("head_timeout", default.head_timeout), "limits.head_timeout"),
        connect_timeout=_num(
            doc.get("connect_timeout", default.connect_timeout), "limits.connect_timeout"
        ),
    )
    if limits.head_timeout <= 0 or limits.connect_timeout <= 0:
        raise ConfigError("limits: timeouts must be > 0")
    return limits


def _obj(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list")
    return raw


def _str(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: expected a string")
    return raw


def _int(raw: Any, where: str, minimum: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(f"{where}: expected an integer")
    if minimum is not None and raw < minimum:
        raise ConfigError(f"{where}: must be >= {minimum}")
    return raw


def _int_text(text: str, where: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise ConfigError(f"{where}: {text!r} is not a number")
    return int(text)


def _num(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ConfigError(f"{where}: expected a number")
    return float(raw)


def _port(raw: Any, where: str) -> int:
    port = _int(raw, where)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}: {port} is not a port")
    return port


class ConfigWatcher:
    """Polls the config file and calls ``apply`` with each newer valid version.

    ``apply`` may itself raise :class:`ConfigError` (say, a rule it cannot compile); that
    version is then skipped like an unparsable file, and the last good config stays.
    """

    def __init__(self, path: str, apply: Callable[[Config], None]) -> None:
        self.path = path
        self.apply = apply
        self.version = -1
        self._seen: tuple[int, int, int] | None = None
        self._rejected: tuple[int, int, int] | None = None

    def once(self) -> bool:
        """One poll; True when a new config was applied."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._seen:
            return False
        try:
            with open(self.path, "rb") as fh:
                text = fh.read()
            config = parse(text)
            if config.version <= self.version:
                self._seen = stamp
                return False
            self.apply(config)
        except (OSError, ConfigError) as exc:
            if stamp != self._rejected:
                log.warning(
                    "config %s not applied (keeping version %s): %s", self.path, self.version, exc
                )
                self._rejected = stamp
            return False
        self._seen = stamp
        self.version = config.version
        log.info("applied config version %d", config.version)
        return True

    async def run(self) -> None:
        while True:
            self.once()
            await asyncio.sleep(POLL_SECONDS)

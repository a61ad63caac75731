"""Listener rules: ELBv2 conditions and actions compiled into a table, matched per request.

Pure: no I/O, no clock. Rules are evaluated by ascending priority, then the default actions
(load-balancer-listeners.md). Within a rule every condition must match; within a condition any
value may. ``host-header``, ``http-header`` values and ``query-string`` pairs match
case-insensitively, ``path-pattern`` and ``http-request-method`` case-sensitively; ``*`` and
``?`` are wildcards. The proxy builds a :class:`RequestInfo` only for listeners that have rules.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .config import ConfigError, ListenerSpec

MAX_VALUES = 5
"""ELBv2 allows at most five match values per rule."""


@dataclass(slots=True)
class RequestInfo:
    """The parts of a request that conditions and redirects look at."""

    method: str
    path: str
    query: str
    host: str
    """The Host header as sent (may carry a port)."""
    headers: list[tuple[bytes, bytes]]
    source_ip: str
    port: int
    protocol: str = "http"

    def header_values(self, lname: bytes) -> list[str]:
        return [v.decode("latin-1") for n, v in self.headers if n.lower() == lname]


Condition = Callable[[RequestInfo], bool]


@dataclass(frozen=True, slots=True)
class Forward:
    """Forward to one target group, or to several by weight."""

    groups: tuple[tuple[str, int], ...]
    total: int

    def pick(self, rand: Callable[[], float] = random.random) -> str | None:
        """The chosen target group's ARN; None if every weight is 0."""
        if len(self.groups) == 1:
            return self.groups[0][0] if self.total else None
        if self.total == 0:
            return None
        point = rand() * self.total
        for arn, weight in self.groups:
            point -= weight
            if point < 0:
                return arn
        return self.groups[-1][0]


@dataclass(frozen=True, slots=True)
class FixedResponse:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Redirect:
    """``RedirectConfig``; fields hold #{protocol}, #{host}, #{port}, #{path}, #{query}."""

    protocol: str
    host: str
    port: str
    path: str
    query: str
    status: int

    def location(self, req: RequestInfo) -> str:
        values = {
            "protocol": req.protocol,
            "host": _hostname(req.host),
            "port": str(req.port),
            "path": req.path.removeprefix("/"),
            "query": req.query,
        }
        protocol = _fill(self.protocol, values).lower()
        host = _fill(self.host, values)
        port = _fill(self.port, values)
        path = _fill(self.path, values)
        query = _fill(self.query, values)
        default_port = {"http": "80", "https": "443"}.get(protocol)
        netloc = host if port == default_port else f"{host}:{port}"
        return f"{protocol}://{netloc}{path}" + (f"?{query}" if query else "")


Action = Forward | FixedResponse | Redirect


@dataclass(frozen=True, slots=True)
class Rule:
    priority: int
    conditions: tuple[Condition, ...]
    action: Action

    def matches(self, req: RequestInfo) -> bool:
        return all(cond(req) for cond in self.conditions)


@dataclass(frozen=True, slots=True)
class ListenerTable:
    """What one listener does with a request."""

    rules: tuple[Rule, ...]
    default: Action

    def route(self, req: RequestInfo) -> Action:
        for rule in self.rules:
            if rule.matches(req):
                return rule.action
        return self.default


def compile_listener(spec: ListenerSpec, known_groups: set[str] | None = None) -> ListenerTable:
    """Compile a listener's rules; raise :class:`ConfigError` on anything ELBv2 would refuse."""
    rules = tuple(
        Rule(
            priority=rule.priority,
            conditions=tuple(
                compile_condition(c, f"rule {rule.priority}") for c in rule.conditions
            ),
            action=compile_actions(list(rule.actions), known_groups),
        )
        for rule in sorted(spec.rules, key=lambda r: r.priority)
    )
    for rule in rules:
        if not rule.conditions:
            raise ConfigError(f"rule {rule.priority}: at least one condition")
    return ListenerTable(rules, compile_actions(list(spec.default_actions), known_groups))


def compile_actions(actions: list[dict[str, Any]], known_groups: set[str] | None) -> Action:
    """The terminal action of a rule (the one with the highest ``Order``, else the last)."""
    terminal = [a for a in actions if a.get("Type") in ("forward", "fixed-response", "redirect")]
    if not terminal:
        raise ConfigError("actions: no forward, fixed-response or redirect action")
    chosen = max(enumerate(terminal), key=lambda p: (p[1].get("Order", 0), p[0]))[1]
    kind = chosen["Type"]
    if kind == "forward":
        return _forward(chosen, known_groups)
    if kind == "fixed-response":
        return _fixed_response(chosen.get("FixedResponseConfig") or {})
    return _redirect(chosen.get("RedirectConfig") or {})


def _forward(action: dict[str, Any], known: set[str] | None) -> Forward:
    config = action.get("ForwardConfig") or {}
    groups: list[tuple[str, int]] = []
    if config.get("TargetGroups"):
        for tg in config["TargetGroups"]:
            weight = tg.get("Weight", 1)
            if not isinstance(weight, int) or not 0 <= weight <= 999:
                raise ConfigError("forward: Weight must be 0 to 999")
            groups.append((str(tg.get("TargetGroupArn")), weight))
    elif action.get("TargetGroupArn"):
        groups.append((str(action["TargetGroupArn"]), 1))
    else:
        raise ConfigError("forward: no target group")
    for arn, _ in groups:
        if known is not None and arn not in known:
            raise ConfigError(f"forward: unknown target group {arn}")
    return Forward(tuple(groups), sum(w for _, w in groups))


def _fixed_response(config: dict[str, Any]) -> FixedResponse:
    status = _status(config.get("StatusCode"), "FixedResponseConfig.StatusCode")
    if not (200 <= status <= 299 or 400 <= status <= 599):
        raise ConfigError("FixedResponseConfig.StatusCode: 2XX, 4XX or 5XX")
    body = str(config.get("MessageBody", ""))
    if len(body) > 1024:
        raise ConfigError("FixedResponseConfig.MessageBody: at most 1024 characters")
    return FixedResponse(
        status=status,
        content_type=str(config.get("ContentType") or "text/plain"),
        body=body.encode(),
    )


def _redirect(config: dict[str, Any]) -> Redirect:
    code = str(config.get("StatusCode", ""))
    if code not in ("HTTP_301", "HTTP_302"):
        raise ConfigError("RedirectConfig.StatusCode: HTTP_301 or HTTP_302")
    path = str(config.get("Path", "/#{path}"))
    if not path.startswith("/"):
        raise ConfigError("RedirectConfig.Path: must start with /")
    return Redirect(
        protocol=str(config.get("Protocol", "#{protocol}")),
        host=str(config.get("Host", "#{host}")),
        port=str(config.get("Port", "#{port}")),
        path=path,
        query=str(config.get("Query", "#{query}")),
        status=int(code[5:]),
    )


def _status(raw: Any, where: str) -> int:
    text = str(raw)
    if not (len(text) == 3 and text.isdigit()):
        raise ConfigError(f"{where}: a three-digit code")
    return int(text)


def compile_condition(cond: dict[str, Any], where: str) -> Condition:
    """One ELBv2 ``RuleCondition`` (its ``*Config`` or the legacy ``Values``)."""
    kind = cond.get("Field")
    if kind == "path-pattern":
        values = _values(cond, "PathPatternConfig", where)
        path_re = _wildcards(values, ignore_case=False)
        return lambda req: path_re.fullmatch(req.path) is not None
    if kind == "host-header":
        values = _values(cond, "HostHeaderConfig", where)
        host_re = _wildcards(values, ignore_case=True)
        return lambda req: host_re.fullmatch(_hostname(req.host)) is not None
    if kind == "http-request-method":
        methods = frozenset(_values(cond, "HttpRequestMethodConfig", where))
        return lambda req: req.method in methods
    if kind == "http-header":
        config = cond.get("HttpHeaderConfig") or {}
        name = str(config.get("HttpHeaderName", "")).lower().encode("latin-1")
        if not name:
            raise ConfigError(f"{where}: http-header needs HttpHeaderName")
        header_re = _wildcards(_checked(config.get("Values"), where), ignore_case=True)
        return lambda req: any(header_re.fullmatch(v) for v in req.header_values(name))
    if kind == "query-string":
        return _query_condition(cond, where)
    if kind == "source-ip":
        nets = [
            _network(v, where)
            for v in _checked((cond.get("SourceIpConfig") or {}).get("Values"), where)
        ]
        return lambda req: _in_networks(req.source_ip, nets)
    raise ConfigError(f"{where}: unknown condition field {kind!r}")


def _query_condition(cond: dict[str, Any], where: str) -> Condition:
    pairs = (cond.get("QueryStringConfig") or {}).get("Values")
    if not isinstance(pairs, list) or not pairs or len(pairs) > MAX_VALUES:
        raise ConfigError(f"{where}: query-string needs 1 to {MAX_VALUES} Values")
    compiled: list[tuple[re.Pattern[str] | None, re.Pattern[str]]] = []
    for pair in pairs:
        key = pair.get("Key")
        value = pair.get("Value")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: query-string Value must be a string")
        key_re = _wildcards([key], ignore_case=True) if isinstance(key, str) else None
        compiled.append((key_re, _wildcards([value], ignore_case=True)))

    def match(req: RequestInfo) -> bool:
        items = parse_qsl(req.query, keep_blank_values=True)
        return any(
            (key_re is None or key_re.fullmatch(k)) and value_re.fullmatch(v)
            for key_re, value_re in compiled
            for k, v in items
        )

    return match


def _values(cond: dict[str, Any], config_key: str, where: str) -> list[str]:
    config = cond.get(config_key)
    raw = config.get("Values") if isinstance(config, dict) else cond.get("Values")
    return _checked(raw, where)


def _checked(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_VALUES:
        raise ConfigError(f"{where}: 1 to {MAX_VALUES} values")
    if not all(isinstance(v, str) and v for v in raw):
        raise ConfigError(f"{where}: values must be non-empty strings")
    return raw


def _wildcards(patterns: list[str], *, ignore_case: bool) -> re.Pattern[str]:
    """One regex for any of ``patterns`` where ``*`` is any run and ``?`` one character."""
    alternatives = (
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p)
        for p in patterns
    )
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.I if ignore_case else 0)


def _hostname(host: str) -> str:
    """The Host header without its port (``[::1]:80`` → ``[::1]``)."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]


def _network(value: str, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a CIDR block") from exc


def _in_networks(ip: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in nets)


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("#{" + key + "}", value)
    return template

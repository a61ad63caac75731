"""The ALB controller: one data-plane container per load balancer, kept in step with the ELBv2
desired state, and the target API the ECS integration uses.

Each pass (about once a second, sooner after a change) it lists the load-balancer containers,
removes those of deleted load balancers, (re)creates missing or dead ones, reads each
container's state.json (target health, in-flight counts, counters → AWS/ApplicationELB
datapoints), finishes drains, and pushes config.json wherever the desired config changed
(docs/alb-dataplane.md). Containers are found by label, so a restart adopts them.

The target API (`register_targets`, `deregister_targets`, `target_health`, `is_deregistered`,
`target_group`) is what both the RegisterTargets/DeregisterTargets handlers and the ECS
service scheduler call.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from miniecs.clock import Clock, wait_event
from miniecs.errors import RuntimeUnavailable
from miniecs.metrics.loadbalancing import CODE_CLASSES, LoadBalancerCounters, TargetGroupCounters
from miniecs.metrics.store import MetricStore
from miniecs.runtime.base import (
    LABEL_INSTANCE,
    LABEL_LOAD_BALANCER,
    LABEL_MANAGED,
    ContainerCreateError,
    ImageUnavailable,
    ProxyObservation,
    ProxySpec,
    Runtime,
)
from miniecs.supervise import Guard

from . import metrics as alb_metrics
from .config import attributes, build_config, forwarded_target_groups, health_check
from .errors import InvalidTarget, TargetGroupNotFound
from .store import LISTENER, LOAD_BALANCER, RULE, TARGET_GROUP, AlbStore, Resource, TargetRecord
from .targets import NOT_IN_USE, Report, TargetHealth, drain_done, health_of

log = logging.getLogger(__name__)

IMAGE = "miniecs/alb:latest"
CONFIG_PATH = "/run/alb/config.json"
STATE_PATH = "/run/alb/state.json"
LABEL_PORTS = "miniecs.alb.ports"
PRIVATE_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
"""The ranges ELBv2 accepts for IP targets (RFC 1918 and RFC 6598)."""
RETRY_CAP = 30.0
"""Longest wait (real seconds) between two attempts to run a data plane that keeps failing."""


@dataclass(frozen=True, slots=True)
class AlbSettings:
    bind: str = "127.0.0.1"
    """Address the listeners bind on the engine host (host network) or are published on."""
    dns_name: str = "localhost"
    """DNSName of every load balancer: the name clients use to reach `bind`."""
    interval: float = 1.0
    """Real seconds between two passes (state.json is read this often)."""
    image: str = IMAGE


@dataclass(frozen=True, slots=True)
class TargetGroupInfo:
    """What the ECS integration needs to know about a target group."""

    arn: str
    name: str
    port: int
    health_check: dict[str, Any]
    """enabled, protocol, port, path, interval, timeout, healthy/unhealthy thresholds, matcher."""
    deregistration_delay: int
    load_balancer_arns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DesiredView:
    """What the hot paths read from the desired state, decoded once per store write."""

    writes: int
    """The store's write count the view was read at (stale once it differs)."""
    target_groups: dict[str, Resource]
    """ARN → target group, in the store's order."""
    load_balancers: dict[str, tuple[str, ...]]
    """Target group ARN → sorted ARNs of the load balancers forwarding to it."""
    targets: dict[str, dict[tuple[str, int], TargetRecord]]
    """Target group ARN → (ip, port) → registration, in the store's order."""

    @classmethod
    def read(cls, store: AlbStore) -> DesiredView:
        writes = store.writes
        listeners = {listener.arn: listener for listener in store.all(LISTENER)}
        owners: dict[str, set[str]] = {}
        for listener in listeners.values():
            for tg_arn in forwarded_target_groups(listener.data["DefaultActions"]):
                owners.setdefault(tg_arn, set()).add(listener.parent or "")
        for rule in store.all(RULE):
            owner = listeners.get(rule.parent or "")
            if owner is not None:
                for tg_arn in forwarded_target_groups(rule.data["Actions"]):
                    owners.setdefault(tg_arn, set()).add(owner.parent or "")
        targets: dict[str, dict[tuple[str, int], TargetRecord]] = {}
        for record in store.targets():
            targets.setdefault(record.tg_arn, {})[(record.ip, record.port)] = record
        return cls(
            writes,
            {tg.arn: tg for tg in store.all(TARGET_GROUP)},
            {tg_arn: tuple(sorted(lbs)) for tg_arn, lbs in owners.items()},
            targets,
        )


def _ports(listeners: list[Resource]) -> tuple[int, ...]:
    return tuple(sorted(int(listener.data["Port"]) for listener in listeners))


def _privileged(ports: Sequence[int]) -> bool:
    """Whether binding `ports` in the host's network namespace needs CAP_NET_BIND_SERVICE (the
    runtime then starts the data plane as root with only that capability)."""
    return any(port < 1024 for port in ports)


def _labelled_ports(proxy: ProxyObservation) -> tuple[int, ...]:
    return tuple(int(p) for p in proxy.labels.get(LABEL_PORTS, "").split(",") if p.isdigit())


class AlbController:
    def __init__(
        self,
        store: AlbStore,
        runtime: Runtime,
        clock: Clock,
        metrics: MetricStore,
        instance: str,
        settings: AlbSettings | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.clock = clock
        self.metrics = metrics
        self.instance = instance
        self.settings = settings or AlbSettings()
        self._wake = asyncio.Event()
        self._host_network: bool | None = None
        self._pushed: dict[str, tuple[str, int]] = {}
        """LB ARN → (config body without version, version) last written to its container."""
        self._version = 0
        self._reports: dict[str, Report] = {}
        self._counters: dict[str, dict[str, Any]] = {}
        self._host_counts: dict[str, dict[str, tuple[int, int, int]]] = {}
        """LB ARN → target group ARN → (healthy, unhealthy, registered) at the last reading."""
        self._drain_versions: dict[tuple[str, str, str, int], int] = {}
        """(LB, target group, ip, port) → first config version in which the target drains."""
        self._running: set[str] = set()
        self._failures: dict[str, str] = {}
        """LB ARN → why its data-plane container could not be run (until it runs)."""
        self._retries: dict[str, tuple[int, float, tuple[int, ...]]] = {}
        """LB ARN → (failed runs in a row, control-plane time of the next attempt, listener
        ports then): failed runs back off exponentially; a change of ports retries at once."""
        self._desired: DesiredView | None = None
        self._down: dict[str, float] = {}
        """Task IP → control-plane time its task's essential container died: its targets
        registered before then are `down` in every pushed config (see `watch_deaths`)."""

    def desired(self) -> DesiredView:
        """The desired state the hot paths need, re-read only after an ELBv2 write."""
        view = self._desired
        if view is None or view.writes != self.store.writes:
            view = self._desired = DesiredView.read(self.store)
        return view

    # target API ------------------------------------------------------------------------------
    def target_group(self, tg_arn: str) -> TargetGroupInfo | None:
        view = self.desired()
        tg = view.target_groups.get(tg_arn)
        if tg is None:
            return None
        return TargetGroupInfo(
            arn=tg.arn,
            name=tg.name or "",
            port=int(tg.data["Port"]),
            health_check=health_check(tg),
            deregistration_delay=int(attributes(tg)["deregistration_delay.timeout_seconds"]),
            load_balancer_arns=view.load_balancers.get(tg_arn, ()),
        )

    def register_targets(self, tg_arn: str, targets: Sequence[tuple[str, int | None]]) -> None:
        """Register (ip, port) targets (port None: the group's port); a draining target that
        is registered again becomes a new registration. Raises TargetGroupNotFound or
        InvalidTarget and then registers nothing."""
        tg = self.store.get(tg_arn, TARGET_GROUP)
        if tg is None:
            raise TargetGroupNotFound()
        now = self.clock.now()
        records = []
        for ip, port in targets:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidTarget(f"The IP address '{ip}' is not a valid IPv4 address") from None
            if address.version != 4 or not any(address in net for net in PRIVATE_RANGES):
                raise InvalidTarget(
                    f"The following targets are not in a valid IP address range: {ip}"
                )
            port = int(port if port is not None else tg.data["Port"])
            existing = self.store.target(tg_arn, ip, port)
            if existing is not None and not existing.draining:
                continue
            records.append(TargetRecord(tg_arn, ip, port, now))
        self.store.put_targets(records)
        for record in records:
            for lb in self.load_balancers_of(tg_arn):
                self._drain_versions.pop((lb, tg_arn, record.ip, record.port), None)
        self.notify()

    def deregister_targets(self, tg_arn: str, targets: Sequence[tuple[str, int | None]]) -> None:
        """Start draining (ip, port) targets; in a group no load balancer uses they go at once.
        Raises TargetGroupNotFound, or InvalidTarget for a target that is not registered."""
        tg = self.store.get(tg_arn, TARGET_GROUP)
        if tg is None:
            raise TargetGroupNotFound()
        keys = []
        for ip, port in targets:
            port = int(port if port is not None else tg.data["Port"])
            if self.store.target(tg_arn, ip, port) is None:
                raise InvalidTarget(
                    f"The following targets are not registered in target group "
                    f"'{tg_arn}': 'Id={ip},Port={port}'"
                )
            keys.append((tg_arn, ip, port))
        if not self.load_balancers_of(tg_arn):
            self.store.remove_targets(keys)
        else:
            now = self.clock.now()
            self.store.put_targets(
                [
                    TargetRecord(tg_arn, ip, port, record.registered_at, now)
                    for _, ip, port in keys
                    if (record := self.store.target(tg_arn, ip, port)) is not None
                    and not record.draining
                ]
            )
        self.notify()

    def target_health(self, tg_arn: str, ip: str, port: int) -> TargetHealth | None:
        """(state, reason, description) of a registered target; None when it is not (or no
        longer) registered."""
        view = self.desired()
        record = view.targets.get(tg_arn, {}).get((ip, port))
        if record is None:
            return None
        lbs = view.load_balancers.get(tg_arn, ())
        if not lbs:
            return NOT_IN_USE
        return health_of(record, True, self._reports.get(lbs[0]))

    def is_deregistered(self, tg_arn: str, ip: str, port: int) -> bool:
        """True once the target is gone from the group (its draining finished)."""
        return (ip, port) not in self.desired().targets.get(tg_arn, {})

    # desired-state views ---------------------------------------------------------------------
    def load_balancers_of(self, tg_arn: str) -> list[str]:
        """ARNs of the load balancers whose listeners or rules forward to the group."""
        return list(self.desired().load_balancers.get(tg_arn, ()))

    def load_balancer_counters(self) -> list[LoadBalancerCounters]:
        """Each observed data plane's cumulative counters and target health at the last
        reading (`/metrics`), by load balancer and target group name."""

        def number(counters: dict[str, Any], key: str) -> float:
            return float(counters.get(key) or 0)

        out = []
        for lb_arn, counters in self._counters.items():
            groups = []
            for tg_arn, (healthy, unhealthy, _) in self._host_counts.get(lb_arn, {}).items():
                tg = counters.get(tg_arn) or {}
                groups.append(
                    TargetGroupCounters(
                        name=tg_arn.rsplit("/", 2)[1],
                        requests=number(tg, "requests"),
                        responses=tuple((c, number(tg, c)) for c in CODE_CLASSES),
                        response_time_sum=number(tg, "response_time_sum"),
                        response_time_count=int(number(tg, "response_time_count")),
                        healthy=healthy,
                        unhealthy=unhealthy,
                    )
                )
            lb = counters.get("load_balancer") or {}
            out.append(
                LoadBalancerCounters(
                    name=lb_arn.rsplit("/", 2)[1],
                    requests=number(lb, "requests"),
                    elb_5xx=number(lb, "elb_5xx"),
                    target_groups=tuple(groups),
                )
            )
        return out

    def target_requests(self) -> dict[str, dict[str, int]]:
        """Target group ARN → `ip:port` → requests its data plane sent to that target (cumulative
        since the container started, as read at the last pass; the console's requests per task)."""
        out: dict[str, dict[str, int]] = {}
        for counters in self._counters.values():
            for tg_arn, tg in counters.items():
                if tg_arn != "load_balancer" and isinstance(tg, dict):
                    out[tg_arn] = {k: int(v) for k, v in (tg.get("per_target") or {}).items()}
        return out

    def load_balancer_state(self, lb_arn: str) -> tuple[str, str | None]:
        """(Code, Reason): `active` once its data-plane container runs, `provisioning` before,
        `failed` with the engine's reason while the container cannot be run."""
        if lb_arn in self._running:
            return "active", None
        if lb_arn in self._failures:
            return "failed", self._failures[lb_arn]
        return "provisioning", None

    def host_port_free(self, port: int) -> bool:
        """Whether a listener could bind `port` on the engine host (checked where the engine
        is this host; elsewhere Docker reports the conflict when it publishes the port)."""
        if self._host_network is False:
            return True
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.settings.bind, port))
            except OSError:
                return False
        return True

    def desired_config(self, lb_arn: str) -> dict[str, Any]:
        lb = self.store.get(lb_arn, LOAD_BALANCER)
        attrs = attributes(lb) if lb else {}
        idle = attrs.get("idle_timeout.timeout_seconds", "60")
        listeners = self.store.all(LISTENER, lb_arn)
        rules = [r for listener in listeners for r in self.store.all(RULE, listener.arn)]
        records = self.store.targets()
        doc = build_config(
            listeners,
            rules,
            self.store.all(TARGET_GROUP),
            records,
            speed=self.clock.speed,
            bind=self.settings.bind if self._host_network is not False else "0.0.0.0",
            idle_timeout=int(idle),
            desync_mitigation_mode=attrs.get("routing.http.desync_mitigation_mode", "defensive"),
        )
        if self._down:
            down = {
                (r.tg_arn, r.ip, r.port)
                for r in records
                if r.ip in self._down and r.registered_at <= self._down[r.ip]
            }
            for tg in doc["target_groups"]:
                for target in tg["targets"]:
                    if (tg["arn"], target["ip"], target["port"]) in down:
                        target["down"] = True
        return doc

    # container deaths --------------------------------------------------------------------------
    async def watch_deaths(self, lost_ip: Callable[[str, str], str | None]) -> None:
        """Follow the engine's container deaths: when `lost_ip(task id, container name)` says a
        death costs a task its service (an essential or pause container), that IP's targets are
        pushed `down` to every data plane at once, without waiting for ECS to stop the task
        and deregister them: the data plane chooses them no more and answers their in-flight
        requests 502. DescribeTargetHealth is unchanged; ECS's deregistration follows."""
        while True:
            try:
                async for task_id, container in self.runtime.container_deaths():
                    ip = lost_ip(task_id, container)
                    if ip is None or not any(r.ip == ip for r in self.store.targets()):
                        continue
                    self._down[ip] = self.clock.now()
                    await self.push_all()
            except RuntimeUnavailable as exc:
                log.warning("ALB controller: container events: %s", exc)
            await asyncio.sleep(self.settings.interval)

    async def push_all(self) -> None:
        """Push the desired config to every running data plane now."""
        for lb_arn in list(self._running):
            lb = self.store.get(lb_arn, LOAD_BALANCER)
            if lb is not None:
                await self._push(lb_arn, self.docker_name(lb))

    # the loop ----------------------------------------------------------------------------------
    def notify(self) -> None:
        """The desired state changed: run a pass soon."""
        self._wake.set()

    async def run(self) -> None:
        guard = Guard("ALB controller", expected=(RuntimeUnavailable,))
        while True:
            self._wake.clear()
            await guard.run(self.once)
            await wait_event(self._wake, guard.pause(self.settings.interval))

    def docker_name(self, lb: Resource) -> str:
        lb_id = lb.arn.rsplit("/", 1)[1]
        return f"miniecs-alb-{lb.name}-{lb_id[:8]}-{self.instance[:6]}"

    async def once(self) -> None:
        if self._host_network is None:
            self._host_network = await self.runtime.host_network_usable()
        lbs = {lb.arn: lb for lb in self.store.all(LOAD_BALANCER)}
        for arn in [a for a in self._failures.keys() | self._retries.keys() if a not in lbs]:
            self._failures.pop(arn, None)
            self._retries.pop(arn, None)
        proxies: dict[str, ProxyObservation] = {}
        for proxy in await self.runtime.list_proxies():
            arn = proxy.labels.get(LABEL_LOAD_BALANCER, "")
            if arn not in lbs or arn in proxies:
                log.info("removing data-plane container %s (no load balancer)", proxy.docker_name)
                await self.runtime.remove_container(proxy.docker_name)
                if arn not in lbs:
                    self._forget(arn)
                continue
            proxies[arn] = proxy
        running = {}
        for arn, lb in lbs.items():
            name = await self._reconcile(lb, proxies.get(arn))
            if name is not None:
                running[arn] = name
        self._finish_drains(self.clock.now())
        if self._down:
            registered = {r.ip for r in self.store.targets()}
            for ip in [ip for ip in self._down if ip not in registered]:
                del self._down[ip]
        for arn, name in running.items():
            await self._push(arn, name)

    async def _reconcile(self, lb: Resource, proxy: ProxyObservation | None) -> str | None:
        """Make sure the load balancer's container runs and read its state; the name of an
        existing container whose config may need a push (None: just created, or failed)."""
        ports = _ports(self.store.all(LISTENER, lb.arn))
        ran = _labelled_ports(proxy) if proxy is not None else ports
        if proxy is not None and not proxy.running:
            log.warning("data plane of %s is %s: recreating it", lb.name, proxy.state)
            await self.runtime.remove_container(proxy.docker_name)
            proxy = None
        elif (
            proxy is not None
            and ran != ports
            and (not self._host_network or (_privileged(ports) and not _privileged(ran)))
        ):
            # Published ports are fixed at creation; on the host network only a newly needed
            # privileged port requires a new container.
            await self.runtime.remove_container(proxy.docker_name)
            proxy = None
        if proxy is None:
            self._forget(lb.arn)
            retry = self._retries.get(lb.arn)
            if retry is None or retry[2] != ports or self.clock.now() >= retry[1]:
                await self._create(lb, self.docker_name(lb), ports)
            return None
        self._running.add(lb.arn)
        await self._observe(lb, proxy.docker_name)
        return proxy.docker_name

    def _forget(self, lb_arn: str) -> None:
        self._pushed.pop(lb_arn, None)
        self._reports.pop(lb_arn, None)
        self._counters.pop(lb_arn, None)
        self._host_counts.pop(lb_arn, None)
        self._running.discard(lb_arn)
        for key in [k for k in self._drain_versions if k[0] == lb_arn]:
            del self._drain_versions[key]

    def _next_version(self, at_least: int = 0) -> int:
        self._version = max(self._version + 1, int(self.clock.now() * 1000), at_least + 1)
        return self._version

    def _document(self, lb_arn: str, version: int) -> tuple[str, bytes]:
        body = json.dumps(self.desired_config(lb_arn), sort_keys=True)
        doc = {"version": version, **json.loads(body)}
        self._record_drains(lb_arn, version, doc)
        return body, json.dumps(doc, indent=1).encode()

    def _record_drains(self, lb_arn: str, version: int, doc: dict[str, Any]) -> None:
        for tg in doc["target_groups"]:
            for target in tg["targets"]:
                if target["draining"]:
                    key = (lb_arn, tg["arn"], target["ip"], int(target["port"]))
                    self._drain_versions.setdefault(key, version)

    async def _create(self, lb: Resource, name: str, ports: tuple[int, ...]) -> None:
        version = self._next_version()
        body, data = self._document(lb.arn, version)
        spec = ProxySpec(
            docker_name=name,
            image=self.settings.image,
            labels={
                LABEL_MANAGED: "true",
                LABEL_INSTANCE: self.instance,
                LABEL_LOAD_BALANCER: lb.arn,
                LABEL_PORTS: ",".join(map(str, ports)),
            },
            # The image's entrypoint is `python3 -m albdp`; these are its arguments.
            command=["--config", CONFIG_PATH, "--state", STATE_PATH],
            files={CONFIG_PATH: data},
            host_network=bool(self._host_network),
            ports=ports,
            publish_address=self.settings.bind,
        )
        try:
            await self.runtime.run_proxy(spec)
        except (ImageUnavailable, ContainerCreateError) as exc:
            previous = self._retries.get(lb.arn)
            attempts = previous[0] + 1 if previous is not None and previous[2] == ports else 1
            wait = min(RETRY_CAP, self.settings.interval * 2 ** min(attempts - 1, 16))
            self._retries[lb.arn] = (attempts, self.clock.now() + wait * self.clock.speed, ports)
            if self._failures.get(lb.arn) != str(exc):
                log.error("cannot run the data plane of %s: %s", lb.name, exc)
            log.debug("next attempt to run the data plane of %s in %.0f s", lb.name, wait)
            self._failures[lb.arn] = str(exc)
            return
        self._failures.pop(lb.arn, None)
        self._retries.pop(lb.arn, None)
        log.info("data plane of %s started (%s)", lb.name, name)
        self._pushed[lb.arn] = (body, version)
        self._running.add(lb.arn)

    async def _push(self, lb_arn: str, docker_name: str) -> None:
        body = json.dumps(self.desired_config(lb_arn), sort_keys=True)
        pushed = self._pushed.get(lb_arn)
        if pushed is not None and pushed[0] == body:
            return
        report = self._reports.get(lb_arn)
        version = self._next_version(report.config_version if report else 0)
        body, data = self._document(lb_arn, version)
        try:
            await self.runtime.put_file(docker_name, CONFIG_PATH, data)
        except ContainerCreateError as exc:
            log.warning("cannot configure the data plane of %s: %s", lb_arn, exc)
            return
        self._pushed[lb_arn] = (body, version)

    async def _observe(self, lb: Resource, docker_name: str) -> None:
        raw = await self.runtime.read_file(docker_name, STATE_PATH)
        if raw is None:
            return
        try:
            doc = json.loads(raw)
            report = Report.parse(doc)
        except (ValueError, KeyError, TypeError):
            return
        self._reports[lb.arn] = report
        self._record_metrics(lb.arn, report, self.clock.now())

    def _finish_drains(self, now: float) -> None:
        """Remove draining targets whose deregistration is over at every load balancer that
        uses their group (at once when none does any more)."""
        done = []
        view = self.desired()
        for tg in view.target_groups.values():
            lbs = view.load_balancers.get(tg.arn, ())
            delay = float(attributes(tg)["deregistration_delay.timeout_seconds"])
            for record in view.targets.get(tg.arn, {}).values():
                if not record.draining:
                    continue
                finished = all(
                    drain_done(
                        record,
                        now,
                        delay,
                        self._reports.get(lb),
                        self._drain_versions.get((lb, tg.arn, record.ip, record.port)),
                    )
                    for lb in lbs
                )
                if finished:
                    done.append((tg.arn, record.ip, record.port))
        if done:
            self.store.remove_targets(done)
            gone = set(done)
            for key in [k for k in self._drain_versions if k[1:] in gone]:
                del self._drain_versions[key]
            log.info("deregistration finished for %s", done)
            self.notify()

    def _record_metrics(self, lb_arn: str, report: Report, now: float) -> None:
        previous = self._counters.get(lb_arn)
        self._counters[lb_arn] = report.counters
        host_counts: dict[str, tuple[int, int, int]] = {}
        view = self.desired()
        for tg in view.target_groups.values():
            if lb_arn not in view.load_balancers.get(tg.arn, ()):
                continue
            records = [r for r in view.targets.get(tg.arn, {}).values() if not r.draining]
            states = [health_of(r, True, report).state for r in records]
            host_counts[tg.arn] = (
                states.count("healthy"),
                states.count("unhealthy"),
                len(records),
            )
        self._host_counts[lb_arn] = host_counts
        if previous is None:
            previous = report.counters
        self.metrics.put_many(
            alb_metrics.datapoints(lb_arn, previous, report.counters, host_counts, now)
        )

"""Target health: AWS's state machine (pure) and the HTTP probe loop that feeds it.

A newly registered target is ``initial`` (``Elb.RegistrationInProgress``, then
``Elb.InitialHealthChecking``) and becomes ``healthy`` after ONE passing check, or ``unhealthy``
after UnhealthyThresholdCount failures; afterwards a healthy target turns unhealthy after
UnhealthyThresholdCount consecutive failures and back after HealthyThresholdCount consecutive
passes. ``draining`` is not a health result: it overlays the state while the target is being
deregistered. With health checks disabled the state is ``unavailable``
(``Target.HealthCheckDisabled``) and the target is routable. The probe runs every interval
divided by the control plane's clock ``speed``; its timeout is real seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from .config import HealthCheck, parse_matcher

USER_AGENT = "ELB-HealthChecker/2.0"
MAX_STATUS_LINE = 8192


class TargetState(StrEnum):
    INITIAL = "initial"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    UNAVAILABLE = "unavailable"


REGISTRATION_IN_PROGRESS = ("Elb.RegistrationInProgress", "Target registration is in progress")
INITIAL_HEALTH_CHECKING = ("Elb.InitialHealthChecking", "Initial health checks in progress")
DEREGISTRATION_IN_PROGRESS = (
    "Target.DeregistrationInProgress",
    "Target deregistration is in progress",
)
HEALTH_CHECK_DISABLED = ("Target.HealthCheckDisabled", "Health checks are disabled")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One probe's outcome; failures carry AWS's reason code and description."""

    ok: bool
    reason: str | None = None
    description: str | None = None

    @staticmethod
    def passed() -> CheckResult:
        return CheckResult(True)

    @staticmethod
    def code_mismatch(code: int) -> CheckResult:
        return CheckResult(
            False, "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{code}]"
        )

    @staticmethod
    def timed_out() -> CheckResult:
        return CheckResult(False, "Target.Timeout", "Request timed out")

    @staticmethod
    def failed() -> CheckResult:
        return CheckResult(False, "Target.FailedHealthChecks", "Health checks failed")


@dataclass(frozen=True, slots=True)
class Health:
    """A target's health as DescribeTargetHealth shows it, plus the consecutive-check counts."""

    state: TargetState
    reason: str | None
    description: str | None
    successes: int = 0
    failures: int = 0

    @property
    def routable(self) -> bool:
        return self.state in (TargetState.HEALTHY, TargetState.UNAVAILABLE)


def registered(check: HealthCheck) -> Health:
    """The health of a target just registered."""
    if not check.enabled:
        return Health(TargetState.UNAVAILABLE, *HEALTH_CHECK_DISABLED)
    return Health(TargetState.INITIAL, *REGISTRATION_IN_PROGRESS)


def checking(health: Health) -> Health:
    """The health once a first check is under way."""
    if health.state is TargetState.INITIAL and health.reason == REGISTRATION_IN_PROGRESS[0]:
        return replace(
            health, reason=INITIAL_HEALTH_CHECKING[0], description=INITIAL_HEALTH_CHECKING[1]
        )
    return health


def after_check(health: Health, result: CheckResult, check: HealthCheck) -> Health:
    """The health after one probe result, by AWS's thresholds."""
    if result.ok:
        successes, failures = health.successes + 1, 0
        if health.state is TargetState.INITIAL or (
            health.state is TargetState.UNHEALTHY and successes >= check.healthy_threshold
        ):
            return Health(TargetState.HEALTHY, None, None, successes, failures)
        return replace(health, successes=successes, failures=failures)
    successes, failures = 0, health.failures + 1
    if health.state is TargetState.UNHEALTHY or failures >= check.unhealthy_threshold:
        return Health(TargetState.UNHEALTHY, result.reason, result.description, successes, failures)
    if health.state is TargetState.INITIAL:
        return Health(TargetState.INITIAL, *INITIAL_HEALTH_CHECKING, successes, failures)
    return replace(health, successes=successes, failures=failures)


def matches(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


async def probe(
    ip: str, port: int, path: str, seconds: float, ranges: tuple[tuple[int, int], ...]
) -> CheckResult:
    """One HTTP GET health check against ``ip:port``."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(seconds):
            reader, writer = await asyncio.open_connection(ip, port, limit=MAX_STATUS_LINE)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
                "Accept: */*\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            line = await reader.readline()
    except TimeoutError:
        return CheckResult.timed_out()
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return CheckResult.failed()
    finally:
        if writer is not None:
            writer.close()
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return CheckResult.failed()
    code = int(parts[1])
    return CheckResult.passed() if matches(code, ranges) else CheckResult.code_mismatch(code)


async def check_loop(
    ip: str,
    port: int,
    check: HealthCheck,
    speed: float,
    get: Callable[[], Health],
    put: Callable[[Health], None],
) -> None:
    """Probe forever at the check's interval (divided by ``speed``), reporting through ``put``.

    The timeout is real seconds at any speed: AWS's HealthCheckTimeoutSeconds is how long no
    response means a failed check, a property of the target's real work, so a slow but healthy
    target is never flapped by the clock speed. A probe may then outlast the compressed
    interval; the next one starts an interval after it ends."""
    ranges = parse_matcher(check.matcher)
    interval = check.interval / speed
    timeout = check.timeout
    path = check.path
    while True:
        put(checking(get()))
        result = await probe(ip, port, path, timeout, ranges)
        put(after_check(get(), result, check))
        await asyncio.sleep(interval)

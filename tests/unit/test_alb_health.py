"""Target health: AWS's state machine, thresholds and reason codes, and the HTTP probe."""

from __future__ import annotations

import asyncio

import pytest

from miniecs.alb.dataplane.config import HealthCheck
from miniecs.alb.dataplane.health import (
    CheckResult,
    Health,
    TargetState,
    after_check,
    checking,
    probe,
    registered,
)

CHECK = HealthCheck(healthy_threshold=3, unhealthy_threshold=2)
OK = CheckResult.passed()
BAD = CheckResult.code_mismatch(503)


def run(results: list[CheckResult], health: Health | None = None) -> Health:
    health = health or checking(registered(CHECK))
    for result in results:
        health = after_check(health, result, CHECK)
    return health


def test_new_target_is_initial_then_checking() -> None:
    h = registered(CHECK)
    assert (h.state, h.reason) == (TargetState.INITIAL, "Elb.RegistrationInProgress")
    h = checking(h)
    assert (h.state, h.reason, h.description) == (
        TargetState.INITIAL,
        "Elb.InitialHealthChecking",
        "Initial health checks in progress",
    )


def test_a_new_target_needs_one_pass() -> None:
    h = run([OK])
    assert (h.state, h.reason, h.description) == (TargetState.HEALTHY, None, None)


def test_a_new_target_failing_becomes_unhealthy_after_the_threshold() -> None:
    assert run([BAD]).state is TargetState.INITIAL
    h = run([BAD, BAD])
    assert (h.state, h.reason, h.description) == (
        TargetState.UNHEALTHY,
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [503]",
    )


@pytest.mark.parametrize(
    ("results", "state"),
    [
        ([OK, BAD], TargetState.HEALTHY),
        ([OK, BAD, BAD], TargetState.UNHEALTHY),
        ([OK, BAD, OK, BAD], TargetState.HEALTHY),  # failures must be consecutive
        ([OK, BAD, BAD, OK, OK], TargetState.UNHEALTHY),
        ([OK, BAD, BAD, OK, OK, OK], TargetState.HEALTHY),  # healthy threshold 3
        ([OK, BAD, BAD, OK, OK, BAD, OK, OK, OK], TargetState.HEALTHY),
    ],
)
def test_thresholds_count_consecutive_results(
    results: list[CheckResult], state: TargetState
) -> None:
    assert run(results).state is state


def test_reason_follows_the_latest_failure() -> None:
    h = run([OK, BAD, CheckResult.timed_out()])
    assert (h.reason, h.description) == ("Target.Timeout", "Request timed out")
    h = after_check(h, CheckResult.failed(), CHECK)
    assert (h.reason, h.description) == ("Target.FailedHealthChecks", "Health checks failed")


def test_disabled_health_checks() -> None:
    h = registered(HealthCheck(enabled=False))
    assert (h.state, h.reason, h.routable) == (
        TargetState.UNAVAILABLE,
        "Target.HealthCheckDisabled",
        True,
    )


async def _server(response: bytes | None) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if response is None:
            await reader.read()  # say nothing until the prober gives up and closes
        else:
            writer.write(response)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", OK),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", BAD),
        (b"HTTP/1.1 202 Accepted\r\n\r\n", OK),  # matcher 200-299
        (b"garbage\r\n\r\n", CheckResult.failed()),
        (None, CheckResult.timed_out()),
    ],
)
async def test_probe(response: bytes | None, expected: CheckResult) -> None:
    server, port = await _server(response)
    async with server:
        result = await probe("127.0.0.1", port, "/health", 0.3, ((200, 299),))
        await asyncio.sleep(0.05)  # let the handler finish
    assert result == expected


async def test_probe_refused() -> None:
    server, port = await _server(b"")
    server.close()
    await server.wait_closed()
    assert await probe("127.0.0.1", port, "/", 0.5, ((200, 200),)) == CheckResult.failed()

"""Supervised loops: a failing pass is logged and backed off, a loop that ends is restarted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from miniecs.supervise import MAX_BACKOFF, Guard, supervise


async def test_a_failing_pass_is_logged_at_once_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = Guard("loop")

    def boom() -> None:
        raise RuntimeError("broken")

    assert not await guard.run(boom)
    assert "loop: pass failed" in caplog.text and "broken" in caplog.text
    assert guard.pause(0.5) == 0.5
    assert not await guard.run(boom)
    assert not await guard.run(boom)
    assert guard.pause(0.5) == 2.0
    for _ in range(10):
        await guard.run(boom)
    assert guard.pause(0.5) == MAX_BACKOFF
    assert guard.pause(60.0) == 60.0, "never shorter than the loop's own interval"

    async def fine() -> None:
        return None

    assert await guard.run(fine)
    assert guard.pause(0.5) == 0.5


async def test_an_expected_error_is_one_warning_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = Guard("loop", expected=(ConnectionError,))

    def away() -> None:
        raise ConnectionError("engine away")

    for _ in range(3):
        await guard.run(away)
    assert caplog.text.count("engine away") == 1
    assert "Traceback" not in caplog.text


async def test_a_loop_that_returns_or_crashes_is_reported_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def loop() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("crash")

    with caplog.at_level(logging.ERROR):
        task = asyncio.create_task(supervise("flaky", loop))
        while len(runs) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "flaky: loop crashed" in caplog.text
    assert "flaky: loop returned by itself" in caplog.text

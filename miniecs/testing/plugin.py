"""The pytest plugin (entry point ``pytest11: miniecs``): a session fixture ``miniecs``.

    def test_cluster(miniecs):
        miniecs.cluster("ci")
        assert miniecs.client("ecs").list_clusters()["clusterArns"]

Options: ``--miniecs-clock-speed`` (ini ``miniecs_clock_speed``, default 1) and
``$MINIECS_ENDPOINT`` to reuse a running miniecs instead of starting one. Everything the
session's miniecs caused is removed at the end, also when tests fail or the run is
interrupted (pytest tears session fixtures down on Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from miniecs.testing import MiniEcs


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("miniecs")
    group.addoption(
        "--miniecs-clock-speed",
        type=float,
        default=None,
        help="control-plane time of the session's miniecs runs this many times faster",
    )
    parser.addini("miniecs_clock_speed", "default for --miniecs-clock-speed", default="1")


@pytest.fixture(scope="session")
def miniecs(pytestconfig: pytest.Config) -> Iterator[MiniEcs]:
    """An embedded miniecs for the session: ``endpoint_url``, ``region``, ``instance``,
    ``client(service)``, ``cluster(name)``."""
    speed = pytestconfig.getoption("miniecs_clock_speed")
    if speed is None:
        speed = float(pytestconfig.getini("miniecs_clock_speed"))
    with MiniEcs(clock_speed=float(speed)) as m:
        yield m

"""Application Auto Scaling end to end, through boto3 only, at --clock-speed 12: real CPU load
pinned to one task of a real service scales it out (the study's trap: 1 -> 3 against a 40 %
target, then the 33 % average holds it), and it scales back in after the load stops."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from tests.conftest import Miniecs, _engine, wait_for
from tests.integration.test_services import running_tasks
from tests.integration.test_tasks import WORKLOAD, ip_of

pytestmark = pytest.mark.integration
SPEED = 12.0
IDS = {
    "ServiceNamespace": "ecs",
    "ResourceId": "service/svc/web",
    "ScalableDimension": "ecs:service:DesiredCount",
}


@pytest.fixture
def miniecs12(tmp_path: Path, images: None) -> Iterator[Miniecs]:
    """An engine whose control-plane clock runs twelve times faster than the wall."""
    yield from _engine(tmp_path, SPEED)


class Load:
    """Threads keeping one task's CPU busy with /work requests until stopped."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url, timeout=10) as r:
                r.read()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(15)

    def __exit__(self, *_: object) -> None:
        self.stop()


def desired(ecs: Any) -> int:
    return int(
        ecs.describe_services(cluster="svc", services=["web"])["services"][0]["desiredCount"]
    )


def scalable_service(m: Miniecs, target_value: float) -> tuple[Any, Any, dict[str, Any]]:
    """A service at 1 task, registered with [1, 4] and a CPU target-tracking policy."""
    ecs = m.client("ecs")
    aas = m.client("application-autoscaling")
    ecs.create_cluster(clusterName="svc")
    ecs.register_task_definition(**WORKLOAD)
    ecs.create_service(
        networkConfiguration=NETWORK,
        cluster="svc",
        serviceName="web",
        taskDefinition="web",
        desiredCount=1,
    )
    (task,) = wait_for(lambda: running_tasks(ecs), timeout=60)
    aas.register_scalable_target(**IDS, MinCapacity=1, MaxCapacity=4)
    policy = aas.put_scaling_policy(
        **IDS,
        PolicyName="cpu",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target_value,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
        },
    )
    assert [a["AlarmName"].split("-Alarm")[1][:4] for a in policy["Alarms"]] == ["High", "Low-"]
    return ecs, aas, task


def test_the_trap_one_hot_task_scales_out_to_three_and_holds(miniecs12: Miniecs) -> None:
    ecs, aas, task = scalable_service(miniecs12, 40.0)
    alarms = miniecs12.client("cloudwatch").describe_alarms(
        AlarmNamePrefix="TargetTracking-service/svc/web"
    )
    assert {a["Threshold"] for a in alarms["MetricAlarms"]} == {40.0, 36.0}
    with Load(f"http://{ip_of(task)}:8080/work?ms=400"):
        started = time.monotonic()
        wait_for(lambda: desired(ecs) == 3, timeout=90, interval=0.5)
        out_wall = time.monotonic() - started
        wait_for(lambda: len(running_tasks(ecs)) == 3, timeout=60)
        # The load stays on the first task: the average is ~33 %, under the target, and
        # ceil(3 x 33 / 40) = 3, so the service holds at 3 while that task stays hot.
        time.sleep(6 * 60 / SPEED)
        assert desired(ecs) == 3
        why = httpx.get(f"{miniecs12.endpoint}/_miniecs/scaling/svc/web", timeout=5).json()
        assert "although the busiest task is at" in why[-1]["decision"]["reason"]
    (activity,) = aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]
    assert activity["Description"] == "Setting desired count to 3."
    assert activity["Cause"].startswith("monitor alarm TargetTracking-service/svc/web-AlarmHigh-")
    assert activity["Cause"].endswith("in state ALARM triggered policy cpu")
    assert activity["StatusMessage"] == (
        "Successfully set desired count to 3. Change successfully fulfilled by ecs."
    )
    print(f"\ntrap: 1 -> 3 after {out_wall:.1f} s wall ({out_wall * SPEED:.0f} s control plane)")


def test_cpu_load_scales_out_then_in_after_the_load_stops(miniecs12: Miniecs) -> None:
    ecs, aas, task = scalable_service(miniecs12, 50.0)
    with Load(f"http://{ip_of(task)}:8080/work?ms=400") as load:
        started = time.monotonic()
        wait_for(lambda: desired(ecs) == 2, timeout=90, interval=0.5)
        out_wall = time.monotonic() - started
        wait_for(lambda: len(running_tasks(ecs)) == 2, timeout=60)
        time.sleep(3 * 60 / SPEED)  # ~50 % average: above AlarmLow's 45 %, so nothing moves
        assert desired(ecs) == 2
        load.stop()
        stopped = time.monotonic()
        wait_for(lambda: desired(ecs) == 1, timeout=180, interval=0.5)
        in_wall = time.monotonic() - stopped
    # AlarmLow needs 15 datapoints below 45 %: not before 15 periods after the load stopped.
    assert in_wall * SPEED >= 14 * 60
    activities = aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]
    assert [a["Description"] for a in activities] == [
        "Setting desired count to 1.",
        "Setting desired count to 2.",
    ]
    assert "-AlarmLow-" in activities[0]["Cause"]
    print(
        f"\n50 %: 1 -> 2 after {out_wall:.1f} s wall ({out_wall * SPEED:.0f} s control plane; "
        f"AWS minimum 180 s); 2 -> 1 after {in_wall:.1f} s wall ({in_wall * SPEED:.0f} s "
        "control plane; AWS minimum 900 s)"
    )

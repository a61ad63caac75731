"""A service behind target groups: registration, health gating, draining before stop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from miniecs.model import TaskStatus
from miniecs.scheduler.loop import ServiceScheduler
from miniecs.scheduler.targets import holds
from miniecs.tasks.controller import TaskController
from tests.component.conftest import Harness
from tests.component.test_services import describe, messages, running, service

TG = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/0123456789abcdef"


class FakeTargetGroups:
    """Target groups as the load balancer keeps them: register → initial, the test says
    when checks pass or fail, deregister → draining until the test finishes the drain."""

    def __init__(self) -> None:
        self.targets: dict[tuple[str, str, int], str] = {}

    def register_targets(self, tg_arn: str, targets: list[tuple[str, int]]) -> None:
        for ip, port in targets:
            self.targets.setdefault((tg_arn, ip, port), "initial")

    def deregister_targets(self, tg_arn: str, targets: list[tuple[str, int]]) -> None:
        for ip, port in targets:
            if (tg_arn, ip, port) in self.targets:
                self.targets[(tg_arn, ip, port)] = "draining"

    def target_health(
        self, tg_arn: str, ip: str, port: int
    ) -> tuple[str, str | None, str | None] | None:
        state = self.targets.get((tg_arn, ip, port))
        return None if state is None else (state, None, None)

    def set_all(self, old: str, new: str) -> None:
        for key, state in self.targets.items():
            if state == old:
                self.targets[key] = new

    def finish_draining(self) -> None:
        self.targets = {k: s for k, s in self.targets.items() if s != "draining"}


@pytest.fixture
async def lb_harness(harness: Harness) -> AsyncIterator[tuple[Harness, FakeTargetGroups]]:
    tgs = FakeTargetGroups()
    h = harness
    h.scheduler = ServiceScheduler(h.store, h.clock, load_balancing=tgs)

    def hold(task: object) -> bool:
        from miniecs.model import Task

        assert isinstance(task, Task)
        svc = h.store.get_service(task.cluster, task.service or "")
        return svc is not None and holds(task, svc, tgs)

    h.controller = TaskController(
        h.store, h.runtime, h.clock, h.controller.settings, "inst01", host_cpus=2, stop_hold=hold
    )
    yield h, tgs
    await h.controller.drain(1)


LB = {"loadBalancers": [{"targetGroupArn": TG, "containerName": "app", "containerPort": 8080}]}


async def test_running_tasks_are_registered_and_healthy_only_when_the_group_says_so(
    lb_harness: tuple[Harness, FakeTargetGroups],
) -> None:
    h, tgs = lb_harness
    service(h, 2, **LB)
    await h.settle()
    tasks = running(h)
    assert len(tasks) == 2
    assert {(TG, t.private_ip, 8080) for t in tasks} == set(tgs.targets)
    assert f"(service web) registered 2 targets in (target-group {TG})" in messages(h)
    # 40 s after RUNNING is not enough behind a load balancer: the group must say healthy.
    h.clock.advance(60)
    await h.settle()
    assert describe(h)["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    tgs.set_all("initial", "healthy")
    await h.settle()
    assert describe(h)["deployments"][0]["rolloutState"] == "COMPLETED"


async def test_a_task_chosen_to_stop_drains_before_its_containers_stop(
    lb_harness: tuple[Harness, FakeTargetGroups],
) -> None:
    h, tgs = lb_harness
    service(h, 2, **LB)
    await h.settle()
    tgs.set_all("initial", "healthy")
    await h.settle()
    h.ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 1})
    await h.settle()
    leaving = [t for t in h.store.list_tasks(cluster="c1") if t.desired_status.name == "STOPPED"]
    assert len(leaving) == 1
    assert leaving[0].last_status is TaskStatus.DEACTIVATING
    assert any(c.running for c in h.runtime.containers.values() if c.task_id == leaving[0].task_id)
    assert "(service web) has begun draining connections on 1 tasks." in messages(h)
    tgs.finish_draining()
    await h.settle()
    gone = h.store.get_task(leaving[0].task_id)
    assert gone is not None and gone.last_status is TaskStatus.STOPPED
    assert f"(service web) deregistered 1 targets in (target-group {TG})" in messages(h)


async def test_a_task_failing_elb_checks_is_replaced_after_the_grace_period(
    lb_harness: tuple[Harness, FakeTargetGroups],
) -> None:
    h, tgs = lb_harness
    service(h, 1, healthCheckGracePeriodSeconds=30, **LB)
    await h.settle()
    first = running(h)[0]
    tgs.set_all("initial", "unhealthy")
    await h.settle()
    assert running(h)[0].task_id == first.task_id  # still in its grace period
    h.clock.advance(31)
    await h.settle()
    stopped = h.store.get_task(first.task_id)
    assert stopped is not None
    assert stopped.stopped_reason == f"Task failed ELB health checks in (target-group {TG})"
    tgs.finish_draining()
    await h.settle()
    assert [t.task_id for t in running(h)] != [first.task_id]
    assert len(running(h)) == 1


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (
            {"targetGroupArn": TG, "containerName": "nope", "containerPort": 8080},
            "The container nope does not exist in the task definition.",
        ),
        (
            {"targetGroupArn": TG, "containerName": "app", "containerPort": 9999},
            "The container app did not have a container port 9999 defined.",
        ),
        ({"targetGroupArn": TG, "containerPort": 8080}, "Container Name can not be blank."),
    ],
)
async def test_bad_load_balancer_bindings_are_refused_and_change_nothing(
    harness: Harness, binding: dict[str, object], message: str
) -> None:
    from miniecs.errors import AwsError

    with pytest.raises(AwsError) as err:
        service(harness, 1, loadBalancers=[binding])
    assert (err.value.code, err.value.message) == ("InvalidParameterException", message)
    assert harness.store.list_services() == []


async def test_a_target_group_without_a_load_balancer_is_refused(harness: Harness) -> None:
    from miniecs.errors import AwsError

    harness.ecs.target_group_attached = lambda arn: False
    with pytest.raises(AwsError) as err:
        service(harness, 1, **LB)
    assert err.value.message == (
        f"The target group with targetGroupArn {TG} does not have an associated load balancer."
    )


TG2 = TG.replace("/web/", "/web2/")


async def test_new_load_balancers_roll_out_as_a_new_deployment(
    lb_harness: tuple[Harness, FakeTargetGroups],
) -> None:
    h, tgs = lb_harness
    service(h, 1, **LB)
    await h.settle()
    tgs.set_all("initial", "healthy")
    await h.settle()
    (old,) = running(h)
    h.ecs.update_service(
        {
            "cluster": "c1",
            "service": "web",
            "loadBalancers": [
                {"targetGroupArn": TG2, "containerName": "app", "containerPort": 8080}
            ],
        }
    )
    await h.settle()
    deployments = describe(h)["deployments"]
    assert len(deployments) == 2
    new = [t for t in running(h) if t.task_id != old.task_id]
    assert len(new) == 1
    assert (TG2, new[0].private_ip, 8080) in tgs.targets
    assert (TG, new[0].private_ip, 8080) not in tgs.targets
    tgs.set_all("initial", "healthy")
    await h.settle()
    # The old task leaves the old group it was registered in, then stops.
    assert tgs.targets.get((TG, old.private_ip, 8080)) == "draining"
    tgs.finish_draining()
    await h.settle()
    stopped = h.store.get_task(old.task_id)
    assert stopped is not None and stopped.last_status is TaskStatus.STOPPED


async def test_a_stopped_task_never_deregisters_a_live_task_that_got_its_ip(
    lb_harness: tuple[Harness, FakeTargetGroups],
) -> None:
    import dataclasses

    h, tgs = lb_harness
    service(h, 2, **LB)
    await h.settle()
    tgs.set_all("initial", "healthy")
    await h.settle()
    a, b = running(h)
    # b stops; its target drains; a replacement would get a fresh IP, but force a collision:
    # pretend b's IP now belongs to the live task a (as a reused address would).
    h.store.update_task(b.task_id, lambda t: dataclasses.replace(t, private_ip=a.private_ip))
    h.ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 1})
    for _ in range(3):
        h.scheduler.once()
    assert tgs.targets[(TG, a.private_ip, 8080)] == "healthy"

"""The Application Auto Scaling loop: at every period end of the control-plane clock it
evaluates the alarms, runs due scheduled actions, decides for each scalable target and applies
the decision by writing the service's desired count, the one field it owns.

The write goes through `Store.update_service_spec`, the call UpdateService uses, with a service
event; the scaling activity is recorded in AWS's words, InProgress with its cooldown before the
write and Successful after it, so a crash at any point never applies a decision twice. Every
evaluation, acted on or not, is kept with its inputs in a bounded history so `miniecs why` can
explain it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from miniecs.autoscaler.alarms import AlarmEvaluation, due, evaluate
from miniecs.autoscaler.decide import Decision, Direction, PolicyInput, Situation, decide
from miniecs.autoscaler.model import (
    FAILED,
    IN_PROGRESS,
    SUCCESSFUL,
    Alarm,
    PolicyType,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
    resource_parts,
)
from miniecs.autoscaler.schedule import ScheduleError, next_run
from miniecs.autoscaler.store import ScalingStore
from miniecs.clock import Clock
from miniecs.metrics.store import MetricStore
from miniecs.model import DeploymentStatus, RolloutState, Service, TaskStatus, add_event
from miniecs.quotas import TASKS_PER_SERVICE
from miniecs.store import Store
from miniecs.supervise import Guard

log = logging.getLogger(__name__)

TICK = 20.0
"""Control-plane seconds between passes: the shortest alarm period (high resolution)."""
HISTORY = 200
"""Evaluations kept per scalable target for `miniecs why`."""


def set_desired_message(capacity: int) -> str:
    return f"Setting desired count to {capacity}."


def fulfilled_message(capacity: int) -> str:
    return f"Successfully set desired count to {capacity}. Change successfully fulfilled by ecs."


def failed_message(capacity: int, reason: str) -> str:
    return f"Failed to set desired count to {capacity}. Reason: {reason}."


def deployment_in_progress(service: Service) -> bool:
    return any(
        d.status is not DeploymentStatus.INACTIVE and d.rollout_state is RolloutState.IN_PROGRESS
        for d in service.deployments
    )


def _points(ev: AlarmEvaluation) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": p.timestamp,
            "value": p.value,
            "sampleCount": p.stats.sample_count,
            "minimum": p.stats.minimum,
            "maximum": p.stats.maximum,
            "breaching": p.breaching,
        }
        for p in ev.points
    ]


class AutoScaler:
    def __init__(
        self,
        store: Store,
        scaling: ScalingStore,
        metrics: MetricStore,
        clock: Clock,
        tick: float = TICK,
        settle: float = 0.0,
    ) -> None:
        """`settle`: control-plane seconds a period's datapoints may take to arrive after it
        ends (the publisher writes a period at its first sample after the period); alarms
        evaluate the periods that ended at least that long ago."""
        self.store = store
        self.scaling = scaling
        self.metrics = metrics
        self.clock = clock
        self.tick = tick
        self.settle = settle
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self._evaluations: dict[str, AlarmEvaluation] = {}
        self._resumed = False

    async def run(self) -> None:
        guard = Guard("autoscaler")
        await guard.run(self._resume)
        while True:
            settled = self.clock.now() - self.settle
            await self.clock.sleep((math.floor(settled / self.tick) + 1) * self.tick - settled)
            await guard.run(self.once)

    def once(self) -> dict[str, Decision]:
        """One pass at the current time: alarms, scheduled actions, decisions. The first
        pass after a start completes the scaling activities a crash interrupted."""
        self._resume()
        now = self.clock.now()
        settled = now - self.settle
        evaluated: set[str] = set()
        alarms = {a.name: a for a in self.scaling.list_alarms()}
        for alarm in alarms.values():
            if due(alarm, settled):
                ev = evaluate(alarm, self.metrics, settled)
                self.scaling.put_alarm(ev.alarm)
                self._evaluations[alarm.name] = ev
                alarms[alarm.name] = ev.alarm
                evaluated.add(alarm.name)
        for name in set(self._evaluations) - set(alarms):
            del self._evaluations[name]
        decisions = {}
        for target in self.scaling.list_targets():
            service = self.store.get_service(target.cluster, target.service)
            if service is None or service.status == "INACTIVE":
                # Deleting an ECS service deregisters its scalable target, as on AWS.
                self.scaling.delete_target(target.resource_id)
                self.forget(target.resource_id)
                continue
            target, acted = self._scheduled_actions(target, now)
            if acted:  # a scheduled action may have written the desired count
                service = self.store.get_service(target.cluster, target.service)
            policies = self.scaling.list_policies(target.resource_id)
            inputs = [self._policy_input(p, alarms, settled) for p in policies]
            if service is None or not any(
                a.alarm.name in evaluated for pi in inputs for a in pi.alarms
            ):
                continue
            decision = self.evaluate_target(target, service, tuple(inputs), now)
            if decision is not None:
                decisions[target.resource_id] = decision
        return decisions

    def _policy_input(
        self, policy: ScalingPolicy, alarms: dict[str, Alarm], settled: float
    ) -> PolicyInput:
        if policy.policy_type is PolicyType.TARGET_TRACKING:
            names = list(policy.alarm_names)
        else:
            names = [
                a.name for a in alarms.values() if a.actions_enabled and policy.arn in a.actions
            ]
        out = []
        for name in names:
            alarm = alarms.get(name)
            if alarm is None:
                continue
            cached = self._evaluations.get(name)
            if cached is None or cached.alarm.configured_at != alarm.configured_at:
                cached = evaluate(alarm, self.metrics, settled)
                self._evaluations[name] = cached
            out.append(cached)
        return PolicyInput(policy, tuple(out))

    def evaluate_target(
        self,
        target: ScalableTarget,
        service: Service,
        inputs: tuple[PolicyInput, ...],
        now: float,
    ) -> Decision | None:
        """Decide for one target from one read of its service, apply the decision and record
        it for `why`."""
        if service.status != "ACTIVE":
            return None
        if any(
            pi.policy.policy_type is PolicyType.TARGET_TRACKING and len(pi.alarms) != 2
            for pi in inputs
        ):
            return None
        running = sum(
            t.last_status is TaskStatus.RUNNING
            for t in self.store.list_tasks(
                cluster=target.cluster, service=target.service, live_only=True
            )
        )
        situation = Situation(
            target=target,
            policies=inputs,
            desired=service.desired_count,
            running=running,
            deployment_in_progress=deployment_in_progress(service),
            now=now,
        )
        decision = decide(situation)
        applied = False
        if decision.capacity is not None and decision.capacity != service.desired_count:
            applied = self.apply(target, service, decision, now)
        self._record(situation, decision, applied)
        return decision

    def apply(
        self, target: ScalableTarget, service: Service, decision: Decision, now: float
    ) -> bool:
        """Start the cooldown with the activity, then write the new desired count."""
        capacity = decision.capacity
        assert capacity is not None
        previous = service.desired_count

        def cooldown(current: ScalableTarget) -> ScalableTarget:
            if decision.direction is Direction.OUT:
                in_cooldown = now < current.scale_out_until
                return dataclasses.replace(
                    current,
                    scale_out_until=now + decision.cooldown,
                    scale_out_base=current.scale_out_base if in_cooldown else previous,
                    scale_in_until=0.0,
                )
            return dataclasses.replace(current, scale_in_until=now + decision.cooldown)

        return self.set_desired(target, service, capacity, decision.cause, now, cooldown)

    def set_desired(
        self,
        target: ScalableTarget,
        service: Service,
        capacity: int,
        cause: str,
        now: float,
        cooldown: Callable[[ScalableTarget], ScalableTarget] | None = None,
    ) -> bool:
        """Set the service's desired count (`service` as read for the decision) as
        UpdateService does, as a scaling activity; False if the service is no longer active.

        The steps are ordered so that a crash between any two of them never applies a
        decision twice: (1) the InProgress activity and the cooldown, in one transaction;
        (2) the desired count with its service event, in one ECS write; (3) the activity's
        outcome. `finish_interrupted` completes an activity a crash left InProgress."""
        if service.status != "ACTIVE":
            return False
        activity = ScalingActivity(
            activity_id=str(uuid.uuid4()),
            resource_id=target.resource_id,
            description=set_desired_message(capacity),
            cause=cause,
            start_time=now,
            end_time=None,
            status_code=IN_PROGRESS,
            status_message="",
            capacity=capacity,
            previous=service.desired_count,
        )
        self.scaling.start_activity(activity, cooldown)
        if not self._fulfil(activity, now):
            return False
        log.info("%s: desired count %s (%s)", target.resource_id, capacity, cause)
        return True

    def _fulfil(self, activity: ScalingActivity, now: float) -> bool:
        """Write the activity's desired count to the service, then record the outcome."""
        assert activity.capacity is not None
        # ECS refuses a desired count beyond its tasks-per-service quota, whatever MaxCapacity.
        capacity = min(activity.capacity, TASKS_PER_SERVICE)
        cluster, name = resource_parts(activity.resource_id)
        written: list[bool] = []

        def change(service: Service) -> Service:
            if service.status != "ACTIVE":
                return service
            written.append(True)
            updated = dataclasses.replace(service, desired_count=capacity)
            return add_event(
                updated,
                f"(service {service.name}) has its desired count set to {capacity} by "
                f"Application Auto Scaling. Cause: {activity.cause}",
                now,
            )

        self.store.update_service_spec(cluster, name, change)
        if written:
            self._finish(activity, SUCCESSFUL, fulfilled_message(capacity), now)
        else:
            self._finish(
                activity, FAILED, failed_message(capacity, f"ECS service {name} is not active"), now
            )
        return bool(written)

    def _finish(self, activity: ScalingActivity, status: str, message: str, now: float) -> None:
        self.scaling.put_activity(
            dataclasses.replace(activity, status_code=status, status_message=message, end_time=now)
        )

    def _resume(self) -> None:
        if not self._resumed:
            self._resumed = True
            self.finish_interrupted()

    def finish_interrupted(self) -> None:
        """Complete the activities a crash left InProgress, each at most once: if the service
        already has the activity's desired count the crash came after the ECS write and the
        activity succeeded; if it still has the count from before, the write is made now (its
        cooldown is already recorded); otherwise something else changed the count since, and
        the activity failed."""
        now = self.clock.now()
        for activity in self.scaling.list_activities():
            if activity.status_code != IN_PROGRESS:
                continue
            cluster, name = resource_parts(activity.resource_id)
            service = self.store.get_service(cluster, name)
            capacity = activity.capacity
            if service is None or service.status != "ACTIVE" or capacity is None:
                reason = f"ECS service {name} is not active"
            elif service.desired_count == capacity:
                self._finish(activity, SUCCESSFUL, fulfilled_message(capacity), now)
                continue
            elif service.desired_count == activity.previous:
                self._fulfil(activity, now)
                continue
            else:
                reason = f"the desired count changed to {service.desired_count} meanwhile"
            self._finish(activity, FAILED, failed_message(capacity or 0, reason), now)
            log.warning("%s: interrupted scaling activity failed: %s", activity.resource_id, reason)

    def clamp_into_bounds(self, target: ScalableTarget, now: float, cause: str) -> None:
        """Move the desired count into [min, max] at once (RegisterScalableTarget, scheduled
        actions), as Application Auto Scaling does."""
        self._resume()
        service = self.store.get_service(target.cluster, target.service)
        if service is None or service.status != "ACTIVE":
            return
        capacity = max(target.min_capacity, min(target.max_capacity, service.desired_count))
        if capacity != service.desired_count:
            self.set_desired(target, service, capacity, cause, now)

    def _scheduled_actions(self, target: ScalableTarget, now: float) -> tuple[ScalableTarget, bool]:
        """Run the due scheduled actions; the target as updated, and whether any ran."""
        if target.scheduled_suspended:
            return target, False
        acted = False
        for action in self.scaling.list_scheduled(target.resource_id):
            try:
                when = next_run(action, action.last_run or action.created_at)
            except ScheduleError:
                continue
            if when is None or when > now:
                continue
            target = self._run_scheduled(target, action, now)
            acted = True
        return target, acted

    def _run_scheduled(
        self, target: ScalableTarget, action: ScheduledAction, now: float
    ) -> ScalableTarget:
        lo = action.min_capacity if action.min_capacity is not None else target.min_capacity
        hi = action.max_capacity if action.max_capacity is not None else target.max_capacity
        target = dataclasses.replace(target, min_capacity=lo, max_capacity=max(hi, lo))
        self.scaling.put_target(target)
        self.scaling.put_scheduled(dataclasses.replace(action, last_run=now))
        cause = f"scheduled action name {action.name} was triggered"
        self.clamp_into_bounds(target, now, cause)
        self._remember(
            target.resource_id,
            {
                "at": now,
                "resourceId": target.resource_id,
                "scheduledAction": action.name,
                "decision": {
                    "direction": "none",
                    "capacity": None,
                    "reason": f"scheduled action {action.name} set MinCapacity {lo}, "
                    f"MaxCapacity {hi}",
                },
                "applied": False,
            },
        )
        return target

    def _record(self, s: Situation, decision: Decision, applied: bool) -> None:
        t = s.target
        policies = []
        for pi, proposal in zip(s.policies, decision.proposals, strict=True):
            policies.append(
                {
                    "policyName": pi.policy.name,
                    "policyType": pi.policy.policy_type.value,
                    "targetValue": pi.policy.configuration.get("TargetValue"),
                    "alarms": [
                        {
                            "name": ev.alarm.name,
                            "state": ev.state.value,
                            "threshold": ev.alarm.threshold,
                            "comparison": ev.alarm.comparison,
                            "metric": f"{ev.alarm.namespace}/{ev.alarm.metric_name}",
                            "statistic": ev.alarm.statistic,
                            "period": ev.alarm.period,
                            "datapoints": _points(ev),
                        }
                        for ev in pi.alarms
                    ],
                    "proposal": {
                        "direction": proposal.direction.value,
                        "capacity": proposal.capacity,
                        "formula": proposal.formula,
                        "reason": proposal.reason,
                    },
                }
            )
        self._remember(
            t.resource_id,
            {
                "at": s.now,
                "resourceId": t.resource_id,
                "desiredCount": s.desired,
                "runningCount": s.running,
                "minCapacity": t.min_capacity,
                "maxCapacity": t.max_capacity,
                "suspendedState": {
                    "DynamicScalingInSuspended": t.dynamic_in_suspended,
                    "DynamicScalingOutSuspended": t.dynamic_out_suspended,
                    "ScheduledScalingSuspended": t.scheduled_suspended,
                },
                "deploymentInProgress": s.deployment_in_progress,
                "scaleOutCooldownRemaining": max(0.0, t.scale_out_until - s.now),
                "scaleInCooldownRemaining": max(0.0, t.scale_in_until - s.now),
                "policies": policies,
                "decision": {
                    "direction": decision.direction.value,
                    "capacity": decision.capacity,
                    "reason": decision.reason,
                    "cause": decision.cause,
                },
                "applied": applied,
            },
        )

    def _remember(self, resource_id: str, entry: dict[str, Any]) -> None:
        self.history.setdefault(resource_id, deque(maxlen=HISTORY)).append(entry)

    def why(self, resource_id: str) -> list[dict[str, Any]]:
        """The recent evaluations of one target, oldest first."""
        return list(self.history.get(resource_id, ()))

    def forget(self, resource_id: str) -> None:
        self.history.pop(resource_id, None)

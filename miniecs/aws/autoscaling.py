"""Application Auto Scaling (AWS JSON 1.1, `AnyScaleFrontendService.<Op>`) for ECS services:
scalable targets, scaling policies with their CloudWatch alarms, activities and scheduled
actions; plus the `AlarmSource` CloudWatch's alarm operations use.

Handlers validate, then write through the autoscaler's store; a refused request changes
nothing. The loop (`miniecs.autoscaler.loop`) does the scaling.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import uuid
from collections.abc import Iterable
from typing import Any

from miniecs.autoscaler.alarms import (
    ALB_REQUEST_COUNT,
    COMPARISONS,
    PREDEFINED_TYPES,
    target_tracking_alarms,
)
from miniecs.autoscaler.loop import AutoScaler
from miniecs.autoscaler.model import (
    DIMENSION,
    NAMESPACE,
    Alarm,
    AlarmState,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
)
from miniecs.autoscaler.schedule import ScheduleError, validate
from miniecs.autoscaler.store import ScalingStore
from miniecs.clock import Clock
from miniecs.errors import (
    AwsError,
    ObjectNotFoundException,
    ValidationError,
    ValidationException,
)
from miniecs.store import Store

from .protocols import paginate, service_model

ROLE_ARN = (
    "arn:aws:iam::000000000000:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_ECSService"
)
_RESOURCE_ID = re.compile(r"^service/[A-Za-z0-9_-]{1,255}/[A-Za-z0-9_-]{1,255}$")
_RESOURCE_LABEL = re.compile(r"^app/[^/]+/[^/]+/targetgroup/[^/]+/[^/]+$")
TARGET_VALUE_LIMIT = 2.0**360
"""TargetValue must lie within (-2^360, 2^360) (API_TargetTrackingScalingPolicyConfiguration)."""


def input_error(report: str) -> AwsError:
    """Requests that do not fit the input shapes get Application Auto Scaling's error."""
    return ValidationException(report)


def _enum(value: str, shape: str, where: str) -> None:
    allowed = service_model("application-autoscaling").shape_for(shape).enum
    if value not in allowed:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
        )


def _unsupported() -> ValidationException:
    return ValidationException("Unsupported service namespace, resource type or scalable dimension")


def _resource(req: dict[str, Any], dimension_required: bool = True) -> str:
    """The ResourceId of an ECS service target, after checking namespace and dimension."""
    _enum(req["ServiceNamespace"], "ServiceNamespace", "serviceNamespace")
    if req.get("ScalableDimension") is not None:
        _enum(req["ScalableDimension"], "ScalableDimension", "scalableDimension")
    if req["ServiceNamespace"] != NAMESPACE:
        raise _unsupported()
    dimension = req.get("ScalableDimension")
    if (dimension_required or dimension is not None) and dimension != DIMENSION:
        raise _unsupported()
    resource_id = str(req.get("ResourceId", ""))
    if not _RESOURCE_ID.match(resource_id):
        raise _unsupported()
    return resource_id


def _no_target(resource_id: str) -> ObjectNotFoundException:
    return ObjectNotFoundException(
        f"No scalable target registered for service namespace: {NAMESPACE}, resource ID: "
        f"{resource_id}, scalable dimension: {DIMENSION}"
    )


def _ids(resource_id: str) -> dict[str, str]:
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id,
        "ScalableDimension": DIMENSION,
    }


class AutoScalingApi:
    def __init__(
        self,
        store: Store,
        scaling: ScalingStore,
        autoscaler: AutoScaler,
        clock: Clock,
        region: str,
    ) -> None:
        self.store = store
        self.scaling = scaling
        self.autoscaler = autoscaler
        self.clock = clock
        self.region = region

    def _target(self, resource_id: str) -> ScalableTarget:
        target = self.scaling.get_target(resource_id)
        if target is None:
            raise _no_target(resource_id)
        return target

    # scalable targets -------------------------------------------------------------------
    def register_scalable_target(self, req: dict[str, Any]) -> dict[str, Any]:
        resource_id = _resource(req)
        cluster, name = resource_id.split("/")[1:]
        service = self.store.get_service(cluster, name)
        if service is None or service.status != "ACTIVE":
            raise ValidationException(f"ECS service doesn't exist: {resource_id}")
        existing = self.scaling.get_target(resource_id)
        lo = req.get("MinCapacity", existing.min_capacity if existing else None)
        hi = req.get("MaxCapacity", existing.max_capacity if existing else None)
        if lo is None or hi is None:
            raise ValidationException(
                "MinCapacity and MaxCapacity are required to register a new scalable target"
            )
        if lo < 0 or hi < 0:
            raise ValidationException("Minimum and maximum capacity must not be negative")
        if lo > hi:
            raise ValidationException("Minimum capacity cannot be greater than maximum capacity")
        suspended = req.get("SuspendedState") or {}
        now = self.clock.now()
        base = existing or ScalableTarget(
            resource_id=resource_id,
            min_capacity=lo,
            max_capacity=hi,
            created_at=now,
            target_id=uuid.uuid4().hex,
            region=self.region,
            role_arn=req.get("RoleARN") or ROLE_ARN,
        )
        target = dataclasses.replace(
            base,
            min_capacity=int(lo),
            max_capacity=int(hi),
            dynamic_in_suspended=suspended.get(
                "DynamicScalingInSuspended", base.dynamic_in_suspended
            ),
            dynamic_out_suspended=suspended.get(
                "DynamicScalingOutSuspended", base.dynamic_out_suspended
            ),
            scheduled_suspended=suspended.get(
                "ScheduledScalingSuspended", base.scheduled_suspended
            ),
        )
        self.scaling.put_target(target)
        self.autoscaler.clamp_into_bounds(
            target,
            now,
            f"scalable target registered with minimum capacity {target.min_capacity} and "
            f"maximum capacity {target.max_capacity}",
        )
        return {"ScalableTargetARN": target.arn}

    def describe_scalable_targets(self, req: dict[str, Any]) -> dict[str, Any]:
        _enum(req["ServiceNamespace"], "ServiceNamespace", "serviceNamespace")
        if req.get("ScalableDimension") is not None:
            _enum(req["ScalableDimension"], "ScalableDimension", "scalableDimension")
        ids = set(req.get("ResourceIds") or ())
        targets = [
            t
            for t in self.scaling.list_targets()
            if req["ServiceNamespace"] == NAMESPACE
            and req.get("ScalableDimension") in (None, DIMENSION)
            and (not ids or t.resource_id in ids)
        ]
        page, token = self._page(targets, req)
        return {"ScalableTargets": [self._target_shape(t) for t in page], "NextToken": token}

    def _target_shape(self, t: ScalableTarget) -> dict[str, Any]:
        return {
            **_ids(t.resource_id),
            "MinCapacity": t.min_capacity,
            "MaxCapacity": t.max_capacity,
            "RoleARN": t.role_arn,
            "CreationTime": t.created_at,
            "SuspendedState": {
                "DynamicScalingInSuspended": t.dynamic_in_suspended,
                "DynamicScalingOutSuspended": t.dynamic_out_suspended,
                "ScheduledScalingSuspended": t.scheduled_suspended,
            },
            "ScalableTargetARN": t.arn,
        }

    def deregister_scalable_target(self, req: dict[str, Any]) -> dict[str, Any]:
        resource_id = _resource(req)
        self._target(resource_id)
        self.scaling.delete_target(resource_id)
        self.autoscaler.forget(resource_id)
        return {}

    @staticmethod
    def _page(items: list[Any], req: dict[str, Any]) -> tuple[list[Any], str | None]:
        size = req.get("MaxResults")
        if size is not None and not 1 <= size <= 50:
            raise ValidationException("MaxResults must be between 1 and 50")
        try:
            return paginate(items, req.get("NextToken"), size, default=50)
        except AwsError:
            raise AwsError("Invalid token", code="InvalidNextTokenException") from None

    # scaling policies -------------------------------------------------------------------
    def put_scaling_policy(self, req: dict[str, Any]) -> dict[str, Any]:
        resource_id = _resource(req)
        kind = req.get("PolicyType", PolicyType.STEP.value)
        _enum(kind, "PolicyType", "policyType")
        if kind not in (PolicyType.TARGET_TRACKING.value, PolicyType.STEP.value):
            raise ValidationException(
                f"Unsupported policy type {kind} for service namespace {NAMESPACE} in miniecs"
            )
        target = self._target(resource_id)
        policy_type = PolicyType(kind)
        if policy_type is PolicyType.TARGET_TRACKING:
            config = req.get("TargetTrackingScalingPolicyConfiguration")
            if config is None:
                raise ValidationException(
                    "TargetTrackingScalingPolicyConfiguration is required for a policy of type "
                    "TargetTrackingScaling"
                )
            self._check_target_tracking(config)
        else:
            config = req.get("StepScalingPolicyConfiguration")
            if config is None:
                raise ValidationException(
                    "StepScalingPolicyConfiguration is required for a policy of type StepScaling"
                )
            self._check_step(config)
        now = self.clock.now()
        existing = self.scaling.get_policy(resource_id, req["PolicyName"])
        policy = ScalingPolicy(
            name=req["PolicyName"],
            resource_id=resource_id,
            policy_id=existing.policy_id if existing else str(uuid.uuid4()),
            policy_type=policy_type,
            configuration=dict(config),
            created_at=existing.created_at if existing else now,
            region=self.region,
        )
        alarms: list[Alarm] = []
        if policy_type is PolicyType.TARGET_TRACKING:
            alarms = list(target_tracking_alarms(target, policy, now))
            policy = dataclasses.replace(policy, alarm_names=tuple(a.name for a in alarms))
        replaced = list(existing.alarm_names) if existing else []
        self.scaling.put_policy(policy, alarms, replaced)
        shown = alarms or self._step_alarms(policy)
        return {
            "PolicyARN": policy.arn,
            "Alarms": [{"AlarmName": a.name, "AlarmARN": a.arn} for a in shown],
        }

    @staticmethod
    def _check_target_tracking(config: dict[str, Any]) -> None:
        value = float(config["TargetValue"])
        if not math.isfinite(value) or not 0 < value < TARGET_VALUE_LIMIT:
            raise ValidationException(
                f"The target value {value} is out of range: it must be greater than 0 and "
                "less than 2^360"
            )
        predefined = config.get("PredefinedMetricSpecification")
        custom = config.get("CustomizedMetricSpecification")
        if (predefined is None) == (custom is None):
            raise ValidationException(
                "Exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification "
                "must be specified"
            )
        for key in ("ScaleOutCooldown", "ScaleInCooldown"):
            if config.get(key, 0) < 0:
                raise ValidationException(f"{key} must be greater than or equal to 0")
        if predefined is not None:
            metric = predefined["PredefinedMetricType"]
            _enum(
                metric,
                "MetricType",
                "targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification."
                "predefinedMetricType",
            )
            if metric not in PREDEFINED_TYPES:
                raise ValidationException(
                    f"Unsupported predefined metric type {metric} for service namespace {NAMESPACE}"
                )
            label = predefined.get("ResourceLabel")
            if metric == ALB_REQUEST_COUNT:
                if not label or not _RESOURCE_LABEL.match(label):
                    raise ValidationException(
                        f"Invalid resource label {label!r} for predefined metric type "
                        f"{ALB_REQUEST_COUNT}: expected app/<load-balancer-name>/<id>/"
                        "targetgroup/<target-group-name>/<id>"
                    )
            elif label is not None:
                raise ValidationException(
                    f"Resource label is not supported for predefined metric type {metric}"
                )
            return
        assert custom is not None
        if custom.get("Metrics"):
            raise ValidationException(
                "miniecs supports customized metrics without metric math (Metrics)"
            )
        for key in ("MetricName", "Namespace", "Statistic"):
            if not custom.get(key):
                raise ValidationException(f"{key} is required in CustomizedMetricSpecification")
        _enum(
            custom["Statistic"],
            "MetricStatistic",
            "targetTrackingScalingPolicyConfiguration.customizedMetricSpecification.statistic",
        )

    @staticmethod
    def _check_step(config: dict[str, Any]) -> None:
        if config.get("AdjustmentType") is None:
            raise ValidationException("AdjustmentType is required for StepScaling policies")
        steps = config.get("StepAdjustments") or []
        if not steps:
            raise ValidationException("StepAdjustments is required for StepScaling policies")

        def bounds(step: dict[str, Any]) -> tuple[float, float]:
            lo = step.get("MetricIntervalLowerBound")
            hi = step.get("MetricIntervalUpperBound")
            return (-math.inf if lo is None else lo, math.inf if hi is None else hi)

        spans = sorted(bounds(s) for s in steps)
        for lo, hi in spans:
            if lo >= hi:
                raise ValidationException(
                    "Step adjustment's lower bound must be less than its upper bound"
                )
        for (_, hi), (lo, _) in itertools.pairwise(spans):
            if hi > lo:
                raise ValidationException("Step adjustments must not overlap")
            if hi < lo:
                raise ValidationException("Step adjustments must not have gaps between them")
        if config.get("Cooldown", 0) < 0:
            raise ValidationException("Cooldown must be greater than or equal to 0")

    def _step_alarms(self, policy: ScalingPolicy) -> list[Alarm]:
        return [a for a in self.scaling.list_alarms() if policy.arn in a.actions]

    def _policy_alarms(self, policy: ScalingPolicy) -> list[Alarm]:
        if policy.policy_type is PolicyType.TARGET_TRACKING:
            found = (self.scaling.get_alarm(n) for n in policy.alarm_names)
            return [a for a in found if a is not None]
        return self._step_alarms(policy)

    def describe_scaling_policies(self, req: dict[str, Any]) -> dict[str, Any]:
        _enum(req["ServiceNamespace"], "ServiceNamespace", "serviceNamespace")
        names = set(req.get("PolicyNames") or ())
        policies = [
            p
            for p in self.scaling.list_policies(req.get("ResourceId"))
            if req["ServiceNamespace"] == NAMESPACE
            and req.get("ScalableDimension") in (None, DIMENSION)
            and (not names or p.name in names)
        ]
        page, token = self._page(policies, req)
        return {"ScalingPolicies": [self._policy_shape(p) for p in page], "NextToken": token}

    def _policy_shape(self, p: ScalingPolicy) -> dict[str, Any]:
        key = (
            "TargetTrackingScalingPolicyConfiguration"
            if p.policy_type is PolicyType.TARGET_TRACKING
            else "StepScalingPolicyConfiguration"
        )
        return {
            "PolicyARN": p.arn,
            "PolicyName": p.name,
            **_ids(p.resource_id),
            "PolicyType": p.policy_type.value,
            key: p.configuration,
            "Alarms": [{"AlarmName": a.name, "AlarmARN": a.arn} for a in self._policy_alarms(p)],
            "CreationTime": p.created_at,
        }

    def delete_scaling_policy(self, req: dict[str, Any]) -> dict[str, Any]:
        resource_id = _resource(req)
        policy = self.scaling.get_policy(resource_id, req["PolicyName"])
        if policy is None:
            raise ObjectNotFoundException(
                f"No scaling policy found for service namespace: {NAMESPACE}, resource ID: "
                f"{resource_id}, scalable dimension: {DIMENSION}, policy name: "
                f"{req['PolicyName']}"
            )
        self.scaling.delete_policy(policy)
        return {}

    # activities -------------------------------------------------------------------------
    def describe_scaling_activities(self, req: dict[str, Any]) -> dict[str, Any]:
        _enum(req["ServiceNamespace"], "ServiceNamespace", "serviceNamespace")
        activities = (
            self.scaling.list_activities(req.get("ResourceId"))
            if req["ServiceNamespace"] == NAMESPACE
            and req.get("ScalableDimension") in (None, DIMENSION)
            else []
        )
        page, token = self._page(activities, req)
        return {
            "ScalingActivities": [
                {
                    "ActivityId": a.activity_id,
                    **_ids(a.resource_id),
                    "Description": a.description,
                    "Cause": a.cause,
                    "StartTime": a.start_time,
                    "EndTime": a.end_time,
                    "StatusCode": a.status_code,
                    "StatusMessage": a.status_message,
                }
                for a in page
            ],
            "NextToken": token,
        }

    # scheduled actions ------------------------------------------------------------------
    def put_scheduled_action(self, req: dict[str, Any]) -> dict[str, Any]:
        resource_id = _resource(req)
        self._target(resource_id)
        name = req["ScheduledActionName"]
        existing = self.scaling.get_scheduled(resource_id, name)
        schedule = req.get("Schedule") or (existing.schedule if existing else None)
        if schedule is None:
            raise ValidationException("Schedule is required to create a scheduled action")
        timezone = req.get("Timezone") or (existing.timezone if existing else "UTC")
        try:
            validate(schedule, timezone)
        except ScheduleError as exc:
            raise ValidationException(str(exc)) from None
        action = req.get("ScalableTargetAction") or {}
        lo = action.get("MinCapacity", existing.min_capacity if existing else None)
        hi = action.get("MaxCapacity", existing.max_capacity if existing else None)
        if lo is not None and hi is not None and lo > hi:
            raise ValidationException("Minimum capacity cannot be greater than maximum capacity")
        now = self.clock.now()
        record = ScheduledAction(
            name=name,
            resource_id=resource_id,
            action_id=existing.action_id if existing else str(uuid.uuid4()),
            schedule=schedule,
            created_at=existing.created_at if existing else now,
            region=self.region,
            timezone=timezone,
            start_time=_seconds(req.get("StartTime"), existing.start_time if existing else None),
            end_time=_seconds(req.get("EndTime"), existing.end_time if existing else None),
            min_capacity=lo,
            max_capacity=hi,
            last_run=existing.last_run if existing and existing.schedule == schedule else None,
        )
        self.scaling.put_scheduled(record)
        return {}

    def describe_scheduled_actions(self, req: dict[str, Any]) -> dict[str, Any]:
        _enum(req["ServiceNamespace"], "ServiceNamespace", "serviceNamespace")
        names = set(req.get("ScheduledActionNames") or ())
        actions = [
            a
            for a in self.scaling.list_scheduled(req.get("ResourceId"))
            if req["ServiceNamespace"] == NAMESPACE
            and req.get("ScalableDimension") in (None, DIMENSION)
            and (not names or a.name in names)
        ]
        page, token = self._page(actions, req)
        out = []
        for a in page:
            shape: dict[str, Any] = {
                "ScheduledActionName": a.name,
                "ScheduledActionARN": a.arn,
                **_ids(a.resource_id),
                "Schedule": a.schedule,
                "Timezone": a.timezone,
                "StartTime": a.start_time,
                "EndTime": a.end_time,
                "CreationTime": a.created_at,
            }
            bounds = {"MinCapacity": a.min_capacity, "MaxCapacity": a.max_capacity}
            shape["ScalableTargetAction"] = {k: v for k, v in bounds.items() if v is not None}
            out.append(shape)
        return {"ScheduledActions": out, "NextToken": token}

    def delete_scheduled_action(self, req: dict[str, Any]) -> dict[str, Any]:
        resource_id = _resource(req)
        name = req["ScheduledActionName"]
        if self.scaling.get_scheduled(resource_id, name) is None:
            raise ObjectNotFoundException(
                f"No scheduled action found for service namespace: {NAMESPACE}, resource ID: "
                f"{resource_id}, scalable dimension: {DIMENSION}, scheduled action name: {name}"
            )
        self.scaling.delete_scheduled(resource_id, name)
        return {}


def _seconds(value: Any, default: float | None) -> float | None:
    if value is None:
        return default
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


class ScalingAlarms:
    """The CloudWatch alarms the autoscaler evaluates, as CloudWatch's `AlarmSource`:
    target-tracking alarms appear in DescribeAlarms; PutMetricAlarm adds a user's alarm (the
    trigger of a step scaling policy named in its AlarmActions)."""

    def __init__(self, scaling: ScalingStore, clock: Clock, region: str) -> None:
        self.scaling = scaling
        self.clock = clock
        self.region = region

    def put_metric_alarm(self, request: dict[str, Any]) -> None:
        req = request
        if req.get("Metrics") or req.get("ExtendedStatistic") or req.get("ThresholdMetricId"):
            raise ValidationError(
                "miniecs alarms watch one metric with a standard statistic and a static threshold"
            )
        for key in ("MetricName", "Namespace", "Statistic", "Period", "Threshold"):
            if req.get(key) is None:
                raise ValidationError(f"{key} is required.")
        comparison = req["ComparisonOperator"]
        if comparison not in COMPARISONS:
            raise ValidationError(f"ComparisonOperator {comparison} is not supported by miniecs.")
        period = int(req["Period"])
        if period not in (10, 20, 30) and period % 60:
            raise ValidationError("Period must be 10, 20, 30 or a multiple of 60.")
        evaluation = int(req["EvaluationPeriods"])
        to_alarm = int(req.get("DatapointsToAlarm") or evaluation)
        if to_alarm > evaluation:
            raise ValidationError(
                "DatapointsToAlarm must be less than or equal to EvaluationPeriods."
            )
        now = self.clock.now()
        existing = self.scaling.get_alarm(req["AlarmName"])
        alarm = Alarm(
            name=req["AlarmName"],
            region=self.region,
            namespace=req["Namespace"],
            metric_name=req["MetricName"],
            dimensions=tuple(sorted((d["Name"], d["Value"]) for d in req.get("Dimensions") or ())),
            statistic=req["Statistic"],
            period=period,
            evaluation_periods=evaluation,
            datapoints_to_alarm=to_alarm,
            threshold=float(req["Threshold"]),
            comparison=comparison,
            configured_at=now,
            description=req.get("AlarmDescription") or "",
            unit=req.get("Unit"),
            actions=tuple(req.get("AlarmActions") or ()),
            ok_actions=tuple(req.get("OKActions") or ()),
            insufficient_data_actions=tuple(req.get("InsufficientDataActions") or ()),
            actions_enabled=req.get("ActionsEnabled", True),
            state_updated_at=now,
            datapoints_to_alarm_given=req.get("DatapointsToAlarm") is not None,
        )
        if existing is not None:
            # An update replaces the configuration and leaves the state as it is until the
            # next evaluation; an alarm a target-tracking policy created stays that policy's.
            alarm = dataclasses.replace(
                alarm,
                owner_policy=existing.owner_policy,
                state=existing.state,
                state_reason=existing.state_reason,
                state_updated_at=existing.state_updated_at,
                evaluated_until=existing.evaluated_until,
            )
        self.scaling.put_alarm(alarm)

    def describe_alarms(self, request: dict[str, Any]) -> dict[str, Any]:
        req = request
        types = req.get("AlarmTypes") or ["MetricAlarm"]
        names = set(req.get("AlarmNames") or ())
        prefix = req.get("AlarmNamePrefix") or ""
        state = req.get("StateValue")
        action = req.get("ActionPrefix")
        alarms = [
            a
            for a in self.scaling.list_alarms()
            if "MetricAlarm" in types
            and (not names or a.name in names)
            and a.name.startswith(prefix)
            and (state is None or a.state.value == state)
            and (action is None or any(x.startswith(action) for x in a.actions))
        ]
        size = req.get("MaxRecords") or 50
        try:
            page, token = paginate(alarms, req.get("NextToken"), min(size, 100), default=50)
        except AwsError:
            raise AwsError("Invalid NextToken.", code="InvalidNextToken") from None
        return {
            "MetricAlarms": [alarm_shape(a) for a in page],
            "CompositeAlarms": [],
            "NextToken": token,
        }

    def describe_alarms_for_metric(self, request: dict[str, Any]) -> dict[str, Any]:
        """The metric alarms on one metric, narrowed by whatever else the request gives."""
        req = request
        dims = req.get("Dimensions")
        wanted = None if dims is None else tuple(sorted((d["Name"], d["Value"]) for d in dims))
        alarms = [
            alarm_shape(a)
            for a in self.scaling.list_alarms()
            if a.metric_name == req["MetricName"]
            and a.namespace == req["Namespace"]
            and (wanted is None or a.dimensions == wanted)
            and req.get("Statistic") in (None, a.statistic)
            and req.get("Period") in (None, a.period)
            and req.get("Unit") in (None, a.unit)
            and req.get("ExtendedStatistic") is None
        ]
        return {"MetricAlarms": alarms}

    def set_alarm_state(self, request: dict[str, Any]) -> None:
        """Set the state until the next evaluation, as CloudWatch does (for testing actions)."""
        alarm = self.scaling.get_alarm(request["AlarmName"])
        if alarm is None:
            raise AwsError(
                f"Alarm {request['AlarmName']} does not exist", code="ResourceNotFound", status=404
            )
        data = request.get("StateReasonData")
        if data is not None:
            try:
                json.loads(data)
            except ValueError:
                raise AwsError("StateReasonData is not valid JSON.", code="InvalidFormat") from None
        try:
            state = AlarmState(request["StateValue"])
        except ValueError:
            raise AwsError(
                f"Value '{request['StateValue']}' at 'stateValue' failed to satisfy constraint: "
                "Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]",
                code="ValidationError",
            ) from None
        self.scaling.put_alarm(
            dataclasses.replace(
                alarm,
                state=state,
                state_reason=request["StateReason"],
                state_reason_data=data,
                state_updated_at=self.clock.now(),
            )
        )

    def set_alarm_actions(self, names: Iterable[str], enabled: bool) -> None:
        """EnableAlarmActions/DisableAlarmActions: names that match no alarm are ignored, as
        CloudWatch ignores them."""
        for name in names:
            alarm = self.scaling.get_alarm(name)
            if alarm is not None:
                self.scaling.put_alarm(dataclasses.replace(alarm, actions_enabled=enabled))

    def delete_alarms(self, request: dict[str, Any]) -> None:
        names: Iterable[str] = request.get("AlarmNames") or ()
        missing = [n for n in names if self.scaling.get_alarm(n) is None]
        if missing:
            raise AwsError(f"{', '.join(missing)} not found", code="ResourceNotFound", status=404)
        self.scaling.delete_alarms(list(names))


def alarm_shape(a: Alarm) -> dict[str, Any]:
    """A MetricAlarm as DescribeAlarms returns it."""
    return {
        "AlarmName": a.name,
        "AlarmArn": a.arn,
        "AlarmDescription": a.description or None,
        "AlarmConfigurationUpdatedTimestamp": a.configured_at,
        "ActionsEnabled": a.actions_enabled,
        "OKActions": list(a.ok_actions),
        "AlarmActions": list(a.actions),
        "InsufficientDataActions": list(a.insufficient_data_actions),
        "StateValue": a.state.value,
        "StateReason": a.state_reason,
        "StateReasonData": a.state_reason_data,
        "StateUpdatedTimestamp": a.state_updated_at,
        "StateTransitionedTimestamp": a.state_updated_at,
        "MetricName": a.metric_name,
        "Namespace": a.namespace,
        "Statistic": a.statistic,
        "Dimensions": [{"Name": k, "Value": v} for k, v in a.dimensions],
        "Period": a.period,
        "Unit": a.unit,
        "EvaluationPeriods": a.evaluation_periods,
        "DatapointsToAlarm": a.datapoints_to_alarm if a.datapoints_to_alarm_given else None,
        "Threshold": a.threshold,
        "ComparisonOperator": a.comparison,
    }

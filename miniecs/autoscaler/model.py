"""Application Auto Scaling's resources as miniecs keeps them: scalable targets, scaling
policies, CloudWatch alarms, scaling activities and scheduled actions.

Records are frozen; a change is `dataclasses.replace`. Policy configurations keep the AWS
document a user sent (with AWS's defaults filled in), because DescribeScalingPolicies echoes it.
Only ECS services are scalable here: namespace `ecs`, dimension `ecs:service:DesiredCount`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from miniecs.config import ACCOUNT_ID

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
DEFAULT_COOLDOWN = 300.0
"""Seconds; ECS services' default for ScaleOutCooldown, ScaleInCooldown and step Cooldown."""
LOW_ALARM_RATIO = 0.9
"""AlarmLow fires below this fraction of the target value (target 50 -> 45)."""


class AlarmState(enum.StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class PolicyType(enum.StrEnum):
    TARGET_TRACKING = "TargetTrackingScaling"
    STEP = "StepScaling"


def resource_parts(resource_id: str) -> tuple[str, str]:
    """(cluster, service) of `service/<cluster>/<service>`."""
    _, cluster, service = resource_id.split("/")
    return cluster, service


@dataclass(frozen=True, slots=True)
class ScalableTarget:
    resource_id: str
    """`service/<cluster>/<service>`."""
    min_capacity: int
    max_capacity: int
    created_at: float
    target_id: str
    region: str
    role_arn: str = ""
    dynamic_in_suspended: bool = False
    dynamic_out_suspended: bool = False
    scheduled_suspended: bool = False
    scale_out_until: float = 0.0
    """Control-plane time the running scale-out cooldown ends (0: none)."""
    scale_out_base: int = 0
    """Capacity before the scale-out that started the cooldown: during the cooldown the
    capacity it added counts as already there, so only a larger scale-out passes."""
    scale_in_until: float = 0.0
    """Control-plane time the running scale-in cooldown ends (0: none)."""

    @property
    def cluster(self) -> str:
        return resource_parts(self.resource_id)[0]

    @property
    def service(self) -> str:
        return resource_parts(self.resource_id)[1]

    @property
    def arn(self) -> str:
        return (
            f"arn:aws:application-autoscaling:{self.region}:{ACCOUNT_ID}:"
            f"scalable-target/{self.target_id}"
        )


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    name: str
    resource_id: str
    policy_id: str
    policy_type: PolicyType
    configuration: dict[str, Any]
    """TargetTrackingScalingPolicyConfiguration or StepScalingPolicyConfiguration, AWS-shaped."""
    created_at: float
    region: str
    alarm_names: tuple[str, ...] = ()
    """The target-tracking alarms this policy owns (none for step scaling)."""

    @property
    def arn(self) -> str:
        return (
            f"arn:aws:autoscaling:{self.region}:{ACCOUNT_ID}:scalingPolicy:{self.policy_id}:"
            f"resource/{NAMESPACE}/{self.resource_id}:policyName/{self.name}"
        )

    @property
    def target_value(self) -> float:
        return float(self.configuration["TargetValue"])


@dataclass(frozen=True, slots=True)
class Alarm:
    """A CloudWatch metric alarm: target-tracking ones belong to a policy, others to the user."""

    name: str
    region: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    """GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold, ..."""
    configured_at: float
    description: str = ""
    unit: str | None = None
    actions: tuple[str, ...] = ()
    """AlarmActions: the ARNs of the scaling policies it triggers."""
    ok_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    actions_enabled: bool = True
    owner_policy: str | None = None
    """ARN of the target-tracking policy that created it; None for a user's alarm."""
    state: AlarmState = AlarmState.INSUFFICIENT_DATA
    state_reason: str = "Unchecked: Initial alarm creation"
    state_updated_at: float = 0.0
    evaluated_until: float = 0.0
    """End of the last period evaluated; the next evaluation waits for the next period end."""
    datapoints_to_alarm_given: bool = True
    """Whether DatapointsToAlarm was set (CloudWatch omits it from DescribeAlarms otherwise)."""
    state_reason_data: str | None = None
    """StateReasonData of the last SetAlarmState, until the next evaluation changes the state."""

    @property
    def arn(self) -> str:
        return f"arn:aws:cloudwatch:{self.region}:{ACCOUNT_ID}:alarm:{self.name}"


IN_PROGRESS = "InProgress"
SUCCESSFUL = "Successful"
FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class ScalingActivity:
    activity_id: str
    resource_id: str
    description: str
    cause: str
    start_time: float
    end_time: float | None
    status_code: str
    """InProgress, Successful or Failed."""
    status_message: str
    capacity: int | None = None
    """The desired count the activity sets."""
    previous: int | None = None
    """The service's desired count when the activity started."""


@dataclass(frozen=True, slots=True)
class ScheduledAction:
    name: str
    resource_id: str
    action_id: str
    schedule: str
    created_at: float
    region: str
    timezone: str = "UTC"
    start_time: float | None = None
    end_time: float | None = None
    min_capacity: int | None = None
    max_capacity: int | None = None
    last_run: float | None = None
    """Control-plane time of the last run (None: never ran)."""

    @property
    def arn(self) -> str:
        return (
            f"arn:aws:autoscaling:{self.region}:{ACCOUNT_ID}:scheduledAction:{self.action_id}:"
            f"resource/{NAMESPACE}/{self.resource_id}:scheduledActionName/{self.name}"
        )

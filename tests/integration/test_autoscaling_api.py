"""Application Auto Scaling's API through boto3 (every response checked by botocore's
validator): targets, policies with their alarms, scheduled actions, and AWS's errors."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from tests.conftest import Miniecs
from tests.integration.test_tasks import WORKLOAD

pytestmark = pytest.mark.integration
IDS = {
    "ServiceNamespace": "ecs",
    "ResourceId": "service/svc/web",
    "ScalableDimension": "ecs:service:DesiredCount",
}
CPU50 = {
    "TargetValue": 50.0,
    "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
}


def error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def test_targets_policies_scheduled_actions_and_errors(fast_miniecs: Miniecs) -> None:
    ecs = fast_miniecs.client("ecs")
    aas = fast_miniecs.client("application-autoscaling")
    cloudwatch = fast_miniecs.client("cloudwatch")
    ecs.create_cluster(clusterName="svc")
    ecs.register_task_definition(**WORKLOAD)
    ecs.create_service(
        networkConfiguration=NETWORK,
        cluster="svc",
        serviceName="web",
        taskDefinition="web",
        desiredCount=0,
    )

    assert error(aas.register_scalable_target, **IDS, MinCapacity=3, MaxCapacity=2) == (
        "ValidationException",
        "Minimum capacity cannot be greater than maximum capacity",
    )
    code, message = error(
        aas.register_scalable_target,
        **{**IDS, "ServiceNamespace": "nosuch"},
        MinCapacity=0,
        MaxCapacity=2,
    )
    assert code == "ValidationException" and "Member must satisfy enum value set" in message
    assert error(
        aas.register_scalable_target,
        **{**IDS, "ResourceId": "svc/web"},
        MinCapacity=0,
        MaxCapacity=2,
    ) == (
        "ValidationException",
        "Unsupported service namespace, resource type or scalable dimension",
    )
    assert error(
        aas.put_scaling_policy,
        **IDS,
        PolicyName="cpu",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=CPU50,
    ) == (
        "ObjectNotFoundException",
        "No scalable target registered for service namespace: ecs, resource ID: "
        "service/svc/web, scalable dimension: ecs:service:DesiredCount",
    )
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []

    arn = aas.register_scalable_target(**IDS, MinCapacity=0, MaxCapacity=3)["ScalableTargetARN"]
    aas.register_scalable_target(**IDS, MaxCapacity=5)  # an update keeps MinCapacity
    (target,) = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"], target["ScalableTargetARN"]) == (
        0,
        5,
        arn,
    )

    code, message = error(
        aas.put_scaling_policy,
        **IDS,
        PolicyName="cpu",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            **CPU50,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "CPUIsHigh"},
        },
    )
    assert code == "ValidationException" and "'CPUIsHigh'" in message
    code, _ = error(
        aas.put_scaling_policy,
        **IDS,
        PolicyName="cpu",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={**CPU50, "TargetValue": -1.0},
    )
    assert code == "ValidationException"
    assert aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []

    tracking = aas.put_scaling_policy(
        **IDS,
        PolicyName="cpu",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=CPU50,
    )
    step_arn = aas.put_scaling_policy(
        **IDS,
        PolicyName="steps",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
        },
    )["PolicyARN"]
    cloudwatch.put_metric_alarm(
        AlarmName="queue-deep",
        Namespace="App",
        MetricName="Depth",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=100,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[step_arn],
    )
    policies = {
        p["PolicyName"]: p
        for p in aas.describe_scaling_policies(
            ServiceNamespace="ecs", ResourceId=IDS["ResourceId"]
        )["ScalingPolicies"]
    }
    assert policies["cpu"]["Alarms"] == tracking["Alarms"]
    assert [a["AlarmName"] for a in policies["steps"]["Alarms"]] == ["queue-deep"]
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    assert len(alarms) == 3
    high = next(a for a in alarms if "-AlarmHigh-" in a["AlarmName"])
    assert high["AlarmDescription"] == (
        f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {tracking['PolicyARN']}."
    )
    assert (high["EvaluationPeriods"], high["Period"], high["StateValue"]) == (
        3,
        60,
        "INSUFFICIENT_DATA",
    )
    # Updating the target-tracking alarm changes its configuration; it stays the policy's.
    cloudwatch.put_metric_alarm(
        AlarmName=high["AlarmName"],
        Namespace="AWS/ECS",
        MetricName="CPUUtilization",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=3,
        Threshold=60,
        ComparisonOperator="GreaterThanThreshold",
    )
    (updated,) = cloudwatch.describe_alarms(AlarmNames=[high["AlarmName"]])["MetricAlarms"]
    assert (updated["Threshold"], updated["StateValue"]) == (60, "INSUFFICIENT_DATA")
    assert updated["StateUpdatedTimestamp"] == high["StateUpdatedTimestamp"]

    aas.put_scheduled_action(
        **IDS,
        ScheduledActionName="nightly",
        Schedule="cron(0 3 * * ? *)",
        ScalableTargetAction={"MinCapacity": 0, "MaxCapacity": 2},
    )
    assert (
        error(aas.put_scheduled_action, **IDS, ScheduledActionName="bad", Schedule="every(5)")[0]
        == "ValidationException"
    )
    (action,) = aas.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"]
    assert (action["Schedule"], action["ScalableTargetAction"]) == (
        "cron(0 3 * * ? *)",
        {"MinCapacity": 0, "MaxCapacity": 2},
    )
    aas.delete_scheduled_action(**IDS, ScheduledActionName="nightly")
    assert error(aas.delete_scheduled_action, **IDS, ScheduledActionName="nightly")[0] == (
        "ObjectNotFoundException"
    )

    aas.delete_scaling_policy(**IDS, PolicyName="cpu")
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]] == ["queue-deep"]
    assert error(aas.delete_scaling_policy, **IDS, PolicyName="cpu")[0] == "ObjectNotFoundException"
    assert aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"] == []

    aas.deregister_scalable_target(**IDS)
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []
    assert error(aas.deregister_scalable_target, **IDS)[0] == "ObjectNotFoundException"

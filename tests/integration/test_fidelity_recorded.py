"""miniecs's answers, through boto3, compared field by field with AWS-recorded responses (issue
14, item 5). Source of every recorded response: the aws CLI's bundled examples
(`awscli/examples/<service>/<command>.rst`, example number in each case), recorded from AWS.
Each case makes the example's call (same names and inputs where miniecs can take them) and
compares with `tests/fidelity.compare`.

KNOWN lists the differences that remain, each with why; the test fails on any other
difference and on a known one that no longer occurs, so the list stays true. The counts are
printed (`pytest -s`) for the report.
"""

from __future__ import annotations

import time
from typing import Any

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from tests.conftest import Miniecs, wait_for
from tests.fidelity import Comparison, compare, recorded
from tests.integration.test_tasks import WORKLOAD

FAST = {"Delay": 1, "MaxAttempts": 120}

STOPPED_ALREADY = (
    "the recorded StopTask answer is of a task that had already failed to start; miniecs "
    "answers for a RUNNING task, which then stops in the background (desiredStatus STOPPED at "
    "once), as ECS answers for a running task"
)
KNOWN: dict[str, str] = {
    "ecs/stop-task#1: task.lastStatus: 'STOPPED' expected, got 'RUNNING'": STOPPED_ALREADY,
    "ecs/stop-task#1: task.stoppingAt: missing": STOPPED_ALREADY,
    "ecs/stop-task#1: task.executionStoppedAt: missing": STOPPED_ALREADY,
    "ecs/stop-task#1: task.stoppedAt: missing": STOPPED_ALREADY,
    "ecs/update-cluster#2: cluster.serviceConnectDefaults: missing": (
        "Service Connect (Cloud Map namespaces) is not emulated"
    ),
}
"""Differences that remain, by case and path, with the reason."""


def check(results: list[Comparison], source: str, aws: Any, ours: Any) -> None:
    c = Comparison(source)
    compare(aws, {k: v for k, v in ours.items() if k != "ResponseMetadata"}, c)
    results.append(c)


def report(results: list[Comparison]) -> None:
    found = {f"{c.source}: {d}" for c in results for d in c.differences}
    total = sum(c.comparisons for c in results)
    print(
        f"\nfidelity: {len(results)} recorded responses, {total} comparisons, {len(found)} differ"
    )
    for line in sorted(found):
        print("  ", line, "(known)" if line in KNOWN else "(NEW)")
    expected = {k for k in KNOWN if k.split(":")[0] in {c.source for c in results}}
    assert found == expected, sorted(found ^ expected)


def test_ecs_responses_match_aws_recorded(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    results: list[Comparison] = []

    # create-cluster #1 and #3 (tags); describe-clusters #1; update-cluster-settings #1.
    enhanced = [{"name": "containerInsights", "value": "enhanced"}]
    out = ecs.create_cluster(clusterName="MyCluster", settings=enhanced)
    check(results, "ecs/create-cluster#1", recorded("ecs", "create-cluster", 0), out)
    tags = [{"key": "key1", "value": "value1"}, {"key": "key2", "value": "value2"}]
    out = ecs.create_cluster(clusterName="MyCluster3", tags=tags)
    check(results, "ecs/create-cluster#3", recorded("ecs", "create-cluster", 2), out)
    out = ecs.describe_clusters(clusters=["MyCluster"])
    check(results, "ecs/describe-clusters#1", recorded("ecs", "describe-clusters", 0), out)
    out = ecs.update_cluster_settings(cluster="MyCluster", settings=enhanced)
    check(
        results,
        "ecs/update-cluster-settings#1",
        recorded("ecs", "update-cluster-settings", 0),
        out,
    )
    out = ecs.put_cluster_capacity_providers(
        cluster="MyCluster",
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[
            {"capacityProvider": "FARGATE", "weight": 1, "base": 0},
            {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0},
        ],
    )
    aws = recorded("ecs", "put-cluster-capacity-providers", 0)
    for strategy in aws["cluster"]["defaultCapacityProviderStrategy"]:
        strategy["capacityProvider"] = strategy["capacityProvider"].replace(
            "MyCapacityProvider1", "FARGATE"
        )
    aws["cluster"]["capacityProviders"] = ["FARGATE", "FARGATE_SPOT"]
    aws["cluster"]["settings"] = enhanced  # set by this test's create-cluster
    check(results, "ecs/put-cluster-capacity-providers#1", aws, out)
    out = ecs.update_cluster(
        cluster="MyCluster", settings=[{"name": "containerInsights", "value": "enabled"}]
    )
    aws = recorded("ecs", "update-cluster", 1)
    aws["cluster"]["capacityProviders"] = ["FARGATE"]
    aws["cluster"]["defaultCapacityProviderStrategy"][0]["capacityProvider"] = "FARGATE"
    check(results, "ecs/update-cluster#2", aws, out)

    # register-task-definition #1 (sleep360, bridge); describe-task-definition #1.
    out = ecs.register_task_definition(
        family="sleep360",
        containerDefinitions=[
            {
                "name": "sleep",
                "image": "busybox",
                "cpu": 10,
                "command": ["sleep", "360"],
                "memory": 10,
                "essential": True,
            }
        ],
    )
    aws = recorded("ecs", "register-task-definition", 0)
    check(results, "ecs/register-task-definition#1", aws, out)
    ecs.register_task_definition(
        family="hello_world",
        containerDefinitions=[
            {
                "name": "wordpress",
                "image": "wordpress",
                "cpu": 10,
                "links": ["mysql"],
                "memory": 500,
                "portMappings": [{"containerPort": 80, "hostPort": 80}],
                "essential": True,
            },
            {
                "name": "mysql",
                "image": "mysql",
                "cpu": 10,
                "environment": [{"name": "MYSQL_ROOT_PASSWORD", "value": "password"}],
                "memory": 500,
                "essential": True,
            },
        ],
    )
    out = ecs.describe_task_definition(taskDefinition="hello_world:1", include=["TAGS"])
    aws = recorded("ecs", "describe-task-definition", 0)
    aws["taskDefinition"]["revision"] = 1  # the recorded family had 8 revisions
    check(results, "ecs/describe-task-definition#1", aws, out)

    # delete-task-definitions #1 (curltest, Fargate, after deregistration).
    ecs.register_task_definition(
        family="curltest",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        taskRoleArn="arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
        executionRoleArn="arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
        containerDefinitions=[
            {
                "name": "ctest",
                "image": "mreferre/eksutils",
                "entryPoint": ["sh", "-c"],
                "command": ["curl ${ECS_CONTAINER_METADATA_URI_V4}/task"],
                "essential": True,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-create-group": "true",
                        "awslogs-group": "/ecs/curltest",
                        "awslogs-region": "us-east-1",
                        "awslogs-stream-prefix": "ecs",
                    },
                },
            }
        ],
    )
    ecs.deregister_task_definition(taskDefinition="curltest:1")
    out = ecs.delete_task_definitions(taskDefinitions=["curltest:1"])
    aws = recorded("ecs", "delete-task-definitions", 0)
    check(results, "ecs/delete-task-definitions#1", aws, out)

    # Account settings: put-account-setting-default #1, put-account-setting #1,
    # list-account-settings #2, delete-account-setting #1.
    out = ecs.put_account_setting_default(name="serviceLongArnFormat", value="enabled")
    aws = recorded("ecs", "put-account-setting-default", 0)
    aws["setting"]["principalArn"] = "arn:aws:iam::000000000000:root"
    check(results, "ecs/put-account-setting-default#1", aws, out)
    user = "arn:aws:iam::000000000000:user/MyUser"
    out = ecs.put_account_setting(name="containerInsights", value="enhanced", principalArn=user)
    aws = recorded("ecs", "put-account-setting", 0)
    aws["setting"]["principalArn"] = user
    check(results, "ecs/put-account-setting#1", aws, out)
    ecs.put_account_setting(name="serviceLongArnFormat", value="enabled", principalArn=user)
    out = ecs.list_account_settings(principalArn=user, name="serviceLongArnFormat")
    aws = recorded("ecs", "list-account-settings", 1)
    aws["settings"][0]["principalArn"] = user
    check(results, "ecs/list-account-settings#2", aws, out)

    # create-service #1 (Fargate, tags); describe-services #1; describe-tasks #2.
    ecs.register_task_definition(**{**WORKLOAD, "family": "sample-fargate"})
    network = {
        "awsvpcConfiguration": {
            "subnets": ["subnet-12344321"],
            "securityGroups": ["sg-12344321"],
            "assignPublicIp": "ENABLED",
        }
    }
    out = ecs.create_service(
        cluster="MyCluster",
        serviceName="MyService",
        taskDefinition="sample-fargate:1",
        desiredCount=1,
        launchType="FARGATE",
        platformVersion="LATEST",
        networkConfiguration=network,
        tags=[{"key": f"key{i}", "value": f"value{i}"} for i in (1, 2, 3)],
    )
    aws = recorded("ecs", "create-service", 0)
    aws["service"]["desiredCount"] = 1
    aws["service"]["deployments"][0]["desiredCount"] = 1
    check(results, "ecs/create-service#1", aws, out)
    ecs.get_waiter("services_stable").wait(
        cluster="MyCluster", services=["MyService"], WaiterConfig=FAST
    )
    out = ecs.describe_services(cluster="MyCluster", services=["MyService"])
    check(results, "ecs/describe-services#1", recorded("ecs", "describe-services", 0), out)
    arns = ecs.list_tasks(cluster="MyCluster", serviceName="MyService")["taskArns"]
    out = ecs.describe_tasks(cluster="MyCluster", tasks=arns)
    aws = recorded("ecs", "describe-tasks", 1)
    # The recorded definition sizes its container (cpu 99, memory 100); WORKLOAD does not.
    aws["tasks"][0]["containers"][0].update(name="app", cpu="0")
    del aws["tasks"][0]["containers"][0]["memory"]
    aws["tasks"][0]["overrides"]["containerOverrides"][0]["name"] = "app"
    check(results, "ecs/describe-tasks#2", aws, out)

    # stop-task #1 (recorded on EC2: its container-instance keys are skipped).
    arn = ecs.run_task(
        cluster="MyCluster", taskDefinition="sample-fargate", networkConfiguration=NETWORK
    )["tasks"][0]["taskArn"]
    ecs.get_waiter("tasks_running").wait(cluster="MyCluster", tasks=[arn], WaiterConfig=FAST)
    out = ecs.stop_task(cluster="MyCluster", task=arn)
    aws = recorded("ecs", "stop-task", 0)
    for key in ("launchType", "cpu", "memory"):
        aws["task"].pop(key, None)  # the recorded task is an EC2 one
    for c in aws["task"].get("containers") or ():
        c["name"] = "app"
    for o in aws["task"].get("overrides", {}).get("containerOverrides") or ():
        o["name"] = "app"
    check(results, "ecs/stop-task#1", aws, out)
    report(results)


def test_elbv2_responses_match_aws_recorded(miniecs: Miniecs) -> None:
    elb = miniecs.client("elbv2")
    results: list[Comparison] = []
    # create-load-balancer #1 (subnets, default security group).
    out = elb.create_load_balancer(
        Name="my-load-balancer",
        Subnets=["subnet-b7d581c0", "subnet-8360a9e7"],
        SecurityGroups=["sg-5943793c"],
    )
    aws = recorded("elbv2", "create-load-balancer", 0)
    check(results, "elbv2/create-load-balancer#1", aws, out)
    lb_arn = out["LoadBalancers"][0]["LoadBalancerArn"]
    # The same call again: idempotent (ELB API reference, CreateLoadBalancer).
    again = elb.create_load_balancer(
        Name="my-load-balancer",
        Subnets=["subnet-b7d581c0", "subnet-8360a9e7"],
        SecurityGroups=["sg-5943793c"],
    )
    assert again["LoadBalancers"][0]["LoadBalancerArn"] == lb_arn
    # create-target-group #1 is recorded with TargetType instance; Fargate tasks register by
    # IP, so miniecs takes TargetType ip: that one value is changed in the recorded answer.
    out = elb.create_target_group(
        Name="my-targets", Protocol="HTTP", Port=80, TargetType="ip", VpcId="vpc-3ac0fb5f"
    )
    aws = recorded("elbv2", "create-target-group", 0)
    aws["TargetGroups"][0]["TargetType"] = "ip"
    check(results, "elbv2/create-target-group#1", aws, out)
    tg_arn = out["TargetGroups"][0]["TargetGroupArn"]
    out = elb.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    check(results, "elbv2/create-listener#1", recorded("elbv2", "create-listener", 0), out)
    out = elb.describe_target_groups(TargetGroupArns=[tg_arn])
    aws = recorded("elbv2", "describe-target-groups", 0)
    aws["TargetGroups"][0]["TargetType"] = "ip"
    check(results, "elbv2/describe-target-groups#1", aws, out)
    out = elb.set_ip_address_type(LoadBalancerArn=lb_arn, IpAddressType="dualstack")
    aws = recorded("elbv2", "set-ip-address-type", 0)
    check(results, "elbv2/set-ip-address-type#1", aws, out)
    out = elb.modify_load_balancer_attributes(
        LoadBalancerArn=lb_arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}]
    )
    aws = recorded("elbv2", "modify-load-balancer-attributes", 0)
    check(results, "elbv2/modify-load-balancer-attributes#1", aws, out)
    elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "10.255.0.1", "Port": 80}])
    out = elb.describe_target_health(TargetGroupArn=tg_arn)
    aws = recorded("elbv2", "describe-target-health", 0)
    check(results, "elbv2/describe-target-health#1", aws, out)
    report(results)


def test_cloudwatch_responses_match_aws_recorded(miniecs: Miniecs) -> None:
    cw = miniecs.client("cloudwatch")
    results: list[Comparison] = []
    # describe-alarms #1 / describe-alarms-for-metric #1: the recorded alarm, put as recorded.
    cw.put_metric_alarm(
        AlarmName="myalarm",
        AlarmDescription="CPU usage exceeds 70 percent",
        AlarmActions=["arn:aws:sns:us-east-1:000000000000:myHighCpuAlarm"],
        MetricName="CPUUtilization",
        Namespace="AWS/EC2",
        Statistic="Average",
        Period=300,
        EvaluationPeriods=2,
        Threshold=70.0,
        ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "InstanceId", "Value": "i-0c986c72"}],
    )
    cw.set_alarm_state(
        AlarmName="myalarm",
        StateValue="OK",
        StateReason="Threshold Crossed: 2 datapoints were not greater than the threshold (70.0).",
        StateReasonData='{"version":"1.0","statistic":"Average","period":300}',
    )
    out = cw.describe_alarms(AlarmNames=["myalarm"])
    check(results, "cloudwatch/describe-alarms#1", recorded("cloudwatch", "describe-alarms"), out)
    cw.disable_alarm_actions(AlarmNames=["myalarm"])  # the recorded one has them disabled
    out = cw.describe_alarms_for_metric(
        MetricName="CPUUtilization",
        Namespace="AWS/EC2",
        Dimensions=[{"Name": "InstanceId", "Value": "i-0c986c72"}],
    )
    aws = recorded("cloudwatch", "describe-alarms-for-metric")
    aws["MetricAlarms"] = aws["MetricAlarms"][1:]  # the recorded alarm like "myalarm"
    check(results, "cloudwatch/describe-alarms-for-metric#1", aws, out)
    # get-metric-statistics #1 and get-metric-data #2, on a namespace a client may write
    # (PutMetricData refuses AWS/ namespaces, as CloudWatch does).
    now = time.time()
    start = now - 3 * 3600
    cw.put_metric_data(
        Namespace="MyApp",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": "i-abcdef"}],
                "Timestamp": start + 60 * i,
                "Value": 40.0 + i,
                "Unit": "Percent",
            }
            for i in range(10)
        ],
    )

    def statistics() -> dict[str, Any]:
        return cw.get_metric_statistics(  # type: ignore[no-any-return]
            Namespace="MyApp",
            MetricName="CPUUtilization",
            Dimensions=[{"Name": "InstanceId", "Value": "i-abcdef"}],
            StartTime=start - 3600,
            EndTime=now,
            Period=3600,
            Statistics=["Maximum"],
        )

    out = wait_for(lambda: (o := statistics())["Datapoints"] and o)
    aws = recorded("cloudwatch", "get-metric-statistics")
    check(results, "cloudwatch/get-metric-statistics#1", aws, out)
    out = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "MyApp",
                        "MetricName": "CPUUtilization",
                        "Dimensions": [{"Name": "InstanceId", "Value": "i-abcdef"}],
                    },
                    "Period": 21600,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=start - 3600,
        EndTime=now,
    )
    aws = recorded("cloudwatch", "get-metric-data", 1)
    aws["MetricDataResults"][0]["Label"] = "CPUUtilization"
    check(results, "cloudwatch/get-metric-data#2", aws, out)
    out = cw.list_metrics(Namespace="MyApp")
    aws = recorded("cloudwatch", "list-metrics")
    for metric in aws["Metrics"]:  # recorded on AWS/SNS metrics
        metric.update(Namespace="MyApp", MetricName="CPUUtilization")
    check(results, "cloudwatch/list-metrics#1", aws, out)
    report(results)


def test_application_autoscaling_responses_match_aws_recorded(miniecs: Miniecs) -> None:
    ecs, aas = miniecs.client(), miniecs.client("application-autoscaling")
    results: list[Comparison] = []
    ecs.create_cluster(clusterName="default")
    ecs.register_task_definition(**WORKLOAD)
    ecs.create_service(
        cluster="default",
        serviceName="web-app",
        taskDefinition="web",
        desiredCount=0,
        networkConfiguration=NETWORK,
    )
    ids = {
        "ServiceNamespace": "ecs",
        "ScalableDimension": "ecs:service:DesiredCount",
        "ResourceId": "service/default/web-app",
    }
    out = aas.register_scalable_target(**ids, MinCapacity=1, MaxCapacity=10)
    aws = recorded("application-autoscaling", "register-scalable-target", 0)
    check(results, "application-autoscaling/register-scalable-target#1", aws, out)
    out = aas.describe_scalable_targets(ServiceNamespace="ecs")
    aws = recorded("application-autoscaling", "describe-scalable-targets", 0)
    check(results, "application-autoscaling/describe-scalable-targets#1", aws, out)
    out = aas.put_scaling_policy(
        **ids,
        PolicyName="cpu75-target-tracking-scaling-policy",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 75.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 60,
        },
    )
    aws = recorded("application-autoscaling", "put-scaling-policy", 0)
    check(results, "application-autoscaling/put-scaling-policy#1", aws, out)
    # describe-scaling-policies #1 shows a step scaling policy and the alarm that triggers it.
    step = aas.put_scaling_policy(
        **ids,
        PolicyName="web-app-cpu-gt-75",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "PercentChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 200}],
            "Cooldown": 60,
        },
    )
    miniecs.client("cloudwatch").put_metric_alarm(
        AlarmName="web-app-cpu-gt-75",
        MetricName="CPUUtilization",
        Namespace="AWS/ECS",
        Dimensions=[
            {"Name": "ClusterName", "Value": "default"},
            {"Name": "ServiceName", "Value": "web-app"},
        ],
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=75.0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[step["PolicyARN"]],
    )
    out = aas.describe_scaling_policies(ServiceNamespace="ecs", PolicyNames=["web-app-cpu-gt-75"])
    aws = recorded("application-autoscaling", "describe-scaling-policies", 0)
    check(results, "application-autoscaling/describe-scaling-policies#1", aws, out)
    # describe-scheduled-actions #1 is recorded for a DynamoDB table; the same action on the
    # ECS service (namespace and dimension changed in the recorded answer).
    aas.put_scheduled_action(
        **ids,
        ScheduledActionName="my-first-scheduled-action",
        Schedule="at(2031-05-20T18:35:00)",
        ScalableTargetAction={"MinCapacity": 15, "MaxCapacity": 20},
    )
    out = aas.describe_scheduled_actions(ServiceNamespace="ecs")
    aws = recorded("application-autoscaling", "describe-scheduled-actions", 0)
    for action in aws["ScheduledActions"]:
        action.update(ServiceNamespace="ecs", ScalableDimension="ecs:service:DesiredCount")
    check(results, "application-autoscaling/describe-scheduled-actions#1", aws, out)
    report(results)

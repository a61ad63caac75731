"""ECS operations users' tools call (issue 14, item 6): capacity providers, UpdateCluster,
DeleteTaskDefinitions and account settings, with their effects."""

from __future__ import annotations

import pytest

from miniecs.errors import AwsError
from tests.component.conftest import Harness
from tests.component.test_tasks import FAMILY, NETWORK

STRATEGY = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]


async def test_cluster_capacity_providers_and_default_strategy(harness: Harness) -> None:
    ecs = harness.ecs
    ecs.create_cluster({"clusterName": "c1"})
    ecs.register_task_definition(FAMILY)
    service = {
        "cluster": "c1",
        "taskDefinition": "web",
        "desiredCount": 0,
        "networkConfiguration": NETWORK,
    }
    with pytest.raises(AwsError, match="not associated with the cluster"):
        ecs.create_service({**service, "serviceName": "a", "capacityProviderStrategy": STRATEGY})
    cluster = ecs.put_cluster_capacity_providers(
        {
            "cluster": "c1",
            "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "defaultCapacityProviderStrategy": STRATEGY,
        }
    )["cluster"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert cluster["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}
    ]
    # No launchType and no strategy: the cluster's default strategy, as on ECS.
    out = ecs.create_service({**service, "serviceName": "b"})["service"]
    assert out["capacityProviderStrategy"][0]["capacityProvider"] == "FARGATE_SPOT"
    assert "launchType" not in out
    assert ecs.create_service({**service, "serviceName": "c", "launchType": "FARGATE"})["service"][
        "launchType"
    ] == ("FARGATE")
    with pytest.raises(AwsError) as err:
        ecs.put_cluster_capacity_providers(
            {
                "cluster": "c1",
                "capacityProviders": ["FARGATE"],
                "defaultCapacityProviderStrategy": [],
            }
        )
    assert err.value.code == "ResourceInUseException"
    with pytest.raises(AwsError, match="does not exist"):
        ecs.put_cluster_capacity_providers(
            {"cluster": "c1", "capacityProviders": ["MyASG"], "defaultCapacityProviderStrategy": []}
        )
    described = ecs.describe_clusters({"clusters": ["c1"]})["clusters"][0]
    assert described["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]


async def test_update_cluster_settings_and_configuration(harness: Harness) -> None:
    harness.ecs.create_cluster({"clusterName": "c1"})
    config = {"executeCommandConfiguration": {"logging": "DEFAULT"}}
    out = harness.ecs.update_cluster(
        {
            "cluster": "c1",
            "settings": [{"name": "containerInsights", "value": "enhanced"}],
            "configuration": config,
        }
    )["cluster"]
    assert out["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    assert out["configuration"] == config
    assert harness.ecs.cluster("c1").setting("containerInsights") == "enhanced"
    with pytest.raises(AwsError):
        harness.ecs.update_cluster({"cluster": "c1", "serviceConnectDefaults": {"namespace": "x"}})
    with pytest.raises(AwsError) as err:
        harness.ecs.update_cluster({"cluster": "ghost"})
    assert err.value.code == "ClusterNotFoundException"


async def test_delete_task_definitions_only_inactive(harness: Harness) -> None:
    ecs = harness.ecs
    ecs.register_task_definition(FAMILY)
    ecs.register_task_definition(FAMILY)
    ecs.deregister_task_definition({"taskDefinition": "web:1"})
    out = ecs.delete_task_definitions({"taskDefinitions": ["web:1", "web:2", "ghost:1"]})
    assert [t["status"] for t in out["taskDefinitions"]] == ["DELETE_IN_PROGRESS"]
    assert out["taskDefinitions"][0]["deregisteredAt"] is not None
    reasons = [f["reason"] for f in out["failures"]]
    assert "still in ACTIVE status" in reasons[0] and "does not exist" in reasons[1]
    assert ecs.describe_task_definition({"taskDefinition": "web:1"})["taskDefinition"][
        "status"
    ] == ("DELETE_IN_PROGRESS")
    listed = ecs.list_task_definitions({"status": "DELETE_IN_PROGRESS"})["taskDefinitionArns"]
    assert [a.rsplit("/", 1)[-1] for a in listed] == ["web:1"]
    assert ecs.describe_task_definition({"taskDefinition": "web:2"})["taskDefinition"][
        "status"
    ] == ("ACTIVE")


async def test_account_settings_resolve_and_apply_to_new_clusters(harness: Harness) -> None:
    ecs = harness.ecs
    listed = ecs.list_account_settings({"effectiveSettings": True})["settings"]
    assert {"containerInsights", "serviceLongArnFormat"} <= {s["name"] for s in listed}
    assert ecs.list_account_settings({})["settings"] == []
    out = ecs.put_account_setting_default({"name": "containerInsights", "value": "enabled"})
    assert out["setting"]["principalArn"] == "arn:aws:iam::000000000000:root"
    cluster = ecs.create_cluster({"clusterName": "c1"})["cluster"]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    user = "arn:aws:iam::000000000000:user/jane"
    ecs.put_account_setting(
        {"name": "containerInsights", "value": "enhanced", "principalArn": user}
    )
    mine = ecs.list_account_settings({"principalArn": user, "name": "containerInsights"})
    assert mine["settings"] == [
        {"name": "containerInsights", "value": "enhanced", "principalArn": user}
    ]
    with pytest.raises(AwsError, match="not valid"):
        ecs.put_account_setting({"name": "containerInsights", "value": "maybe"})
    with pytest.raises(AwsError, match="account default"):
        ecs.put_account_setting(
            {"name": "fargateTaskRetirementWaitPeriod", "value": "14", "principalArn": user}
        )
    ecs.delete_account_setting({"name": "containerInsights", "principalArn": user})
    effective = ecs.list_account_settings(
        {"principalArn": user, "name": "containerInsights", "effectiveSettings": True}
    )["settings"]
    assert effective[0]["value"] == "enabled"

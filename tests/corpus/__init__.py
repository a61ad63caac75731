"""Task definitions from AWS's documentation and public projects, kept as their authors wrote
them except where noted in `changes` (images are replaced by the local ones, since tests pull
nothing; template placeholders are filled). Each case names its source and what Fargate does
with it, which `tests/integration/test_corpus.py` asserts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BASE = "miniecs/base:bookworm"
"""Replaces every image: Debian with Python, present locally."""
SLEEP = ["sleep", "3600"]


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    changes: str
    document: dict[str, Any]
    expect: str
    """RUNNING, or the start of the stoppedReason Fargate gives."""
    secrets: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    """Log groups that exist before the task starts (as Terraform/CDK would create them)."""
    environment: dict[str, str] = field(default_factory=dict)
    """Variables the running container must see (secrets resolved)."""
    log_streams: tuple[tuple[str, str], ...] = ()
    """(group, stream with {task} for the task id) that must receive the container's lines."""


HTML = (
    "<html> <head> <title>Amazon ECS Sample App</title> </head><body> <h1>Amazon ECS Sample "
    "App</h1> <h2>Congratulations!</h2> <p>Your application is now running on a container in "
    "Amazon ECS.</p> </body></html>"
)

CASES: list[Case] = [
    Case(
        name="aws-docs-fargate-webserver",
        source="Amazon ECS Developer Guide, 'Creating an Amazon ECS Linux task for Fargate "
        "with the AWS CLI' (sample-fargate, httpd with entryPoint sh -c)",
        changes="image httpd -> base; httpd-foreground -> python3 -m http.server 80",
        document={
            "family": "sample-fargate",
            "networkMode": "awsvpc",
            "containerDefinitions": [
                {
                    "name": "fargate-app",
                    "image": BASE,
                    "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
                    "essential": True,
                    "entryPoint": ["sh", "-c"],
                    "command": [
                        f"mkdir -p /usr/local/apache2/htdocs && echo '{HTML}' > "
                        "/usr/local/apache2/htdocs/index.html && "
                        "exec python3 -m http.server 80 -d /usr/local/apache2/htdocs"
                    ],
                }
            ],
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
        },
        expect="RUNNING",
    ),
    Case(
        name="awscli-example-sleep360",
        source="aws CLI bundled example ecs/register-task-definition.rst, sleep360.json",
        changes="image busybox -> base",
        document={
            "containerDefinitions": [
                {
                    "name": "sleep",
                    "image": BASE,
                    "cpu": 10,
                    "command": ["sleep", "360"],
                    "memory": 10,
                    "essential": True,
                }
            ],
            "family": "sleep360",
        },
        expect="REFUSED: Task definition does not support launch_type FARGATE.",
    ),
    Case(
        name="ecspresso-nginx-secrets",
        source="github.com/kayac/ecspresso tests/ci/nginx-taskdef.jsonnet (awslogs, SSM name, "
        "SSM ARN and Secrets Manager ARN secrets)",
        changes="image nginx -> base running sleep; {{must_env AWS_ACCOUNT_ID}} -> "
        "000000000000; tags dropped (RegisterTaskDefinition's, not the task's)",
        document={
            "containerDefinitions": [
                {
                    "cpu": 0,
                    "environment": [],
                    "essential": True,
                    "image": BASE,
                    "command": ["sh", "-c", "echo FOO=$FOO BAR=$BAR BAZ=$BAZ; exec sleep 3600"],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": "ecspresso-test",
                            "awslogs-region": "ap-northeast-1",
                            "awslogs-stream-prefix": "nginx",
                        },
                    },
                    "mountPoints": [],
                    "name": "nginx",
                    "portMappings": [
                        {
                            "name": "nginx",
                            "containerPort": 80,
                            "hostPort": 80,
                            "protocol": "tcp",
                            "appProtocol": "http",
                        }
                    ],
                    "secrets": [
                        {"name": "FOO", "valueFrom": "/ecspresso-test/foo"},
                        {
                            "name": "BAR",
                            "valueFrom": "arn:aws:ssm:ap-northeast-1:000000000000:parameter/"
                            "ecspresso-test/bar",
                        },
                        {
                            "name": "BAZ",
                            "valueFrom": "arn:aws:secretsmanager:ap-northeast-1:000000000000:"
                            "secret:ecspresso-test/baz-06XQOH",
                        },
                    ],
                    "volumesFrom": [],
                }
            ],
            "cpu": "512",
            "executionRoleArn": "arn:aws:iam::000000000000:role/ecsTaskRole",
            "family": "nginx",
            "memory": "1024",
            "networkMode": "awsvpc",
            "placementConstraints": [],
            "requiresCompatibilities": ["FARGATE"],
            "taskRoleArn": "arn:aws:iam::000000000000:role/ecsTaskRole",
            "volumes": [],
        },
        expect="RUNNING",
        secrets={"ecspresso-test/baz": "baz-value"},
        parameters={"/ecspresso-test/foo": "foo-value", "/ecspresso-test/bar": "bar-value"},
        groups=("ecspresso-test",),
        environment={"FOO": "foo-value", "BAR": "bar-value", "BAZ": "baz-value"},
        log_streams=(("ecspresso-test", "nginx/nginx/{task}"),),
    ),
    Case(
        name="ecspresso-nginx-secrets-no-group",
        source="the same ecspresso task definition, its log group not created",
        changes="as above",
        document={},  # filled below: the same document
        expect="ResourceInitializationError: failed to validate logger args: create stream "
        "has been retried 1 times: failed to create Cloudwatch log stream: "
        "ResourceNotFoundException: The specified log group does not exist.",
        secrets={"ecspresso-test/baz": "baz-value"},
        parameters={"/ecspresso-test/foo": "foo-value", "/ecspresso-test/bar": "bar-value"},
    ),
    Case(
        name="ecs-nextjs-ssm-secret",
        source="github.com/Jareechang/ecs-nextjs infra/task-definitions/service.json.tpl",
        changes="image nginx -> base running sleep; ${ecs_execution_role} and "
        "${ssm_db_password_arn} filled",
        document={
            "family": "task-definition-node",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "512",
            "memory": "1024",
            "executionRoleArn": "arn:aws:iam::000000000000:role/ecs-execution",
            "containerDefinitions": [
                {
                    "name": "node-app-image",
                    "image": BASE,
                    "command": ["sh", "-c", "echo listening on $PORT; exec sleep 3600"],
                    "memoryReservation": 1024,
                    "portMappings": [{"containerPort": 3000, "hostPort": 3000}],
                    "environment": [{"name": "PORT", "value": "3000"}],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": "/aws/ecs/node-app-prod",
                            "awslogs-region": "us-east-1",
                            "awslogs-stream-prefix": "ecs",
                        },
                    },
                    "secrets": [
                        {
                            "name": "DATABASE_PASSWORD",
                            "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/"
                            "web/node-app/db-password",
                        }
                    ],
                }
            ],
        },
        expect="RUNNING",
        parameters={"/web/node-app/db-password": "pw"},
        groups=("/aws/ecs/node-app-prod",),
        environment={"DATABASE_PASSWORD": "pw", "PORT": "3000"},
        log_streams=(("/aws/ecs/node-app-prod", "ecs/node-app-image/{task}"),),
    ),
    Case(
        name="ecs-nextjs-ssm-secret-missing",
        source="the same ecs-nextjs task definition, its parameter not created",
        changes="as above",
        document={},
        expect="ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secrets from ssm: service call has been "
        "retried 1 time(s): invalid ssm parameters: /web/node-app/db-password",
        groups=("/aws/ecs/node-app-prod",),
    ),
    Case(
        name="exercism-firelens-webservers",
        source="github.com/exercism/terraform terraform/templates/ecs_webservers.json.tpl "
        "(FireLens log router and a web server logging through awsfirelens to CloudWatch)",
        changes="images aws-for-fluent-bit and ${image} -> base; ${port} 8080, "
        "${log_group_name} /exercism/webservers, ${region} eu-west-2; family, size, "
        "networkMode added (the file holds containerDefinitions only)",
        document={
            "family": "webservers",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "512",
            "memory": "1024",
            "containerDefinitions": [
                {
                    "essential": True,
                    "image": BASE,
                    "command": SLEEP,
                    "name": "log_router",
                    "firelensConfiguration": {
                        "type": "fluentbit",
                        "options": {"enable-ecs-log-metadata": "true"},
                    },
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": "/exercism/webservers",
                            "awslogs-region": "eu-west-2",
                            "awslogs-stream-prefix": "firelens",
                        },
                    },
                    "memoryReservation": 50,
                },
                {
                    "essential": True,
                    "name": "webserver",
                    "image": BASE,
                    "command": ["sh", "-c", "echo webserver up; exec sleep 3600"],
                    "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
                    "logConfiguration": {
                        "logDriver": "awsfirelens",
                        "options": {
                            "Name": "cloudwatch",
                            "region": "eu-west-2",
                            "log_group_name": "/exercism/webservers",
                            "log_stream_prefix": "from-fluent-bit",
                        },
                    },
                },
            ],
        },
        expect="RUNNING",
        groups=("/exercism/webservers",),
        log_streams=(("/exercism/webservers", "from-fluent-bitwebserver-firelens-{task}"),),
    ),
    Case(
        name="exercism-firelens-three-containers",
        source="github.com/exercism/terraform "
        "terraform/tooling_orchestrator/ecs_task_definition.json.tpl (log router, nginx and "
        "application, user 0, awsfirelens with stream prefixes)",
        changes="images -> base; ${http_port} 80, ${log_group_name} /exercism/orchestrator, "
        "${region} eu-west-2; family, size, networkMode added",
        document={
            "family": "tooling-orchestrator",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "1024",
            "memory": "2048",
            "containerDefinitions": [
                {
                    "name": "log_router",
                    "image": BASE,
                    "command": SLEEP,
                    "essential": True,
                    "firelensConfiguration": {
                        "type": "fluentbit",
                        "options": {"enable-ecs-log-metadata": "true"},
                    },
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": "/exercism/orchestrator",
                            "awslogs-region": "eu-west-2",
                            "awslogs-stream-prefix": "webservers",
                        },
                    },
                    "cpu": 0,
                    "user": "0",
                    "mountPoints": [],
                    "portMappings": [],
                    "volumesFrom": [],
                    "environment": [],
                },
                {
                    "name": "nginx",
                    "image": BASE,
                    "command": ["sh", "-c", "echo nginx as $(id -u); exec sleep 3600"],
                    "essential": True,
                    "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
                    "logConfiguration": {
                        "logDriver": "awsfirelens",
                        "options": {
                            "Name": "cloudwatch",
                            "region": "eu-west-2",
                            "log_group_name": "/exercism/orchestrator",
                            "log_stream_prefix": "nginx/",
                        },
                    },
                    "cpu": 0,
                    "user": "0",
                    "mountPoints": [],
                    "volumesFrom": [],
                    "environment": [],
                },
                {
                    "name": "application",
                    "image": BASE,
                    "command": ["sh", "-c", "echo application up; exec sleep 3600"],
                    "essential": True,
                    "logConfiguration": {
                        "logDriver": "awsfirelens",
                        "options": {
                            "Name": "cloudwatch",
                            "region": "eu-west-2",
                            "log_group_name": "/exercism/orchestrator",
                            "log_stream_prefix": "application/",
                        },
                    },
                    "cpu": 0,
                    "user": "0",
                    "mountPoints": [],
                    "portMappings": [],
                    "volumesFrom": [],
                    "environment": [],
                },
            ],
        },
        expect="RUNNING",
        groups=("/exercism/orchestrator",),
        log_streams=(
            ("/exercism/orchestrator", "nginx/nginx-firelens-{task}"),
            ("/exercism/orchestrator", "application/application-firelens-{task}"),
        ),
    ),
    Case(
        name="in-mono-exec-and-json-key",
        source="github.com/evanharmon/in-mono headspace/aws/aws-ecs-task-definition.md "
        "(Secrets Manager JSON key in valueFrom; linuxParameters.initProcessEnabled for exec)",
        changes="the snippets assembled into one Fargate task definition; <placeholders> filled",
        document={
            "family": "exec-json-key",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": BASE,
                    "command": SLEEP,
                    "linuxParameters": {"initProcessEnabled": True},
                    "secrets": [
                        {
                            "name": "DB_USER",
                            "valueFrom": "arn:aws:secretsmanager:us-east-1:000000000000:"
                            "secret:prod/db:username::",
                        }
                    ],
                }
            ],
        },
        expect="RUNNING",
        secrets={"prod/db": '{"username": "admin", "password": "x"}'},
        environment={"DB_USER": "admin"},
    ),
    Case(
        name="terraform-template-ulimit-nofile",
        source="Amazon ECS Developer Guide, task definition parameters, 'ulimits' (Fargate "
        "raises nofile up to 1048576); the 65536 of miniecs issue 11's report",
        changes="-",
        document={
            "family": "ulimits",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": BASE,
                    "command": ["sh", "-c", "echo nofile $(ulimit -n); exec sleep 3600"],
                    "essential": True,
                    "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
                }
            ],
        },
        expect="RUNNING",
    ),
    Case(
        name="edjonathan-runtime-platform-x86",
        source="github.com/Edjonathan/aws terraform/ecs/taskdefinition.tf (EC2, bridge, "
        "256/512, task role, runtime_platform LINUX/X86_64)",
        changes="container definitions (a file not in the index) -> one base container",
        document={
            "family": "ecs-nginx-task",
            "requiresCompatibilities": ["EC2"],
            "cpu": "256",
            "networkMode": "bridge",
            "memory": "512",
            "taskRoleArn": "arn:aws:iam::000000000000:role/ecs-task-role",
            "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
            "containerDefinitions": [
                {"name": "nginx", "image": BASE, "command": SLEEP, "essential": True}
            ],
        },
        expect="REFUSED: Task definition does not support launch_type FARGATE.",
    ),
    Case(
        name="runtime-platform-arm64",
        source="github.com/kiran-v-gorantla/terraform-aws-ecs-task main.tf (runtime_platform "
        "from variables) with cpu_architecture = ARM64",
        changes="variables filled: FARGATE, awsvpc, 256/512, LINUX/ARM64",
        document={
            "family": "arm-task",
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "256",
            "memory": "512",
            "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
            "containerDefinitions": [
                {"name": "app", "image": BASE, "command": SLEEP, "essential": True}
            ],
        },
        expect="CannotPullContainerError: pull image manifest has been retried 1 time(s): "
        "image Manifest does not contain descriptor matching platform 'linux/arm64'",
    ),
    Case(
        name="fargate-task-storage-shared",
        source="Amazon ECS Developer Guide, 'Use bind mounts with Amazon ECS' (Fargate task "
        "storage: a volume with no host, mounted by two containers); EFS accepted as a local "
        "volume",
        changes="images -> base",
        document={
            "family": "bind-mounts",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "volumes": [
                {"name": "shared"},
                {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1234"}},
            ],
            "containerDefinitions": [
                {
                    "name": "writer",
                    "image": BASE,
                    "essential": False,
                    "command": ["sh", "-c", "echo hello > /data/greeting"],
                    "mountPoints": [{"sourceVolume": "shared", "containerPath": "/data"}],
                },
                {
                    "name": "reader",
                    "image": BASE,
                    "essential": True,
                    "dependsOn": [{"containerName": "writer", "condition": "SUCCESS"}],
                    "command": ["sh", "-c", "cat /data/greeting; exec sleep 3600"],
                    "mountPoints": [
                        {"sourceVolume": "shared", "containerPath": "/data", "readOnly": True},
                        {"sourceVolume": "efs", "containerPath": "/mnt/efs"},
                    ],
                    "readonlyRootFilesystem": True,
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": "/ecs/bind-mounts",
                            "awslogs-region": "us-east-1",
                            "awslogs-stream-prefix": "ecs",
                            "awslogs-create-group": "true",
                        },
                    },
                },
            ],
        },
        expect="RUNNING",
        log_streams=(("/ecs/bind-mounts", "ecs/reader/{task}"),),
    ),
]

_BY_NAME = {c.name: c for c in CASES}
for _copy, _of in (
    ("ecspresso-nginx-secrets-no-group", "ecspresso-nginx-secrets"),
    ("ecs-nextjs-ssm-secret-missing", "ecs-nextjs-ssm-secret"),
):
    _BY_NAME[_copy].document.update(_BY_NAME[_of].document)

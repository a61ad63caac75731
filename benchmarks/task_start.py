"""RunTask -> RUNNING latency through boto3, against an embedded miniecs on the local engine.

Also times the floor: `docker run -d` of the same image to its first running state, in the same
run, so the ratio says what miniecs adds. Run: `.venv/bin/python benchmarks/task_start.py [N]`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
import docker

from miniecs import images
from miniecs.config import ServerSettings, Settings
from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from miniecs.engine import Engine, EngineThread


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main(n: int = 10) -> None:
    client = docker.from_env()
    images.build_all(client)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings(state_dir=Path(tmp), server=ServerSettings(port=0)))
        thread = EngineThread(engine)
        endpoint = thread.start()
        try:
            ecs = boto3.client(
                "ecs",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="x",
            )
            ecs.create_cluster(clusterName="bench")
            ecs.register_task_definition(
                family="web",
                requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc",
                cpu="256",
                memory="512",
                containerDefinitions=[{"name": "app", "image": "miniecs/workload:latest"}],
            )
            miniecs_times = []
            for _ in range(n):
                started = time.monotonic()
                arn = ecs.run_task(
                    networkConfiguration=NETWORK, cluster="bench", taskDefinition="web"
                )["tasks"][0]["taskArn"]
                while True:
                    task = ecs.describe_tasks(cluster="bench", tasks=[arn])["tasks"][0]
                    if task["lastStatus"] in ("RUNNING", "STOPPED"):
                        break
                    time.sleep(0.01)
                miniecs_times.append(time.monotonic() - started)
                ecs.stop_task(cluster="bench", task=arn)
            floor = []
            for _ in range(n):
                started = time.monotonic()
                c = client.containers.run(
                    "miniecs/workload:latest", detach=True, labels={"miniecs.bench": "1"}
                )
                while client.api.inspect_container(c.id)["State"]["Status"] != "running":
                    time.sleep(0.01)
                floor.append(time.monotonic() - started)
                c.remove(force=True)
        finally:
            thread.stop()
            for c in client.containers.list(
                all=True, filters={"label": f"miniecs.instance={engine.instance}"}
            ):
                c.remove(force=True)
            for net in client.networks.list(
                filters={"label": f"miniecs.instance={engine.instance}"}
            ):
                net.remove()
    m, f = statistics.median(miniecs_times), statistics.median(floor)
    print(f"{'':28}{'median':>9}{'p90':>9}")
    print(f"{'miniecs RunTask -> RUNNING':28}{m:9.3f}{percentile(miniecs_times, 0.9):9.3f}")
    print(f"{'docker run -d -> running':28}{f:9.3f}{percentile(floor, 0.9):9.3f}")
    print(f"ratio miniecs / docker run: {m / f:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)

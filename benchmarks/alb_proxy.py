"""The ALB data plane against nginx and against no proxy at all, in one run.

Three workload containers on a labelled bridge network are the targets. In front of them, on the
host's network namespace both: nginx from Debian's packages (one worker, upstream keep-alive
pool) as a host process, and the ``miniecs/alb:latest`` container (``network_mode=host``,
configured through ``put_archive`` like the control plane does). wrk (one thread, 50
connections) measures each, then one workload container directly. Printed as ratios: throughput
vs nginx, median latency added vs direct. Then a scale-in under load: while wrk runs through our
proxy, one target is set draining and later removed; every response must be a 2xx.

Run: ``apt-get install -y wrk nginx-light`` once, then ``.venv/bin/python benchmarks/alb_proxy.py
[seconds] [baseline-image]``. Figures move with the machine's load: compare ratios of one run.
A baseline image (say ``miniecs/alb:before``, tagged before a change) runs as a second data
plane in the same run, so a change is measured against what it replaces.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import docker

from miniecs import images

CONNECTIONS = 50
LABEL_KEY = "miniecs.benchmark"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def wrk(url: str, seconds: float) -> dict[str, float]:
    """Run wrk; requests/s, median latency (ms), non-2xx/3xx responses and socket errors."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    median = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    assert median is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[median.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": float(median.group(1)) * scale,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def nginx_conf(root: Path, port: int, targets: list[str]) -> Path:
    servers = "\n".join(f"    server {ip}:8080;" for ip in targets)
    conf = root / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream targets {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://targets;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""
    )
    return conf


def alb_config(version: int, port: int, targets: list[dict[str, Any]]) -> bytes:
    doc = {
        "version": version,
        "speed": 1.0,
        "bind": "127.0.0.1",
        "idle_timeout": 60,
        "listeners": [
            {
                "arn": "bench-listener",
                "port": port,
                "default_actions": [{"Type": "forward", "TargetGroupArn": "bench-tg"}],
            }
        ],
        "target_groups": [
            {
                "arn": "bench-tg",
                "name": "bench",
                "port": 8080,
                "health_check": {"path": "/health", "interval": 5, "timeout": 2},
                "targets": targets,
            }
        ],
    }
    data = json.dumps(doc).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("config.json")
        info.size = len(data)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main(seconds: float = 10.0, baseline: str | None = None) -> None:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install -y wrk nginx-light")
    client = docker.from_env()
    images.build_all(client)
    run_id = uuid.uuid4().hex[:8]
    labels = {LABEL_KEY: f"alb-proxy-{run_id}"}
    nginx: subprocess.Popen[bytes] | None = None
    tmp = Path(tempfile.mkdtemp(prefix="alb-bench-"))
    try:
        network = client.networks.create(f"alb-bench-{run_id}", labels=labels)
        workloads = []
        for i in range(3):
            container = client.containers.run(
                images.WORKLOAD_IMAGE,
                detach=True,
                labels=labels,
                network=network.name,
                environment={"MINIECS_TASK_ID": f"w{i}"},
            )
            container.reload()
            workloads.append(container)
        ips = [c.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"] for c in workloads]
        for ip in ips:
            wait_http(f"http://{ip}:8080/health")

        nginx_port, alb_port = free_port(), free_port()
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        nginx = subprocess.Popen(
            [nginx_bin, "-c", str(nginx_conf(tmp, nginx_port, ips)), "-p", str(tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        alb = client.containers.run(
            images.ALB_IMAGE, detach=True, labels=labels, network_mode="host"
        )
        targets = [{"ip": ip, "port": 8080, "draining": False} for ip in ips]
        alb.put_archive("/run/alb", alb_config(1, alb_port, targets))
        wait_http(f"http://127.0.0.1:{nginx_port}/")
        wait_http(f"http://127.0.0.1:{alb_port}/")
        urls = {
            "nginx (1 worker, upstream keep-alive)": f"http://127.0.0.1:{nginx_port}/",
            "miniecs ALB data plane": f"http://127.0.0.1:{alb_port}/",
        }
        if baseline is not None:
            before_port = free_port()
            before = client.containers.run(
                baseline, detach=True, labels=labels, network_mode="host"
            )
            before.put_archive("/run/alb", alb_config(1, before_port, targets))
            wait_http(f"http://127.0.0.1:{before_port}/")
            urls[f"baseline: {baseline}"] = f"http://127.0.0.1:{before_port}/"
        urls["direct (one workload container)"] = f"http://{ips[0]}:8080/"
        time.sleep(1.0)  # first health checks

        for url in urls.values():
            wrk(url, 2)  # warm up: connections, pools, caches
        results = {name: wrk(url, seconds) for name, url in urls.items()}

        base = results["nginx (1 worker, upstream keep-alive)"]
        direct = results["direct (one workload container)"]
        print(f"\nwrk -t1 -c{CONNECTIONS} -d{seconds:g}s, 3 workload targets, same run\n")
        print("| path | req/s | vs nginx | median latency | added vs direct |")
        print("|---|---|---|---|---|")
        for name, r in results.items():
            added = r["p50_ms"] - direct["p50_ms"]
            print(
                f"| {name} | {r['rps']:,.0f} | {r['rps'] / base['rps']:.0%} | "
                f"{r['p50_ms']:.2f} ms | {'—' if r is direct else f'{added:+.2f} ms'} |"
            )

        # Scale-in under load: drain w0 while wrk runs, then remove it.
        def scale_in() -> None:
            time.sleep(seconds / 3)
            drained = [dict(t, draining=(i == 0)) for i, t in enumerate(targets)]
            alb.put_archive("/run/alb", alb_config(2, alb_port, drained))
            time.sleep(seconds / 3)
            alb.put_archive("/run/alb", alb_config(3, alb_port, targets[1:]))

        thread = threading.Thread(target=scale_in)
        thread.start()
        under_load = wrk(urls["miniecs ALB data plane"], seconds)
        thread.join()
        print(
            f"\nscale-in under load (3 → 2 targets, drain then remove): "
            f"{under_load['rps']:,.0f} req/s, non-2xx {under_load['non2xx']:.0f}, "
            f"socket errors {under_load['errors']:.0f}"
        )
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        for container in client.containers.list(all=True, filters={"label": LABEL_KEY}):
            if container.labels.get(LABEL_KEY) == labels[LABEL_KEY]:
                container.remove(force=True)
        for net in client.networks.list(filters={"label": f"{LABEL_KEY}={labels[LABEL_KEY]}"}):
            net.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(
        float(sys.argv[1]) if len(sys.argv) > 1 else 10.0,
        sys.argv[2] if len(sys.argv) > 2 else None,
    )

"""The `miniecs` command: the server, image builds, and friendly wrappers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from miniecs.config import MetricsSettings, ServerSettings, Settings, TaskSettings

app = typer.Typer(
    help="miniecs: Amazon ECS on Fargate, emulated on a local Docker engine.",
    no_args_is_help=True,
    add_completion=False,
)
images_app = typer.Typer(help="Build the images miniecs needs, offline.", no_args_is_help=True)
app.add_typer(images_app, name="images")
console = Console(stderr=True)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _logging(verbose: bool, log_format: str = "auto") -> None:
    """Rich output on a terminal; plain one-line records otherwise (CI logs, files), or JSON."""
    handler: logging.Handler
    if log_format == "auto":
        log_format = "rich" if console.is_terminal else "plain"
    if log_format == "rich":
        handler = RichHandler(console=console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler()
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
        if isinstance(handler.formatter, logging.Formatter):
            handler.formatter.converter = time.gmtime
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in ("urllib3", "docker", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the endpoint could not bind (host, port), e.g. a port in use; None when it can."""
    try:
        socket.create_server((host, port)).close()
    except OSError as exc:
        return os.strerror(exc.errno) if exc.errno else str(exc)
    return None


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the AWS endpoint.")] = 4566,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where state lives (default ~/.miniecs).")
    ] = None,
    clock_speed: Annotated[
        float, typer.Option(help="Run control-plane time this many times faster.")
    ] = 1.0,
    allow_privileged: Annotated[bool, typer.Option(help="Allow privileged tasks.")] = False,
    allow_host_network: Annotated[bool, typer.Option(help="Allow host networking.")] = False,
    allow_host_mounts: Annotated[bool, typer.Option(help="Allow host bind mounts.")] = False,
    metrics_source: Annotated[
        str,
        typer.Option(
            help="Where container usage is read: auto (the cgroup when the engine is local, "
            "else the Docker stats API), cgroup, or stats."
        ),
    ] = "auto",
    sample_interval: Annotated[
        float, typer.Option(help="Real seconds between two samples of every task.")
    ] = 1.0,
    secrets_file: Annotated[
        Path | None,
        typer.Option(
            help="JSON seeding Secrets Manager and SSM Parameter Store at start (for CI): "
            '{"secrets": {"name": "value"}, "parameters": {"/name": "value"}}.'
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: Annotated[
        str,
        typer.Option(help="auto (rich on a terminal, plain lines otherwise), plain, rich or json."),
    ] = "auto",
) -> None:
    """Run the AWS endpoint and the controllers in the foreground until Ctrl-C / SIGTERM.
    With --port 0 the system picks a free port: it is logged and written to <state-dir>/port."""
    from miniecs.engine import Engine

    if log_format not in ("auto", "plain", "rich", "json"):
        console.print(f"[red]--log-format must be auto, plain, rich or json, not {log_format}")
        raise typer.Exit(2)
    _logging(verbose, log_format)
    settings = Settings(
        clock_speed=clock_speed,
        server=ServerSettings(host=host, port=port),
        tasks=TaskSettings(
            allow_privileged=allow_privileged,
            allow_host_network=allow_host_network,
            allow_host_mounts=allow_host_mounts,
        ),
        metrics=MetricsSettings(sample_interval=sample_interval, source=metrics_source),
        secrets_file=secrets_file,
    )
    if secrets_file is not None and not secrets_file.is_file():
        console.print(f"[red]--secrets-file {secrets_file}: no such file[/]")
        raise typer.Exit(2)
    if metrics_source not in ("auto", "cgroup", "stats"):
        console.print(f"[red]--metrics-source must be auto, cgroup or stats, not {metrics_source}")
        raise typer.Exit(2)
    if state_dir is not None:
        settings = dataclasses.replace(settings, state_dir=state_dir)
    if port and (problem := _cannot_listen(host, port)) is not None:
        console.print(f"[red]cannot listen on {host}:{port}:[/] {problem}; pick another --port")
        raise typer.Exit(1)
    log = logging.getLogger("miniecs")
    log.info("miniecs: state %s, clock x%g", settings.state_dir, clock_speed)
    if (problem := _docker_problem()) is not None:
        log.error(
            "Docker engine not reachable (%s): tasks will stop at once with "
            "ResourceInitializationError until it answers",
            problem,
        )
    asyncio.run(Engine(settings).run())


def _docker_problem() -> str | None:
    """Why the Docker engine of the environment does not answer within 5 s; None if it does."""
    import docker

    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return str(exc)
    return None


@app.command()
def demo(
    clock_speed: Annotated[
        float,
        typer.Option(
            help="Control-plane time runs this many times faster: AWS's periods, cooldowns"
            " and health checks compress together."
        ),
    ] = 12.0,
    aws_timing: Annotated[
        bool, typer.Option(help="Real AWS timings (clock speed 1): about an hour.")
    ] = False,
    load_seconds: Annotated[
        float | None,
        typer.Option(help="Length of the pinned load (default: 13 metric periods)."),
    ] = None,
    report_dir: Annotated[
        Path, typer.Option(help="Where the report (HTML, PNG charts, raw data) is written.")
    ] = Path("miniecs-report"),
    port: Annotated[
        int, typer.Option(help="Port of the endpoint and its web console (0: any free port).")
    ] = 0,
    console_hold: Annotated[
        float,
        typer.Option(help="Keep the web console live this many seconds after the last phase."),
    ] = 0.0,
) -> None:
    """Reproduce the ECS study end to end: target tracking on CPU with a client pinned to one
    task (scale-out stops while that task stays hot), Container Insights, the load balancer
    that spreads the load, dynamic IPs, scale to zero. Writes a report; everything it creates
    is removed at the end, also on Ctrl-C."""
    from miniecs.demo import DemoError, run_demo

    try:
        run_demo(
            console=Console(),
            clock_speed=1.0 if aws_timing else clock_speed,
            load_seconds=load_seconds,
            report_dir=report_dir,
            port=port,
            console_hold=console_hold,
        )
    except DemoError as exc:
        console.print(f"[red]demo stopped:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; everything the demo created was removed[/]")
        raise typer.Exit(130) from None


@app.command()
def load(
    to_task: Annotated[
        str | None, typer.Option(help="Direct: pin every connection to this task (id or ARN).")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Via a load balancer: http://<lb-dns>:<port>/path.")
    ] = None,
    cluster: Annotated[str, typer.Option(help="Cluster of a --to-task given by id.")] = "default",
    path: Annotated[str, typer.Option(help="Request path for --to-task.")] = "/work",
    duration: Annotated[float, typer.Option(min=0.1, max=3600, help="Seconds, at most.")] = 10.0,
    requests: Annotated[int | None, typer.Option(min=1, help="Requests, at most.")] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Open loop: requests/s in total.")
    ] = None,
    connections: Annotated[
        int,
        typer.Option(
            min=1,
            max=4096,
            help="Kept-alive connections (closed loop: each sends as soon as it has its answer).",
        ),
    ] = 4,
    work_ms: Annotated[
        float | None, typer.Option(min=0, max=10000, help="CPU ms per request (/work?ms=).")
    ] = None,
    endpoint_url: Annotated[str, typer.Option(help="The miniecs endpoint.")] = (
        f"http://127.0.0.1:{ServerSettings().port}"
    ),
    network: Annotated[
        str | None,
        typer.Option(
            help="Docker network of the load container (default: the task's network, or "
            "the host's for --url)."
        ),
    ] = None,
    output: Annotated[str, typer.Option(help="table or json.")] = "table",
    expect: Annotated[
        str,
        typer.Option(
            help="Statuses that count as success, e.g. 200 or 2xx,404; any other status, a "
            "failed request or no request at all makes the command exit 1."
        ),
    ] = "2xx,3xx",
) -> None:
    """Send bounded HTTP load to one task directly or through a load balancer listener, from a
    container of the workload image; report requests per task, statuses and latency. Exits 1
    when any request failed or got a status outside --expect, so it can gate a CI job."""
    from miniecs import loadgen

    if output not in ("table", "json"):
        console.print("[red]--output must be table or json[/]")
        raise typer.Exit(2)
    try:
        expected = loadgen.parse_expect(expect)
    except loadgen.LoadError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    spec = loadgen.LoadSpec(duration, requests, rate, connections, work_ms)
    try:
        with console.status("load: starting") as status:
            report = loadgen.load_command(
                spec, to_task, url, cluster, path, endpoint_url, network, status.update
            )
    except loadgen.LoadError as exc:
        console.print(f"[red]load failed:[/] {exc}")
        raise typer.Exit(1) from None
    if output == "json":
        print(json.dumps(report))
    else:
        for table in loadgen.report_tables(report):
            Console().print(table)
    if problems := loadgen.failures(report, expected):
        console.print(f"[red]load failed:[/] {'; '.join(problems)}")
        raise typer.Exit(1)


@app.command()
def top(
    endpoint_url: Annotated[
        str, typer.Option(help="The miniecs endpoint to read.")
    ] = "http://127.0.0.1:4566",
    once: Annotated[bool, typer.Option(help="Print the view once and exit.")] = False,
    output: Annotated[str, typer.Option(help="With --once: json or table.")] = "table",
) -> None:
    """A live view of clusters, services and tasks: each service's desired/running counts and
    average CPU and memory next to every task's own, refreshed every second."""
    from miniecs import top as live_top

    if output not in ("json", "table"):
        console.print(f"[red]--output must be json or table, not {output}[/]")
        raise typer.Exit(2)
    try:
        live_top.run(endpoint_url, Console(), once=once, output=output)
    except live_top.TopError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def why(
    service: Annotated[str, typer.Argument(help="<cluster>/<service>")],
    endpoint_url: Annotated[
        str, typer.Option(help="The miniecs endpoint to read.")
    ] = "http://127.0.0.1:4566",
    output: Annotated[str, typer.Option(help="text or json.")] = "text",
    limit: Annotated[int, typer.Option(help="How many recent evaluations.")] = 10,
) -> None:
    """Why the service did or did not scale: the autoscaler's recent evaluations with their
    datapoints, alarm states, cooldowns, bounds and formula."""
    from miniecs import why as explain

    if output not in ("json", "text"):
        console.print(f"[red]--output must be json or text, not {output}[/]")
        raise typer.Exit(2)
    try:
        print(explain.run(endpoint_url, service, output, limit))
    except explain.WhyError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@app.command()
def logs(
    target: Annotated[str, typer.Argument(help="A task (id or ARN) or a service name.")],
    cluster: Annotated[str, typer.Option(help="The cluster.")] = "default",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    since: Annotated[float, typer.Option(help="Seconds back to start from.")] = 600.0,
    endpoint_url: Annotated[
        str, typer.Option(help="The miniecs endpoint to read.")
    ] = "http://127.0.0.1:4566",
) -> None:
    """Print (and with --follow, follow) the awslogs output of a task or of a service's tasks,
    from the endpoint's CloudWatch Logs."""
    from miniecs import logtail

    try:
        logtail.run(
            endpoint_url,
            ServerSettings().region,
            cluster,
            target,
            follow,
            since,
            lambda line: print(line, flush=True),
        )
    except logtail.LogsError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option(help="Rebuild even when up to date.")] = False,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Also build miniecs/miniecs:latest (miniecs, for compose and CI) or "
            "miniecs/dind:latest (dind: a Docker-in-Docker engine with miniecs). Repeatable.",
        ),
    ] = None,
) -> None:
    """Build the base image, the sample workload and the load balancer images (and, with
    --with, miniecs's own), with no registry and no network access inside any build; a second
    run finishes in seconds."""
    import docker

    from miniecs import images

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        console.print(f"[red]Docker engine not reachable:[/] {exc}")
        raise typer.Exit(1) from None
    try:
        built = images.build_all(client, console=console, force=force, extra=tuple(with_ or ()))
    except images.ImageBuildError as exc:
        console.print(f"[red]image build failed:[/] {exc}")
        raise typer.Exit(1) from None
    for name, image_id in built.items():
        console.print(f"  {name}  {image_id[:19]}")


def main() -> None:
    app()

"""The `miniecs` command: the server, image builds, and friendly wrappers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
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


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the AWS endpoint and the controllers in the foreground until Ctrl-C / SIGTERM."""
    from miniecs.engine import Engine

    _logging(verbose)
    settings = Settings(
        clock_speed=clock_speed,
        server=ServerSettings(host=host, port=port),
        tasks=TaskSettings(
            allow_privileged=allow_privileged,
            allow_host_network=allow_host_network,
            allow_host_mounts=allow_host_mounts,
        ),
        metrics=MetricsSettings(sample_interval=sample_interval, source=metrics_source),
    )
    if metrics_source not in ("auto", "cgroup", "stats"):
        console.print(f"[red]--metrics-source must be auto, cgroup or stats, not {metrics_source}")
        raise typer.Exit(2)
    if state_dir is not None:
        settings = dataclasses.replace(settings, state_dir=state_dir)
    if (problem := _cannot_listen(host, port)) is not None:
        console.print(f"[red]cannot listen on {host}:{port}:[/] {problem}; pick another --port")
        raise typer.Exit(1)
    console.print(
        f"[bold]miniecs[/] on http://{host}:{port}  state: {settings.state_dir}  "
        f"clock x{clock_speed:g}"
    )
    asyncio.run(Engine(settings).run())


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
) -> None:
    """Send bounded HTTP load to one task directly or through a load balancer listener, from a
    container of the workload image; report requests per task, statuses and latency."""
    from miniecs import loadgen

    if output not in ("table", "json"):
        console.print("[red]--output must be table or json[/]")
        raise typer.Exit(2)
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


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option(help="Rebuild even when up to date.")] = False,
) -> None:
    """Build the base image and the sample workload image, with no registry and no network
    access inside any build; a second run finishes in seconds."""
    import docker

    from miniecs import images

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        console.print(f"[red]Docker engine not reachable:[/] {exc}")
        raise typer.Exit(1) from None
    try:
        built = images.build_all(client, console=console, force=force)
    except images.ImageBuildError as exc:
        console.print(f"[red]image build failed:[/] {exc}")
        raise typer.Exit(1) from None
    for name, image_id in built.items():
        console.print(f"  {name}  {image_id[:19]}")


def main() -> None:
    app()

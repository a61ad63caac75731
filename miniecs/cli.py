"""The `miniecs` command: the server, image builds, and friendly wrappers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from miniecs.config import ServerSettings, Settings, TaskSettings

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
    )
    if state_dir is not None:
        settings = dataclasses.replace(settings, state_dir=state_dir)
    console.print(
        f"[bold]miniecs[/] on http://{host}:{port}  state: {settings.state_dir}  "
        f"clock x{clock_speed:g}"
    )
    asyncio.run(Engine(settings).run())


@app.command()
def demo(
    clock_speed: Annotated[
        float, typer.Option(help="Control-plane time runs this many times faster.")
    ] = 10.0,
    load_seconds: Annotated[float, typer.Option(help="Length of each load phase.")] = 5.0,
) -> None:
    """Reproduce the ECS study end to end: tasks, scaling without a load balancer, dynamic
    IPs, scale to zero. Everything it creates is removed at the end, also on Ctrl-C."""
    from miniecs.demo import DemoError, run_demo

    try:
        run_demo(console=Console(), clock_speed=clock_speed, load_seconds=load_seconds)
    except DemoError as exc:
        console.print(f"[red]demo stopped:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; everything the demo created was removed[/]")
        raise typer.Exit(130) from None


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

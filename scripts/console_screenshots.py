"""Screenshots of the web console during `miniecs demo`, as a viewer sees it at 1280x720.

Runs the demo in this process with a headless Chromium (Debian's package) on its console, and
keeps the last view of each phase: `python scripts/console_screenshots.py docs/`. Writes
console-<phase>.png for the phases named below."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from miniecs import demo as demo_module
from miniecs import images
from miniecs.demo import Demo
from tests import chromium

PHASES = ("pinned", "alb", "replaced")
"""pinned: the hot task and the idle new ones; alb: the load spread; replaced: a new IP."""


def _images_present() -> bool:
    engine = demo_module.docker.from_env()
    for name in (images.WORKLOAD_IMAGE, images.ALB_IMAGE):
        try:
            engine.images.get(name)
        except demo_module.docker.errors.ImageNotFound:
            return False
    return True


def main(out: Path) -> None:
    if _images_present():
        # Built already (`miniecs images build`): do not queue behind another build's lock.
        demo_module.images.build_all = lambda *a, **k: None  # type: ignore[assignment]
    demo = Demo(Console(file=sys.stderr), clock_speed=12.0, load_seconds=None, report_dir=None)
    thread = threading.Thread(target=demo.run, name="demo", daemon=True)
    thread.start()
    while not demo.endpoint:
        if not thread.is_alive():
            raise SystemExit("the demo stopped before its control plane started")
        time.sleep(0.2)
    last: dict[str, bytes] = {}
    with chromium.Browser() as browser:
        page = browser.page(1280, 720)
        page.goto(demo.endpoint + "/")
        shot = out / ".console-shot.png"
        while thread.is_alive():
            phase = demo.recorder.current_phase
            if phase in PHASES:
                try:
                    page.screenshot(shot)
                    last[phase] = shot.read_bytes()
                except chromium.BrowserError:
                    pass  # the control plane is going away
            time.sleep(2.0)
        shot.unlink(missing_ok=True)
    for phase, png in last.items():
        (out / f"console-{phase}.png").write_bytes(png)
        print(out / f"console-{phase}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))

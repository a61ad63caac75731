"""Offline, idempotent builds of the Docker images miniecs runs.

There is no registry: the base image (Debian bookworm with python3) is made on this host with
``debootstrap`` and ``docker import``, or adopted from a Python image already present, and the
derived images (the sample workload, the ALB data plane) are ``docker build``-s on top of it
from a few listed files, with nothing downloaded during a build. Every image is labelled
``miniecs.image=<short name>`` and ``miniecs.content-hash=<hash of its inputs>``, so a build is
skipped while its inputs are unchanged. The CLI (``miniecs images build``) and the integration
tests call :func:`build_all`; the runtime only needs the tags. Adding an image is one more
:class:`ImageSpec` in :func:`image_specs`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from rich.console import Console
from rich.markup import escape

log = logging.getLogger(__name__)

BASE_IMAGE = "miniecs/base:bookworm"
WORKLOAD_IMAGE = "miniecs/workload:latest"
ALB_IMAGE = "miniecs/alb:latest"
MINIECS_IMAGE = "miniecs/miniecs:latest"
"""miniecs itself (the server and every command), for compose.yaml and CI."""
DIND_BASE_IMAGE = "miniecs/dind-base:bookworm"
DIND_IMAGE = "miniecs/dind:latest"
"""Debian's docker.io engine plus miniecs: a Docker-in-Docker CI job reproduced offline."""
ALB_PYTHON = (3, 11)
"""Python of the offline base image (Debian bookworm). Images are built for the Python the base
actually carries (:func:`base_python`), which differs for an adopted python:3.x-slim."""
ALB_PACKAGES = ("uvloop", "httptools")
"""Third-party packages of the ALB data plane, copied into its image as files."""
IMAGE_LABEL = "miniecs.image"
HASH_LABEL = "miniecs.content-hash"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PYTHON_IMAGES = ("python:3.12-slim", "python:3.11-slim", "python:3.13-slim")
"""Local images adopted as the base, when present, instead of running debootstrap."""

_HASH_VERSION = "1"  # bump to rebuild every image after a change to how images are made


class ImageBuildError(Exception):
    """An image could not be built; the message says why and, when it can, what to do."""


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """A derived image: a Dockerfile and the files it copies, all found in ``context``."""

    name: str
    """Short name, the value of the ``miniecs.image`` label."""
    tag: str
    context: Path
    files: tuple[str, ...]
    """Files (relative to ``context``) sent to the build; nothing else is."""
    dockerfile: str = "Dockerfile"
    base: str = BASE_IMAGE
    """Image the Dockerfile starts from, passed as build arg ``BASE``; must be present."""
    build_args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BaseRecipe:
    """How the base image is made with debootstrap; its hash labels the image."""

    suite: str = "bookworm"
    variant: str = "minbase"
    include: tuple[str, ...] = ("python3", "ca-certificates")
    prune: tuple[str, ...] = (
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*",
        "var/log/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/doc/*/*",  # copyright files are kept, see _prune_rootfs
        "tmp/*",
    )
    """Globs (relative to the root) deleted after debootstrap to slim the image."""
    changes: tuple[str, ...] = (
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    )
    """Dockerfile instructions applied by ``docker import``."""

    def digest(self) -> str:
        """Hash of the recipe (the mirror is not part of it: any mirror gives the same image)."""
        return _sha256(json.dumps(asdict(self), sort_keys=True), "base", _HASH_VERSION)


DIND_RECIPE = BaseRecipe(
    include=("docker.io", "iptables", "ca-certificates", "python3", "procps"),
    changes=(
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["dockerd", "--storage-driver=vfs", "--host=unix:///var/run/docker.sock"]',
    ),
)
"""The Docker-in-Docker base: Debian's docker.io engine (about 40 s of debootstrap, once)."""


def workload_dir() -> Path:
    """Directory with the workload's ``Dockerfile`` and ``app.py``.

    Looked up in order: ``$MINIECS_WORKLOAD_DIR``; the package data ``miniecs._workload`` (a
    wheel built with the package-dir mapping described in the README); ``workload/`` beside the
    ``miniecs`` package, which is the source checkout and therefore ``pip install -e .``.
    """
    env = os.environ.get("MINIECS_WORKLOAD_DIR")
    if env:
        return Path(env)
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec("miniecs._workload")
        for location in (spec.submodule_search_locations or []) if spec else []:
            if (Path(location) / "app.py").is_file():
                return Path(location)
    checkout = Path(__file__).resolve().parent.parent / "workload"
    if (checkout / "app.py").is_file():
        return checkout
    raise ImageBuildError(
        f"workload files not found (looked in {checkout}); set MINIECS_WORKLOAD_DIR to the "
        "directory holding workload/Dockerfile and workload/app.py"
    )


def image_specs(python: tuple[int, int] = ALB_PYTHON) -> list[ImageSpec]:
    """The derived images :func:`build_all` builds, in order, for a base carrying ``python``."""
    return [
        ImageSpec(
            name="workload",
            tag=WORKLOAD_IMAGE,
            context=workload_dir(),
            files=("app.py", "load.py"),
        ),
        alb_spec(python),
    ]


def base_python(client: docker.DockerClient, ref: str) -> tuple[int, int]:
    """The (major, minor) of ``python3`` in image ``ref``: asked once per image id, by running
    it (a second; the answer is kept in the temp dir)."""
    image = _get_image(client, ref)
    if image is None:
        raise ImageBuildError(f"image {ref} is not present")
    cache = Path(tempfile.gettempdir()) / f"miniecs-python-{os.getuid()}.json"
    try:
        known: dict[str, list[int]] = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if str(image.id) in known:
        major, minor = known[str(image.id)]
        return major, minor
    probe = "import sys; print('%d %d' % sys.version_info[:2])"
    try:
        out = client.containers.run(
            image.id, ["python3", "-c", probe], remove=True, network_mode="none",
            entrypoint=[], labels={"miniecs.role": "image-probe"},
        )  # fmt: skip
        major, minor = (int(part) for part in out.decode().split())
    except (docker.errors.DockerException, ValueError) as exc:
        raise ImageBuildError(f"cannot tell the Python of {ref}: {exc}") from exc
    known[str(image.id)] = [major, minor]
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps(known))
    return major, minor


# --- the ALB data plane's build context -------------------------------------------------------


def alb_spec(python: tuple[int, int] = ALB_PYTHON, base: str = BASE_IMAGE) -> ImageSpec:
    """The ALB image: ``miniecs/alb/dataplane`` as package ``albdp`` plus uvloop and httptools
    built for ``python``, the base image's own Python.

    The context is assembled in a temporary directory from files only (no pip in the image, no
    download during the build): the packages come from this interpreter when it is the same
    CPython on Linux (the dev environment has them), else from that Python's manylinux wheels
    fetched once into ``~/.cache/miniecs/wheels`` with ``pip download`` (PyPI or the pip
    index configured; the wheel cache can be filled elsewhere and copied). Shared objects are
    stripped; the image's build step fails if the base's Python cannot import them.
    """
    source = Path(__file__).resolve().parent / "alb"
    version = "".join(map(str, python))
    root = _context_dir(f"alb-cp{version}")
    (root / "opt" / "albdp").mkdir(parents=True)
    shutil.copyfile(source / "Dockerfile", root / "Dockerfile")
    for module in sorted((source / "dataplane").glob("*.py")):
        shutil.copyfile(module, root / "opt" / "albdp" / module.name)
    strip = shutil.which("strip")
    for package in _alb_packages(python):
        for path in sorted(package.rglob("*")):
            if "__pycache__" in path.parts or path.suffix not in (".py", ".so"):
                continue
            dest = root / "opt" / package.name / path.relative_to(package)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            if dest.suffix == ".so" and strip:
                subprocess.run([strip, "--strip-unneeded", str(dest)], check=False)
    files = tuple(
        str(path.relative_to(root)) for path in sorted((root / "opt").rglob("*")) if path.is_file()
    )
    return ImageSpec(name="alb", tag=ALB_IMAGE, context=root, files=files, base=base)


def _alb_packages(python: tuple[int, int]) -> list[Path]:
    if sys.version_info[:2] == python and sys.platform == "linux":
        found = [_package_dir(name) for name in ALB_PACKAGES]
        if all(path is not None for path in found):
            return [path for path in found if path is not None]
    return _downloaded_packages(python)


def _context_dir(name: str) -> Path:
    """A fresh private directory for one build context, removed when this process exits."""
    root = Path(tempfile.mkdtemp(prefix=f"miniecs-context-{name}-"))
    atexit.register(shutil.rmtree, root, True)
    return root


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def _downloaded_packages(python: tuple[int, int]) -> list[Path]:
    """uvloop and httptools unpacked from manylinux wheels for ``python``, downloaded once."""
    version = "".join(map(str, python))
    cache = Path.home() / ".cache" / "miniecs" / "wheels"
    site = cache / f"cp{version}-{os.uname().machine}"
    if not all((site / name).is_dir() for name in ALB_PACKAGES):
        machine = os.uname().machine
        platforms = [f"manylinux{tag}_{machine}" for tag in ("_2_28", "_2_17", "2014", "_2_5")]
        cmd = [
            sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
            "--python-version", ".".join(map(str, python)), "--implementation", "cp",
            "--abi", f"cp{version}", *(f"--platform={p}" for p in platforms),
            "-d", str(cache), *ALB_PACKAGES,
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ImageBuildError(
                f"alb: cannot get cp{version} wheels of {', '.join(ALB_PACKAGES)}: "
                f"{result.stderr.strip()[-500:]}"
            )
        for name in ALB_PACKAGES:
            wheels = sorted(cache.glob(f"{name}-*-cp{version}-*.whl"))
            if not wheels:
                raise ImageBuildError(f"alb: no cp{version} wheel of {name} in {cache}")
            with zipfile.ZipFile(wheels[-1]) as wheel:
                wheel.extractall(site)
    return [site / name for name in ALB_PACKAGES]


def build_all(
    client: docker.DockerClient,
    console: Console | None = None,
    force: bool = False,
    *,
    extra: tuple[str, ...] = (),
) -> dict[str, str]:
    """Make sure the base and every derived image are built and current; return tag -> id.

    ``extra`` adds optional images: ``"miniecs"`` (:data:`MINIECS_IMAGE`, for compose and CI)
    and ``"dind"`` (:data:`DIND_IMAGE`, a Docker-in-Docker engine with miniecs).
    """
    unknown = set(extra) - {"miniecs", "dind"}
    if unknown:
        raise ImageBuildError(f"unknown image(s): {', '.join(sorted(unknown))}")
    with _build_lock(console):
        ids = {BASE_IMAGE: _ensure_base(client, console, force)}
        python = base_python(client, BASE_IMAGE)
        for spec in image_specs(python):
            ids[spec.tag] = _build_image(client, spec, console, force)
        if "miniecs" in extra:
            ids[MINIECS_IMAGE] = _build_image(
                client, miniecs_spec(python, BASE_IMAGE, MINIECS_IMAGE), console, force
            )
        if "dind" in extra:
            ids[DIND_BASE_IMAGE] = _ensure_recipe_image(
                client, DIND_RECIPE, DIND_BASE_IMAGE, console, force
            )
            dind_python = base_python(client, DIND_BASE_IMAGE)
            ids[DIND_IMAGE] = _build_image(
                client, miniecs_spec(dind_python, DIND_BASE_IMAGE, DIND_IMAGE), console, force
            )
        _remove_old_images(client)
        return ids


# --- miniecs itself as an image ---------------------------------------------------------------

MINIECS_DOCKERFILE = b"""\
# miniecs itself, built offline by `miniecs images build --with miniecs` on top of the base:
# its dependencies for the base's own Python (site.tar, from pip's wheels) and the package.
ARG BASE=miniecs/base:bookworm
FROM ${BASE}
ADD site.tar /opt/miniecs/
COPY miniecs/ /opt/miniecs/miniecs/
ENV PYTHONPATH=/opt/miniecs PYTHONUNBUFFERED=1 MINIECS_STATE_DIR=/var/lib/miniecs \\
    MINIECS_WORKLOAD_DIR=/opt/miniecs/miniecs/_workload
RUN printf '#!/bin/sh\\nexec python3 -m miniecs "$@"\\n' > /usr/local/bin/miniecs \\
    && chmod 0755 /usr/local/bin/miniecs \\
    && { python3 -m compileall -q -j 0 /opt/miniecs > /dev/null || true; } \\
    && miniecs --help > /dev/null && mkdir -p /var/lib/miniecs
VOLUME /var/lib/miniecs
EXPOSE 4566
ENTRYPOINT ["miniecs"]
CMD ["server", "--host", "0.0.0.0", "--port", "4566"]
HEALTHCHECK --interval=2s --timeout=3s --start-period=5s --retries=15 \\
    CMD ["python3", "-c", "@PROBE@"]
""".replace(
    b"@PROBE@",
    b"import urllib.request as r; r.urlopen('http://127.0.0.1:4566/_miniecs/health', timeout=2)",
)


def miniecs_spec(python: tuple[int, int], base: str, tag: str) -> ImageSpec:
    """miniecs as an image on ``base`` (which carries ``python``): the package's own files
    (the workload files resolved, not a symlink) and a tar of its dependencies."""
    package = Path(__file__).resolve().parent
    version = "".join(map(str, python))
    root = _context_dir(f"miniecs-cp{version}")
    (root / "miniecs").mkdir(parents=True)
    (root / "Dockerfile").write_bytes(MINIECS_DOCKERFILE)
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if "__pycache__" in relative.parts or path.is_dir() or relative.parts[0] == "_workload":
            continue
        dest = root / "miniecs" / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    workload = workload_dir()
    for name in ("app.py", "load.py", "Dockerfile", "README.md"):
        dest = root / "miniecs" / "_workload" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(workload / name, dest)
    (root / "site.tar").symlink_to(_site_tar(python))  # read through the link, not copied
    files = tuple(
        str(path.relative_to(root))
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root) != Path("Dockerfile")
    )
    return ImageSpec(name=_short_name(tag), tag=tag, context=root, files=files, base=base)


def _requirements() -> list[str]:
    """miniecs's own dependencies (no extras), from its installed metadata."""
    import importlib.metadata

    try:
        requires = importlib.metadata.requires("miniecs") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ImageBuildError("miniecs is not installed (pip install .): no metadata") from exc
    return sorted(r for r in requires if "extra ==" not in r)


def _site_tar(python: tuple[int, int]) -> Path:
    """A tar of miniecs's dependencies installed for ``python`` (manylinux wheels only), made
    once per requirement set with ``pip install --target`` and kept in ~/.cache/miniecs."""
    version = "".join(map(str, python))
    machine = os.uname().machine
    requirements = _requirements()
    key = _sha256(version, machine, *requirements, _HASH_VERSION)[:16]
    cache = Path.home() / ".cache" / "miniecs" / "site"
    tar_path = cache / f"cp{version}-{machine}-{key}.tar"
    if tar_path.is_file():
        return tar_path
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="miniecs-site-") as tmp:
        target = Path(tmp) / "site"
        platforms = [f"manylinux{tag}_{machine}" for tag in ("_2_28", "_2_17", "2014", "_2_5", "1")]
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--target", str(target),
            "--python-version", ".".join(map(str, python)), "--implementation", "cp",
            "--abi", f"cp{version}", *(f"--platform={p}" for p in platforms),
            *requirements,
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ImageBuildError(
                f"miniecs image: cannot get cp{version} wheels of its dependencies: "
                f"{result.stderr.strip()[-800:]}"
            )
        shutil.rmtree(target / "bin", ignore_errors=True)
        partial = tar_path.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            for path in sorted(target.rglob("*")):
                if "__pycache__" in path.parts or not path.is_file():
                    continue
                info = tar.gettarinfo(str(path), str(path.relative_to(target)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        partial.rename(tar_path)
    return tar_path


def ensure_base(
    client: docker.DockerClient, console: Console | None = None, force: bool = False
) -> str:
    """Make sure :data:`BASE_IMAGE` exists and matches the recipe; return its id."""
    with _build_lock(console):
        image_id = _ensure_base(client, console, force)
        _remove_old_images(client)
        return image_id


def build_image(
    client: docker.DockerClient,
    spec: ImageSpec,
    console: Console | None = None,
    force: bool = False,
) -> str:
    """Build ``spec`` unless its tag already has the same content hash; return the image id."""
    with _build_lock(console):
        image_id = _build_image(client, spec, console, force)
        _remove_old_images(client)
        return image_id


# --- base image -------------------------------------------------------------------------------


def _ensure_base(client: docker.DockerClient, console: Console | None, force: bool) -> str:
    recipe = BaseRecipe()
    current = _get_image(client, BASE_IMAGE)
    adoptable = [(ref, image) for ref in PYTHON_IMAGES if (image := _get_image(client, ref))]
    accepted = {recipe.digest()} | {_adopt_digest(image.id) for _, image in adoptable}
    if current is not None and not force and current.labels.get(HASH_LABEL) in accepted:
        _say(console, f"base image {BASE_IMAGE}: up to date ({_short(current.id)})")
        return str(current.id)
    if adoptable:
        ref, image = adoptable[0]
        spec = ImageSpec(name="base", tag=BASE_IMAGE, context=Path("."), files=(), base=ref)
        with _step(console, f"base image: adopting {ref}"):
            new_id = _docker_build(
                client,
                spec,
                {"Dockerfile": b"ARG BASE\nFROM ${BASE}\n"},
                _adopt_digest(image.id),
                nocache=force,
            )
    else:
        new_id = _debootstrap_base(client, recipe, console)
    size = _get_image(client, new_id)
    megabytes = size.attrs.get("Size", 0) / 1e6 if size is not None else 0
    _say(console, f"base image {BASE_IMAGE}: {_short(new_id)}, {megabytes:.0f} MB")
    return new_id


def _adopt_digest(image_id: str) -> str:
    return _sha256("adopt", image_id, _HASH_VERSION)


def ensure_recipe_image(
    client: docker.DockerClient,
    recipe: BaseRecipe,
    tag: str,
    console: Console | None = None,
    force: bool = False,
) -> str:
    """Make sure ``tag`` is the debootstrap image of ``recipe``; return its id."""
    with _build_lock(console):
        return _ensure_recipe_image(client, recipe, tag, console, force)


def _ensure_recipe_image(
    client: docker.DockerClient,
    recipe: BaseRecipe,
    tag: str,
    console: Console | None,
    force: bool,
) -> str:
    """Make sure ``tag`` is the debootstrap image of ``recipe`` (by its hash); return its id."""
    current = _get_image(client, tag)
    if current is not None and not force and current.labels.get(HASH_LABEL) == recipe.digest():
        _say(console, f"{tag}: up to date ({_short(current.id)})")
        return str(current.id)
    new_id = _debootstrap_base(client, recipe, console, tag)
    _say(console, f"{tag}: {_short(new_id)}")
    return new_id


def _debootstrap_base(
    client: docker.DockerClient, recipe: BaseRecipe, console: Console | None, tag: str = BASE_IMAGE
) -> str:
    debootstrap = shutil.which("debootstrap") or shutil.which("/usr/sbin/debootstrap")
    if debootstrap is None:
        raise ImageBuildError(
            "debootstrap is needed to make the base image without a registry: "
            "apt-get install debootstrap (or load a python:3.12-slim image into Docker)"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            "making the base image with debootstrap needs root: run as root (sudo)"
        )
    mirror = os.environ.get("MINIECS_DEBIAN_MIRROR", DEFAULT_MIRROR)
    root = Path(tempfile.mkdtemp(prefix="miniecs-base-"))
    try:
        with _step(console, f"base image: debootstrap {recipe.suite}") as update:
            _run_debootstrap(debootstrap, recipe, root, mirror, update)
            _prune_rootfs(root, recipe.prune)
        with _step(console, f"{tag}: docker import"):
            return _import_rootfs(client, root, recipe, tag)
    finally:
        _remove_tree(root)


def _run_debootstrap(
    debootstrap: str, recipe: BaseRecipe, root: Path, mirror: str, update: Callable[[str], None]
) -> None:
    cmd = [
        debootstrap,
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.include)}",
        recipe.suite,
        str(root),
        mirror,
    ]
    log.info("running %s", " ".join(cmd))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    tail: deque[str] = deque(maxlen=15)
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                line = line.rstrip()
                log.debug("debootstrap: %s", line)
                tail.append(line)
                if line.startswith("I: "):
                    update(line[3:])
        finally:
            if proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)  # let it unmount what it mounted
    if proc.returncode != 0:
        last = "\n  ".join(tail)
        raise ImageBuildError(
            f"debootstrap failed (exit {proc.returncode}) with mirror {mirror} "
            f"(set MINIECS_DEBIAN_MIRROR to use another):\n  {last}"
        )


def _prune_rootfs(root: Path, globs: tuple[str, ...]) -> None:
    for pattern in globs:
        for path in root.glob(pattern):
            if path.name == "copyright" and "usr/share/doc" in pattern:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def _import_rootfs(
    client: docker.DockerClient, root: Path, recipe: BaseRecipe, tag: str = BASE_IMAGE
) -> str:
    """Stream ``tar`` of the root file system into ``docker import``; return the image id.

    The image is tagged only once tar has succeeded, so a truncated import never passes for a
    current base.
    """
    changes = [
        *recipe.changes,
        f"LABEL {IMAGE_LABEL}={'base' if tag == BASE_IMAGE else _short_name(tag)}",
        f"LABEL {HASH_LABEL}={recipe.digest()}",
    ]
    cmd = ["tar", "-C", str(root), "--numeric-owner", "-c"]
    cmd += ["--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "."]
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors) as tar,
    ):
        stdout = tar.stdout
        assert stdout is not None

        def chunks() -> Iterator[bytes]:
            while chunk := stdout.read(1 << 20):
                yield chunk

        try:
            result = str(client.api.import_image_from_stream(chunks(), changes=changes))
        except docker.errors.DockerException as exc:
            tar.kill()
            raise ImageBuildError(f"docker import of the base image failed: {exc}") from exc
        tar.wait()
        errors.seek(0)
        tar_errors = errors.read().decode(errors="replace").strip()
    image_id = ""
    for line in result.splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("error"):
                raise ImageBuildError(f"docker import of the base image failed: {message['error']}")
            if isinstance(message, dict) and str(message.get("status", "")).startswith("sha256:"):
                image_id = str(message["status"])
    if not image_id:
        raise ImageBuildError(f"docker import of the base image gave no image id: {result!r}")
    if tar.returncode != 0:
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(image_id)
        raise ImageBuildError(f"tar of the base image failed (exit {tar.returncode}): {tar_errors}")
    repository, _, version = tag.rpartition(":")
    try:
        client.api.tag(image_id, repository, version, force=True)
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"cannot tag the base image {image_id} as {tag}: {exc}") from exc
    return image_id


# --- derived images ---------------------------------------------------------------------------


def _build_image(
    client: docker.DockerClient, spec: ImageSpec, console: Console | None, force: bool
) -> str:
    base = _get_image(client, spec.base)
    if base is None:
        if spec.base != BASE_IMAGE:
            raise ImageBuildError(
                f"{spec.name}: base image {spec.base} is not present and cannot be pulled "
                "(no registry); load it with docker load or use the default base"
            )
        base_id = _ensure_base(client, console, force=False)
    else:
        base_id = str(base.id)
    files = _read_context(spec)
    digest = _sha256(
        spec.name,
        spec.tag,
        spec.dockerfile,
        json.dumps(sorted(_build_args(spec).items())),
        base_id,
        *(f"{name}:{_sha256(data)}" for name, data in sorted(files.items())),
        _HASH_VERSION,
    )
    current = _get_image(client, spec.tag)
    if current is not None and not force and current.labels.get(HASH_LABEL) == digest:
        _say(console, f"{spec.name} {spec.tag}: up to date ({_short(current.id)})")
        return str(current.id)
    with _step(console, f"{spec.name}: docker build {spec.tag}"):
        new_id = _docker_build(client, spec, files, digest, nocache=force)
    return new_id


def _read_context(spec: ImageSpec) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in (*spec.files, spec.dockerfile):
        path = spec.context / name
        try:
            files[name] = path.read_bytes()
        except OSError as exc:
            raise ImageBuildError(f"{spec.name}: cannot read build file {path}: {exc}") from exc
    return files


def _build_args(spec: ImageSpec) -> dict[str, str]:
    return {"BASE": spec.base, **dict(spec.build_args)}


def _context_tar(files: dict[str, bytes]) -> io.BytesIO:
    """A reproducible build context holding exactly ``files``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if data.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _docker_build(
    client: docker.DockerClient,
    spec: ImageSpec,
    files: dict[str, bytes],
    digest: str,
    *,
    nocache: bool,
) -> str:
    """Run one ``docker build`` of ``files``; return the id of the image tagged ``spec.tag``."""
    # Labels go in one Dockerfile line: the API's labels= adds one build step (about 1 s) each.
    labels = f"\nLABEL {IMAGE_LABEL}={spec.name} {HASH_LABEL}={digest}\n".encode()
    files = {**files, spec.dockerfile: files[spec.dockerfile].rstrip(b"\n") + labels}
    try:
        stream = client.api.build(
            fileobj=_context_tar(files),
            custom_context=True,
            tag=spec.tag,
            dockerfile=spec.dockerfile,
            buildargs=_build_args(spec),
            pull=False,
            nocache=nocache,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if chunk.get("error"):
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise ImageBuildError(f"{spec.name}: docker build failed: {str(detail).strip()}")
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    log.debug("%s build: %s", spec.name, line)
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"{spec.name}: docker build failed: {exc}") from exc
    image = _get_image(client, spec.tag)
    if image is None:
        raise ImageBuildError(f"{spec.name}: docker build finished but {spec.tag} is missing")
    return str(image.id)


# --- helpers ----------------------------------------------------------------------------------


def _get_image(client: docker.DockerClient, ref: str) -> Any:
    """The image called ``ref``, or None."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"cannot inspect image {ref}: {exc}") from exc


def _remove_old_images(client: docker.DockerClient) -> None:
    """Remove untagged earlier builds of our images; best effort, containers may still use them.

    An image is an earlier build when its content hash differs from that of the image now tagged
    under the same ``miniecs.image`` name. Images built by others FROM our base inherit the
    base's labels, current hash included, so they are never taken for old builds.
    """
    try:
        tagged = client.images.list(filters={"label": IMAGE_LABEL, "dangling": False})
        dangling = client.images.list(filters={"label": IMAGE_LABEL, "dangling": True})
    except docker.errors.DockerException as exc:
        log.debug("cannot list images to clean up: %s", exc)
        return
    current: dict[str, set[str]] = {}
    for image in tagged:
        current.setdefault(image.labels.get(IMAGE_LABEL, ""), set()).add(
            image.labels.get(HASH_LABEL)
        )
    for image in dangling:
        hashes = current.get(image.labels.get(IMAGE_LABEL, ""))
        if hashes is None or image.labels.get(HASH_LABEL) in hashes:
            continue
        try:
            client.images.remove(image.id)  # also removes its untagged parents
            log.info("removed earlier build %s", _short(image.id))
        except docker.errors.DockerException as exc:
            log.debug("kept earlier build %s: %s", _short(image.id), exc)


def _remove_tree(root: Path) -> None:
    """Delete a debootstrap target, never following a mount left inside it into the host."""
    mounts = _mounts_under(root)
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    if left := _mounts_under(root):
        log.warning("not deleting %s: still mounted inside it: %s", root, ", ".join(left))
        return
    shutil.rmtree(root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[4].encode().decode("unicode_escape") for line in lines]
    return [p for p in points if (p + "/").startswith(prefix)]


@contextlib.contextmanager
def _build_lock(console: Console | None) -> Iterator[None]:
    """Serialise image builds across processes (tests and the CLI may build at once)."""
    path = Path(tempfile.gettempdir()) / "miniecs-images.lock"
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(console, "waiting for another miniecs image build to finish…")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _step(console: Console | None, label: str) -> Iterator[Callable[[str], None]]:
    """Show a spinner for a step, then one line with its elapsed time."""
    started = time.monotonic()
    log.info("%s…", label)
    try:
        if console is None:
            yield lambda _detail: None
        else:
            with console.status(f"{escape(label)}…") as status:
                yield lambda detail: status.update(f"{escape(label)}… [dim]{escape(detail)}[/dim]")
    except BaseException:
        _say(console, f"{label}… failed after {time.monotonic() - started:.0f} s")
        raise
    _say(console, f"{label}… {_seconds(time.monotonic() - started)}")


def _say(console: Console | None, message: str) -> None:
    log.info("%s", message)
    if console is not None:
        console.print(message, highlight=False, markup=False)


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.1f} s" if elapsed < 10 else f"{elapsed:.0f} s"


def _short_name(tag: str) -> str:
    """``miniecs/dind-base:bookworm`` -> ``dind-base``."""
    return tag.rpartition("/")[2].partition(":")[0]


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _sha256(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()

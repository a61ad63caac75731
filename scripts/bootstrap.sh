#!/usr/bin/env bash
# Make this machine ready for miniecs: a Docker engine that answers, debootstrap for the offline
# base image, a virtualenv with miniecs and its dev tools, and the images. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! docker info >/dev/null 2>&1; then
  if command -v dockerd >/dev/null 2>&1; then
    say "Docker engine not answering: starting dockerd"
    (dockerd >/tmp/miniecs-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  docker info >/dev/null 2>&1 || { echo "no Docker engine answers (see 'docker info')" >&2; exit 1; }
fi

if ! command -v debootstrap >/dev/null 2>&1 && ! docker image inspect miniecs/base:bookworm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing debootstrap (builds the offline base image)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  else
    echo "debootstrap is needed to build the base image: sudo apt-get install debootstrap" >&2
    exit 1
  fi
fi

# Headless Chromium (Debian's package) runs the web console's browser tests; they skip without it.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium (headless, for the web console's browser tests)"
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "could not install chromium: the console's browser tests will be skipped" >&2
  else
    echo "chromium not found (sudo apt-get install chromium): the console's browser tests will be skipped" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
say "installing miniecs and its tools into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

say "building images (offline)"
.venv/bin/miniecs images build

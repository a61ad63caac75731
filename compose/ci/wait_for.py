"""Wait until a Docker engine (DOCKER_HOST or the local socket) or an HTTP URL answers.

python compose/ci/wait_for.py docker [--timeout 60]
python compose/ci/wait_for.py http://127.0.0.1:4566/_miniecs/health [--timeout 60]
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request


def answers(what: str) -> bool:
    try:
        if what == "docker":
            import docker

            return bool(docker.from_env().ping())
        with urllib.request.urlopen(what, timeout=2) as response:
            return bool(response.status == 200)
    except Exception:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", help="'docker' or an http:// URL")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    while not answers(args.what):
        if time.monotonic() > deadline:
            print(f"{args.what} did not answer within {args.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(1)
    print(f"{args.what} answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())

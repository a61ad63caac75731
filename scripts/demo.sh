#!/usr/bin/env bash
# The main job: make this machine ready (once), then run `miniecs demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/miniecs demo "$@"

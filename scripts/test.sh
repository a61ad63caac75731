#!/usr/bin/env bash
# The one command that runs every check: lint, format, types, import layers, unit, component
# and integration tests (real Docker). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
say "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
say "mypy"
.venv/bin/mypy
say "import layers"
.venv/bin/lint-imports
say "tests"
exec .venv/bin/pytest -p no:cacheprovider "$@"

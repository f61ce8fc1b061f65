#!/usr/bin/env bash
# The long chaos run outside pytest: python -m tests.chaos run (see tests/chaos/__main__.py).
#   scripts/chaos.sh                 # 3 rounds, random fault order, Redis wiped
#   scripts/chaos.sh --rounds 10 --seed 42 --keep-redis
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
[[ " ${args[*]-} " == *" --rounds "* ]] || args=(--rounds 3 "${args[@]}")
exec .venv/bin/python -m tests.chaos run "${args[@]}"

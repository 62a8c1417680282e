#!/usr/bin/env bash
# Install JITGate and everything its tests need into ./.venv (idempotent; safe to re-run).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch first, pinned to the CPU build (an unpinned torch resolves to a multi-GB CUDA build)
.venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e '.[all,semantic]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip check
if [ -f scripts/install_peers.sh ]; then
  bash scripts/install_peers.sh
fi

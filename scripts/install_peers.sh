#!/usr/bin/env bash
# Install the real MCP peers the end-to-end tests run against, from pinned versions:
#   tests/peers/node_modules  (npm ci from the lockfile: server-filesystem, server-everything,
#                              server-memory, the TypeScript SDK clients, inspector CLI)
#   .peers-venv               (PyPI servers: mcp-server-time, mcp-server-git, in their own venv)
# Idempotent: each part is skipped when its stamp matches the pinned inputs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="$root/tests/peers"
venv="$root/.peers-venv"
py_pins="mcp-server-time==2026.10.19 mcp-server-git==2026.10.19"
python="${PYTHON:-python3}"

lock_sum() { sha256sum "$peers/package-lock.json" | cut -d' ' -f1; }

if ! command -v npm >/dev/null 2>&1; then
  echo "install_peers: npm not found; install Node.js 20 (apt-get install -y nodejs npm)" >&2
  exit 1
fi

stamp="$peers/node_modules/.jitgate-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$(lock_sum)" ]]; then
  echo "install_peers: npm peers up to date"
else
  echo "install_peers: npm ci in tests/peers"
  (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error)
  lock_sum >"$stamp"
fi

vstamp="$venv/.jitgate-stamp"
if [[ -f "$vstamp" && "$(cat "$vstamp")" == "$py_pins" && -x "$venv/bin/mcp-server-time" ]]; then
  echo "install_peers: .peers-venv up to date"
else
  echo "install_peers: creating .peers-venv"
  "$python" -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $py_pins
  echo "$py_pins" >"$vstamp"
fi

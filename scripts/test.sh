#!/usr/bin/env bash
# Run the whole test suite (as root: the tests use namespaces, mounts, cgroups and iptables).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DOCKYARD_VENV:-/opt/dockyard}
exec "$VENV/bin/python" -m pytest "$@"

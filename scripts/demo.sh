#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: install, make a base image, use it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
set -x
dockyard image bootstrap busybox
dockyard images
dockyard image inspect --format '{{.Id}} {{.Config.Cmd}} {{.RootFS.Layers}}' busybox
dockyard save -o /tmp/dockyard-busybox.tar busybox
dockyard load -i /tmp/dockyard-busybox.tar
dockyard run --rm busybox sh -c 'echo "hello from $(hostname), pid $$"'
dockyard run -d --name demo-sleeper busybox sleep 300
dockyard exec demo-sleeper ps
dockyard ps
dockyard rm -f demo-sleeper

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
# Build the example web site from its Dockerfile, run it with a published port, ask it over HTTP.
dockyard build -t hello-web examples/hello-web
dockyard rm -f demo-web >/dev/null 2>&1 || true
dockyard run -d --name demo-web -p 127.0.0.1:8080:80 hello-web
dockyard ps
for _ in $(seq 50); do curl -fsS http://127.0.0.1:8080/ && break; sleep 0.1; done
dockyard exec demo-web cat /www/built.txt
dockyard logs demo-web
dockyard rm -f demo-web

"""dockyard's registry server as a container, the way `docker run -p 5000:5000 registry:2` is used."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registry_image_runs_and_serves_pushes(dy, debian, busybox):
    out = dy.out("build", "-t", "dockyard-registry", "-f", str(REPO / "examples" / "registry" / "Dockerfile"),
                 str(REPO), timeout=900)
    assert "Successfully tagged dockyard-registry:latest" in out
    port = free_port()
    dy("run", "-d", "-p", f"127.0.0.1:{port}:5000", "--restart=always", "--name", "registry",
       "-v", "registry-data:/var/lib/registry", "dockyard-registry")
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as response:
                assert response.status == 200
                break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(dy.out("logs", "registry"))
            time.sleep(0.2)
    name = f"127.0.0.1:{port}/tools/busybox:v1"
    dy("tag", "busybox", name)
    dy("push", name)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/_catalog") as response:
        assert json.load(response)["repositories"] == ["tools/busybox"]
    dy("rmi", name)
    dy("pull", name)
    assert dy.out("run", "--rm", name, "echo", "round trip") == "round trip\n"
    # --restart=always: the registry comes back after its process dies, its data in the volume.
    pid = json.loads(dy.out("inspect", "-f", "{{json .State}}", "registry"))["Pid"]
    import os
    import signal

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        state = json.loads(dy.out("inspect", "-f", "{{json .State}}", "registry"))
        if state["Running"] and state["Pid"] != pid:
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/tools/busybox/tags/list", timeout=2) as r:
                assert json.load(r)["tags"] == ["v1"]
                break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.2)

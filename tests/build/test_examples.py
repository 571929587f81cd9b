"""The examples build, and what they build works."""

from __future__ import annotations

import socket
import time
import urllib.request

from tests.build.imagefs import image_files, inspect
from tests.conftest import REPO


def test_hello_web_builds_and_serves_its_page(dy, busybox):
    dy("build", "-t", "hello-web", str(REPO / "examples" / "hello-web"))
    image = inspect(dy, "hello-web")
    assert image["Config"]["Cmd"] == ["httpd", "-f", "-p", "80"]
    assert "80/tcp" in image["Config"]["ExposedPorts"]
    files = image_files(dy.root, "hello-web")
    assert b"Hello from dockyard!" in files["www/index.html"].data
    assert "www/README.md" not in files
    # Published ports land with the network service; until then the host's namespace and a free port.
    port = _free_port()
    dy("run", "-d", "--name", "web", "--network", "host", "hello-web", "httpd", "-f", "-p", f"127.0.0.1:{port}")
    page = ""
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                page = response.read().decode()
            break
        except OSError:
            time.sleep(0.05)
    assert "Hello from dockyard!" in page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

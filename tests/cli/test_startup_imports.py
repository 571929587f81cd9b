"""Short-lived commands whose start-up is much of their own time: what they import before their first request
is kept to what that request needs. Each module named here costs a command about 1 ms or more (collections,
pulled in by functools, array and collections.abc, alone ~2 ms)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = {"collections", "functools", "array", "importlib", "json", "re", "socket", "subprocess", "threading",
         "enum", "typing", "argparse", "dataclasses"}
# A registry command needs http.client (which imports ssl, email, socket...), json, threading and dataclasses;
# not these.
REGISTRY_HEAVY = {"argparse", "typing", "platform", "logging", "concurrent.futures", "subprocess", "tempfile"}

PROBE = """
import sys
sys.path[1:1] = [sys.argv[1]]
from dockyard.cli.main import main
import dockyard.engine.monitor.client as client
def request_sent(self, message, fds=None):
    print(" ".join(sorted(sys.modules)))
    raise SystemExit(0)
client.MonitorClient.open = request_sent
main(["--root", sys.argv[2], "run", "-d", "--name", "web", "-p", "18080:80", "busybox", "httpd", "-f"])
"""

# The first HTTP request of a registry command, whichever thread sends it, ends the process. The path is the
# installed launcher's: the checkout, then the venv's site-packages (isal).
REGISTRY_PROBE = """
import http.client, os, sys
sys.path[1:1] = [sys.argv[1], sys.argv[2]]
from dockyard.cli.main import main
def request_sent(self, *args, **kwargs):
    print(" ".join(sorted(sys.modules)), flush=True)
    os._exit(0)
http.client.HTTPConnection.request = request_sent
sys.exit(main(["--root", *sys.argv[3:]]))
"""


def test_run_detached_imports_nothing_heavy_before_its_request(tmp_path):
    # -S as the installed launcher runs (scripts/install.sh): site would import what it likes.
    out = subprocess.run([sys.executable, "-S", "-c", PROBE, REPO, str(tmp_path / "root")],
                         capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "dockyard.cli.run_flags" in loaded  # (the probe did get as far as the request)
    assert loaded & HEAVY == set()


def registry_command_imports(root: str, *words: str, stdin: str = "") -> set[str]:
    # Not the host's config.json: it may name a credential helper, which is rightly run through subprocess.
    env = {**os.environ, "DOCKER_CONFIG": f"{root}/docker-config"}
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run([sys.executable, "-S", "-c", REGISTRY_PROBE, REPO, site_packages, root, *words],
                            input=stdin, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and result.stdout, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize("words", [("pull", "127.0.0.1:1/me/busybox:1"),
                                   ("login", "-u", "me", "--password-stdin", "127.0.0.1:1")])
def test_pull_and_login_import_nothing_heavy_before_their_first_request(tmp_path, words):
    loaded = registry_command_imports(str(tmp_path / "root"), *words, stdin="secret\n")
    assert "dockyard.registry.client.http" in loaded  # (the probe did get as far as the request)
    assert sorted(loaded & REGISTRY_HEAVY) == []


def test_push_imports_nothing_heavy_before_its_first_request(dy, busybox):
    dy("tag", busybox, "127.0.0.1:1/me/busybox:1")
    loaded = registry_command_imports(str(dy.root), "push", "127.0.0.1:1/me/busybox:1")
    assert "dockyard.registry.client.http" in loaded  # (the probe did get as far as the request)
    assert sorted(loaded & REGISTRY_HEAVY) == []

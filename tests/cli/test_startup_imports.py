"""`run -d` is a short-lived process whose start-up is most of its own time: what it imports before it sends
its request to the monitor is kept to the C-level essentials. Each module named here costs a command about
1 ms or more (collections, pulled in by functools, array and collections.abc, alone ~2 ms)."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = {"collections", "functools", "array", "importlib", "json", "re", "socket", "subprocess", "threading",
         "enum", "typing", "argparse", "dataclasses"}

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


def test_run_detached_imports_nothing_heavy_before_its_request(tmp_path):
    # -S as the installed launcher runs (scripts/install.sh): site would import what it likes.
    out = subprocess.run([sys.executable, "-S", "-c", PROBE, REPO, str(tmp_path / "root")],
                         capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "dockyard.cli.run_flags" in loaded  # (the probe did get as far as the request)
    assert loaded & HEAVY == set()

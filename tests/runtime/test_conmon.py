"""Another engine's monitor drives our runtime: podman's conmon with `-r dockyard-runtime`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Bundles, default_spec, new_id

REPO = Path(__file__).resolve().parents[2]
CONMON = shutil.which("conmon")


@pytest.mark.skipif(CONMON is None, reason="conmon is not installed")
def test_conmon_runs_a_container_with_our_runtime(bundles: Bundles, tmp_path: Path) -> None:
    wrapper = tmp_path / "dockyard-runtime"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m dockyard.runtime \"$@\"\n")
    wrapper.chmod(0o755)
    bundle = bundles.make(default_spec(["sh", "-c", "echo hello from conmon; exit 5"]))
    cid = new_id()
    state, exits, sockets = tmp_path / "state", tmp_path / "exits", tmp_path / "sock"
    exits.mkdir()
    sockets.mkdir()
    log = tmp_path / "ctr.log"
    subprocess.run(
        [CONMON, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid, "-r", str(wrapper), "-b", str(bundle),
         "-p", str(tmp_path / "pid"), "-P", str(tmp_path / "conmon.pid"), "-l", f"k8s-file:{log}",
         "--exit-dir", str(exits), "--socket-dir-path", str(sockets), "--runtime-arg", f"--root={state}",
         "--syslog=false"],
        check=True, timeout=60, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not (tmp_path / "pid").exists():  # conmon returns before its child has run `create`
        assert time.monotonic() < deadline, "conmon did not create the container"
        time.sleep(0.05)
    runtime = [str(wrapper), "--root", str(state)]
    try:
        assert int((tmp_path / "pid").read_text()) > 0
        subprocess.run([*runtime, "start", cid], check=True, timeout=60)
        deadline = time.monotonic() + 20
        while not (exits / cid).exists():
            assert time.monotonic() < deadline, "conmon wrote no exit file"
            time.sleep(0.05)
        assert (exits / cid).read_text().strip() == "5"
        assert "stdout F hello from conmon" in log.read_text()
    finally:
        subprocess.run([*runtime, "delete", "--force", cid], timeout=60, check=False)
    assert not os.path.exists(state / cid)

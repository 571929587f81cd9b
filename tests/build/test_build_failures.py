"""Bad input and failures: errors name the Dockerfile line; a failed or killed build leaves nothing behind
(no image, container, mount, runtime state, cgroup or active snapshot)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.build.imagefs import db_rows, mounts_under, snapshot_dirs
from tests.conftest import REPO, store_listing


def _leftovers(root: Path, container: str | None = None) -> dict:
    found = {
        "active snapshots": db_rows(root, "SELECT key FROM snapshots WHERE kind = 'active'"),
        "leases": db_rows(root, "SELECT id FROM leases"),
        "mounts": mounts_under(root),
        "build dirs": [d for d in os.listdir(root / "run" / "build") if d != "seccomp"]
        if (root / "run" / "build").exists() else [],
        "tmp": [d for d in os.listdir(root / "tmp") if d.startswith("build-")],
        "orphan snapshot dirs": sorted(set(snapshot_dirs(root)) - {
            str(r[0]) for r in db_rows(root, "SELECT id FROM snapshots")}),
    }
    if container:
        found["cgroups"] = glob.glob(f"/sys/fs/cgroup/*/dockyard-build/{container}") + glob.glob(
            f"/sys/fs/cgroup/dockyard-build/{container}")
        found["runtime"] = glob.glob(str(root / "run" / "build" / "*" / "runtime" / container))
    return {k: v for k, v in found.items() if v}


def test_malformed_dockerfile_names_the_line_and_builds_nothing(context, build, dy):
    before = store_listing(dy.root)
    code, out, err = build(context("FROM busybox:latest\nRUN echo ok\nFORM oops\n"), "-t", "bad:1", check=False)
    assert code != 0
    assert "Dockerfile:3" in err and "unknown instruction" in err.lower()
    assert "Running in" not in out  # parsed before anything ran
    assert store_listing(dy.root) == before


def test_errors_inside_a_step_name_their_instruction(context, build):
    code, _, err = build(context("FROM busybox:latest\nCOPY --chown=nosuchuser Dockerfile /x\n"), check=False)
    assert code != 0 and "Dockerfile:2" in err and "nosuchuser" in err
    code, _, err = build(context("FROM busybox:latest\nUSER nosuchuser\nRUN true\n"), check=False)
    assert code != 0 and "Dockerfile:3" in err and "nosuchuser" in err


def test_failing_run_stops_with_its_exit_code_and_leaves_nothing(context, build, dy):
    ctx = context("FROM busybox:latest\nRUN echo to stdout; echo to stderr >&2; exit 7\nRUN echo never\n")
    before = store_listing(dy.root)
    code, out, err = build(ctx, "-t", "fails:1", check=False)
    assert code == 7
    assert "to stdout" in out and "to stderr" in out and "never" not in out
    assert "returned a non-zero code: 7" in err
    container = out.split("Running in ", 1)[1].split()[0]
    assert _leftovers(dy.root, container) == {}
    assert "fails" not in dy.out("images")
    assert dy.out("ps", "-aq") == ""
    assert store_listing(dy.root) == before


def test_quiet_failure_still_shows_the_output(context, build):
    code, out, err = build(context("FROM busybox:latest\nRUN echo diagnostic; false\n"), "-q", check=False)
    assert code == 1 and out == "" and "diagnostic" in err


def test_sigkill_midway_leaves_the_store_consistent(context, build, dy):
    ctx = context("FROM busybox:latest\nRUN echo first > /first\nRUN echo started; sleep 317\n")
    cmd = [sys.executable, "-m", "dockyard", "--root", str(dy.root), "build", "-t", "killed:1", str(ctx)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    seen = b""
    deadline = time.monotonic() + 60
    while b"\nstarted\n" not in seen and time.monotonic() < deadline:  # the command's output, not its step line
        seen += proc.stdout.read1(4096)  # type: ignore[union-attr]
    assert b"\nstarted\n" in seen
    container = seen.decode().rsplit("Running in ", 1)[1].split()[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]
    # the RUN container died with the build (its pid namespace went with its init)
    for _ in range(100):
        if not _sleepers():
            break
        time.sleep(0.05)
    assert not _sleepers()
    # the next build recovers: the dead lease, active snapshot, runtime state and cgroups go
    build(context("FROM busybox:latest\nRUN true\n"), "-t", "after:1")
    assert _leftovers(dy.root, container) == {}
    assert "killed" not in dy.out("images")
    # what the killed build finished is in the cache and reused
    _, out, _ = build(context("FROM busybox:latest\nRUN echo first > /first\n"), "-t", "again:1")
    assert "CACHED" in out


def _sleepers() -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == b"sleep\x00317\x00":
                        found.append(int(pid))
            except OSError:
                pass
    return found


def test_a_kill_at_any_moment_leaves_no_cgroup_or_state(context, build, dy):
    """Killed at varying points (before, during and after its RUN container is made), a build leaves nothing
    that the next build does not clean up."""
    ctx = context("FROM busybox:latest\nRUN sleep 318\n")
    cmd = [sys.executable, "-m", "dockyard", "--root", str(dy.root), "build", "--no-cache", str(ctx)]
    names = []
    for delay in (0.3, 0.4, 0.5, 0.6, 0.8):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0].decode()
        if "Running in " in out:
            names.append(out.rsplit("Running in ", 1)[1].split()[0])
    build(context("FROM busybox:latest\n"), "-t", "after:1")
    for name in names:
        assert _leftovers(dy.root, name) == {}

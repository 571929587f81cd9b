"""`python -m dockyard.runtime`, driven the way runc is: separate create/start/state/kill/delete processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Bundles, default_spec, new_id, python_cli

REPO = Path(__file__).resolve().parents[2]


def cli(root: Path, *args: str, check: bool = True, detached: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run the command; detached=True when it leaves a container behind that would hold our pipes open."""
    if detached:
        kw.update(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
    result = subprocess.run([*python_cli(), "--root", str(root), *args], cwd=REPO, timeout=60, check=False, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} -> {result.returncode}\n{result.stdout!r}\n{result.stderr!r}")
    return result


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "cli-state"


def test_create_start_state_kill_delete(bundles: Bundles, root: Path, tmp_path: Path) -> None:
    cid = new_id()
    bundle = bundles.make(default_spec(["sleep", "1000"]))
    pid_file = tmp_path / "pid"
    cli(root, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid, detached=True)
    pid = int(pid_file.read_text())
    state = json.loads(cli(root, "state", cid).stdout)
    assert state["status"] == "created" and state["pid"] == pid and state["bundle"] == str(bundle)
    cli(root, "start", cid)
    assert json.loads(cli(root, "state", cid).stdout)["status"] == "running"
    assert str(pid) in cli(root, "ps", cid).stdout.decode()
    listed = json.loads(cli(root, "list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [cid]
    refused = cli(root, "delete", cid, check=False)
    assert refused.returncode == 1 and b"not stopped" in refused.stderr
    cli(root, "kill", cid, "KILL")
    deadline = time.monotonic() + 5
    while json.loads(cli(root, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cli(root, "delete", cid)
    missing = cli(root, "state", cid, check=False)
    assert missing.returncode == 1 and b"does not exist" in missing.stderr


def test_run_exit_code_and_output(bundles: Bundles, root: Path) -> None:
    bundle = bundles.make(default_spec(["sh", "-c", "echo hello; exit 3"]))
    result = cli(root, "run", "--bundle", str(bundle), new_id(), check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 3 and result.stdout == b"hello\n"
    assert not os.listdir(root) or os.listdir(root) == [".seccomp"]


def test_exec_and_delete_force(bundles: Bundles, root: Path) -> None:
    cid = new_id()
    bundle = bundles.make(default_spec(["sleep", "1000"], hostname="cli-host", env=["A=1"]))
    cli(root, "run", "-d", "--bundle", str(bundle), cid, detached=True)
    try:
        out = cli(root, "exec", "-e", "B=2", cid, "sh", "-c", "echo $(hostname) $A $B; exit 4", check=False)
        assert out.returncode == 4 and out.stdout == b"cli-host 1 2\n"
        proc = {"args": ["id", "-u"], "cwd": "/", "user": {"uid": 65534, "gid": 65534}, "env": ["PATH=/bin"]}
        p = bundle / "process.json"
        p.write_text(json.dumps(proc))
        assert cli(root, "exec", "--process", str(p), cid).stdout == b"65534\n"
    finally:
        cli(root, "delete", "--force", cid)
    assert cli(root, "list", "-q").stdout == b""


def test_errors_go_to_json_log(bundles: Bundles, root: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    bundle = bundles.make(default_spec(["no-such-binary"]))
    result = cli(root.parent / "r2", "--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle),
                 new_id(), check=False)
    assert result.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "executable file not found" in entry["msg"]


def test_kill_signal_names_and_features(bundles: Bundles, root: Path) -> None:
    from dockyard.runtime.cli import parse_signal

    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal("15") == signal.SIGTERM
    features = json.loads(cli(root, "features").stdout)
    assert "mount" in features["linux"]["namespaces"]
    assert b"version" in cli(root, "--version").stdout
    assert cli(root, "bogus-flag-only", "--nope", check=False).returncode == 1

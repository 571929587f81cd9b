"""The OCI operations end to end: states, kill, delete, exec, and what is left behind (nothing)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from dockyard.errors import Conflict, NotFound
from dockyard.runtime import container
from dockyard.runtime.errors import CommandNotFound

from .conftest import Bundles, default_spec, new_id


def host_snapshot(cid: str, rootfs: str) -> dict[str, int]:
    """Mounts, cgroup dirs and processes on the host that could belong to a container.

    Only mounts naming the rootfs or the id are counted: other suites mount and unmount on this machine too.
    """
    with open("/proc/self/mountinfo") as f:
        mounts = sum(1 for line in f if rootfs in line or cid in line)
    cgroup_dirs = 0
    for base, dirs, _files in os.walk("/sys/fs/cgroup"):
        cgroup_dirs += sum(1 for d in dirs if d.startswith(cid))
    procs = len(os.listdir("/proc"))
    return {"mounts": mounts, "cgroups": cgroup_dirs, "procs_approx": procs}


def wait_status(cid: str, state_root: str, want: str, timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = container.get_state(cid, state_root)
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.01)


def wait_for_pids(cgroup_dirs: dict[str, str], count: int, timeout: float = 10) -> list[int]:
    """The container's processes, once `count` of them are up (the machine may be busy)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = container.cgroups.pids(cgroup_dirs)
        if len(pids) >= count or time.monotonic() > deadline:
            return pids
        time.sleep(0.01)


@pytest.fixture
def sleeper(bundles: Bundles, state_root: str):
    """A created container running `sleep` once started; deleted afterwards whatever happened."""
    made: list[str] = []

    def make(args: list[str] | None = None, **options) -> tuple[str, int]:
        cid = new_id()
        bundle = bundles.make(default_spec(args or ["sleep", "1000"], **options))
        with open(os.devnull, "r+b") as null:
            pid = container.create(cid, str(bundle), state_root, stdio=(null.fileno(),) * 3)
        made.append(cid)
        return cid, pid

    yield make
    for cid in made:
        try:
            container.delete(cid, state_root, force=True)
        except NotFound:
            pass


def test_states_created_running_stopped(sleeper, state_root: str) -> None:
    cid, pid = sleeper()
    st = container.get_state(cid, state_root)
    assert st["status"] == "created" and st["pid"] == pid and st["id"] == cid and st["ociVersion"]
    container.start(cid, state_root)
    assert container.get_state(cid, state_root)["status"] == "running"
    with pytest.raises(Conflict):
        container.start(cid, state_root)
    with pytest.raises(Conflict):
        container.delete(cid, state_root)
    container.kill(cid, state_root, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert container.get_state(cid, state_root)["status"] == "stopped"
    with pytest.raises(Conflict):
        container.kill(cid, state_root, signal.SIGTERM)
    container.delete(cid, state_root)
    with pytest.raises(NotFound):
        container.get_state(cid, state_root)


def test_duplicate_id_conflicts(sleeper, bundles: Bundles, state_root: str) -> None:
    cid, _ = sleeper()
    with pytest.raises(Conflict):
        container.create(cid, str(bundles.make(default_spec(["true"]))), state_root)


def test_delete_leaves_nothing_behind(bundles: Bundles, rootfs: Path, state_root: str) -> None:
    cid = new_id()
    before = host_snapshot(cid, str(rootfs))
    bundle = bundles.make(default_spec(["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"],
                                       memory=32 << 20, pids_limit=20))
    with open(os.devnull, "r+b") as null:
        pid = container.create(cid, str(bundle), state_root, stdio=(null.fileno(),) * 3)
    container.start(cid, state_root)
    during = host_snapshot(cid, str(rootfs))
    assert during["cgroups"] >= 1
    record_cgroups = container.state.read_record(state_root, cid).cgroups
    assert len(wait_for_pids(record_cgroups, 3)) == 3
    container.delete(cid, state_root, force=True)
    os.waitpid(pid, 0)
    after = host_snapshot(cid, str(rootfs))
    assert after["mounts"] == before["mounts"]
    assert after["cgroups"] == 0
    assert not os.path.exists(os.path.join(state_root, cid))
    for d in record_cgroups.values():
        assert not os.path.exists(d)


def test_processes_die_with_pid_namespace(sleeper, state_root: str) -> None:
    cid, pid = sleeper(["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"])
    container.start(cid, state_root)
    record = container.state.read_record(state_root, cid)
    children = [p for p in wait_for_pids(record.cgroups, 3) if p != pid]
    assert len(children) == 2
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 5
    while any(container.state.process_state_letter(p) not in (None, "Z", "X") for p in children):
        assert time.monotonic() < deadline, "children outlived the container's init"
        time.sleep(0.01)


def test_kill_all_reaches_every_process(sleeper, state_root: str) -> None:
    cid, pid = sleeper(["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait"])
    container.start(cid, state_root)
    wait_for_pids(container.state.read_record(state_root, cid).cgroups, 3)
    container.kill(cid, state_root, signal.SIGKILL, all=True)
    os.waitpid(pid, 0)
    assert container.get_state(cid, state_root)["status"] == "stopped"


def test_exec_joins_namespaces_and_cgroup(sleeper, state_root: str, tmp_path: Path) -> None:
    cid, pid = sleeper(hostname="exec-host")
    container.start(cid, state_root)
    out = tmp_path / "exec.out"
    proc = container.exec_defaults(cid, state_root, ["sh", "-c", "hostname; cat /proc/self/cgroup | grep pids; "
                                                     "readlink /proc/1/exe; ls /proc | grep -c '^[0-9]'"])
    with open(out, "wb") as f, open(os.devnull, "rb") as null:
        epid = container.exec_process(cid, state_root, proc, stdio=(null.fileno(), f.fileno(), f.fileno()))
    _, status = os.waitpid(epid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = out.read_text().split("\n")
    assert lines[0] == "exec-host"
    assert lines[1].endswith("/" + cid)
    assert lines[2] == "/bin/busybox"  # the container's own binary, never the host's python
    assert int(lines[3]) >= 2  # pid 1 and the exec'd shell, in the container's pid namespace


def test_exec_missing_command(sleeper, state_root: str) -> None:
    cid, _ = sleeper()
    container.start(cid, state_root)
    proc = container.exec_defaults(cid, state_root, ["no-such-command"])
    with pytest.raises(CommandNotFound):
        container.exec_process(cid, state_root, proc)


def test_exec_does_not_keep_container_alive(sleeper, state_root: str) -> None:
    cid, pid = sleeper()
    container.start(cid, state_root)
    with open(os.devnull, "r+b") as null:
        epid = container.exec_process(cid, state_root, container.exec_defaults(cid, state_root, ["sleep", "1000"]),
                                      stdio=(null.fileno(),) * 3)
    os.kill(pid, signal.SIGKILL)
    # The exec'd process is our child too: the dying init waits for it to be reaped, so reap it first.
    _, status = os.waitpid(epid, 0)
    assert os.WIFSIGNALED(status)
    os.waitpid(pid, 0)


def test_create_failure_leaves_nothing(bundles: Bundles, rootfs: Path, state_root: str) -> None:
    cid = new_id()
    before = host_snapshot(cid, str(rootfs))
    with pytest.raises(CommandNotFound):
        container.create(cid, str(bundles.make(default_spec(["/no/such/binary"]))), state_root)
    after = host_snapshot(cid, str(rootfs))
    assert after["cgroups"] == 0 and after["mounts"] == before["mounts"]
    assert not os.path.exists(os.path.join(state_root, cid))


def test_terminal_over_console_socket(bundles: Bundles, state_root: str, tmp_path: Path) -> None:
    sock_path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    cid = new_id()
    spec = default_spec(["sh", "-c", "tty; stty size; echo term-ok"], terminal=True)
    spec["process"]["consoleSize"] = {"height": 33, "width": 111}
    bundle = bundles.make(spec)
    pid = container.create(cid, str(bundle), state_root, console_socket=sock_path)
    try:
        conn, _ = listener.accept()
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        master = fds[0]
        container.start(cid, state_root)
        data = b""
        while b"term-ok" not in data:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.waitpid(pid, 0)
        assert b"/dev/pts/0" in data and b"term-ok" in data and b"33 111" in data
    finally:
        container.delete(cid, state_root, force=True)
        listener.close()


def test_joins_existing_network_namespace(bundles: Bundles, state_root: str, sleeper, tmp_path: Path) -> None:
    cid1, pid1 = sleeper()
    container.start(cid1, state_root)
    netns = f"/proc/{pid1}/ns/net"
    spec = default_spec(["readlink", "/proc/self/ns/net"], namespaces={"network": netns})
    out = tmp_path / "ns.out"
    cid2 = new_id()
    with open(out, "wb") as f:
        pid2 = container.create(cid2, str(bundles.make(spec)), state_root, stdio=(0, f.fileno(), f.fileno()))
        container.start(cid2, state_root)
        os.waitpid(pid2, 0)
    container.delete(cid2, state_root)
    assert out.read_text().strip() == os.readlink(netns)


def test_pid_file_and_list(sleeper, state_root: str, bundles: Bundles, tmp_path: Path) -> None:
    cid = new_id()
    pid_file = tmp_path / "pid"
    with open(os.devnull, "r+b") as null:
        pid = container.create(cid, str(bundles.make(default_spec(["true"]))), state_root,
                               stdio=(null.fileno(),) * 3, pid_file=str(pid_file))
    try:
        assert int(pid_file.read_text()) == pid
        assert cid in [c["id"] for c in container.list_containers(state_root)]
    finally:
        container.delete(cid, state_root, force=True)
        os.waitpid(pid, 0)


def test_pause_resume(sleeper, state_root: str) -> None:
    cid, pid = sleeper(["sh", "-c", "while true; do sleep 0.01; done"])
    container.start(cid, state_root)
    container.pause(cid, state_root)
    assert container.get_state(cid, state_root)["status"] == "paused"
    with open(f"/proc/{pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] in ("S", "D")  # frozen tasks sleep in the freezer
    with pytest.raises(Conflict):
        container.exec_process(cid, state_root, container.exec_defaults(cid, state_root, ["true"]))
    container.resume(cid, state_root)
    assert container.get_state(cid, state_root)["status"] == "running"
    container.pause(cid, state_root)
    container.delete(cid, state_root, force=True)  # a paused container can still be force-deleted
    os.waitpid(pid, 0)


def test_hooks_run_at_their_points(bundles: Bundles, rootfs: Path, state_root: str, tmp_path: Path) -> None:
    import json

    log = tmp_path / "hooks.log"
    marker = f"started-{new_id()}"

    def host_hook(kind: str) -> dict:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"(echo {kind}; cat; echo) >> {log}"]}

    spec = default_spec(["true"])
    spec["hooks"] = {
        "prestart": [host_hook("prestart")], "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")], "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")],
        # resolved and run inside the container: leaves a file in its /tmp
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > /tmp/{marker}"]}],
    }
    cid = new_id()
    with open(os.devnull, "r+b") as null:
        pid = container.create(cid, str(bundles.make(spec)), state_root, stdio=(null.fileno(),) * 3)
    container.start(cid, state_root)
    os.waitpid(pid, 0)
    container.delete(cid, state_root)
    lines = log.read_text().strip().split("\n")
    entries = list(zip(lines[0::2], lines[1::2]))
    kinds = [k for k, _ in entries]
    assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = {k: json.loads(v) for k, v in entries}
    assert states["createRuntime"]["pid"] == pid and states["createRuntime"]["status"] == "creating"
    assert states["poststop"]["status"] == "stopped" and states["poststop"]["id"] == cid
    inside = rootfs / "tmp" / marker
    assert json.loads(inside.read_text())["id"] == cid
    inside.unlink()


def test_failing_create_hook_aborts(bundles: Bundles, state_root: str) -> None:
    from dockyard.errors import HostError

    spec = default_spec(["true"])
    spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    cid = new_id()
    with pytest.raises(HostError, match="hook /bin/false failed"):
        container.create(cid, str(bundles.make(spec)), state_root)
    assert not os.path.exists(os.path.join(state_root, cid))
    assert host_snapshot(cid, "/nonexistent")["cgroups"] == 0


def test_meanwhile_runs_during_setup_and_its_failure_aborts(bundles: Bundles, state_root: str) -> None:
    """create(meanwhile=f) calls f once the init exists, before it has reported (the monitor plumbs the
    network then); if f raises, the init is killed and create fails with f's error, leaving nothing."""
    seen = []
    cid = new_id()

    def meanwhile() -> None:
        seen.append(os.path.exists(os.path.join(state_root, cid, "state.json")))
    pid = container.create(cid, str(bundles.make(default_spec(["true"]))), state_root, meanwhile=meanwhile)
    try:
        assert seen == [False]  # called once, before create recorded the container: while it was set up
        assert container.get_state(cid, state_root)["status"] == "created"
    finally:
        container.delete(cid, state_root, force=True)
        os.waitpid(pid, 0)

    class Boom(Exception):
        pass

    def failing() -> None:
        raise Boom("no network today")
    cid = new_id()
    with pytest.raises(Boom):
        container.create(cid, str(bundles.make(default_spec(["true"]))), state_root, meanwhile=failing)
    assert not os.path.exists(os.path.join(state_root, cid))
    assert host_snapshot(cid, "/nonexistent")["cgroups"] == 0


@pytest.mark.parametrize("threaded", [False, True], ids=["clone3-into-cgroup", "fork-then-join"])
def test_cgroup_membership_both_fork_paths(threaded: bool, bundles: Bundles, state_root: str,
                                           tmp_path: Path) -> None:
    """Single-threaded callers fork straight into the v2 cgroup; threaded ones fork and join: same result."""
    import threading

    from dockyard.runtime import syscalls

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait) if threaded else None
    if helper:
        helper.start()
    try:
        assert syscalls.single_threaded() is not threaded
        out = tmp_path / "cg"
        cid = new_id()
        with open(out, "wb") as f:
            pid = container.create(cid, str(bundles.make(default_spec(["cat", "/proc/self/cgroup"]))), state_root,
                                   stdio=(0, f.fileno(), f.fileno()))
            container.start(cid, state_root)
            os.waitpid(pid, 0)
        container.delete(cid, state_root)
    finally:
        stop.set()
        if helper:
            helper.join()
    lines = out.read_text().split()
    assert lines and all(line.endswith("/" + cid) for line in lines), lines


def test_exec_with_terminal(sleeper, state_root: str, tmp_path: Path) -> None:
    cid, _ = sleeper()
    container.start(cid, state_root)
    sock_path = str(tmp_path / "exec-console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    try:
        proc = container.exec_defaults(cid, state_root, ["sh", "-c", "tty; echo exec-term-ok"], terminal=True)
        epid = container.exec_process(cid, state_root, proc, console_socket=sock_path)
        conn, _ = listener.accept()
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        data = b""
        while b"exec-term-ok" not in data:
            try:
                chunk = os.read(fds[0], 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.waitpid(epid, 0)
        assert b"/dev/pts/" in data and b"exec-term-ok" in data
    finally:
        listener.close()


def test_preserve_fds(bundles: Bundles, state_root: str, tmp_path: Path) -> None:
    """preserve_fds=N hands the caller's fds 3..3+N-1 to the container, and nothing above."""
    r, w = os.pipe()
    saved3 = os.dup(3)  # whatever the test runner keeps on fd 3, put back afterwards
    os.dup2(w, 3)
    os.close(w)
    high = os.dup2(os.open(os.devnull, os.O_RDONLY), 200)  # inheritable, yet not ours to hand over
    out = tmp_path / "fds"
    cid = new_id()
    try:
        spec = default_spec(["sh", "-c", "echo via-fd3 >&3; ls /proc/self/fd"])
        with open(out, "wb") as f:
            pid = container.create(cid, str(bundles.make(spec)), state_root, stdio=(0, f.fileno(), f.fileno()),
                                   preserve_fds=1)
            container.start(cid, state_root)
            os.waitpid(pid, 0)
        container.delete(cid, state_root)
    finally:
        os.dup2(saved3, 3)
        os.close(saved3)
        os.close(high)
    assert os.read(r, 100) == b"via-fd3\n"
    os.close(r)
    assert "200" not in out.read_text().split()

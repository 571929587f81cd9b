"""Containers end to end, as a user drives them: lifetime, exit codes, exec, logs, stop/start, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import CLI, cli_env


def state(dy: CLI, name: str) -> dict:
    return json.loads(dy.out("inspect", "-f", "{{json .State}}", name))


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def unique_sleep() -> str:
    """A sleep duration no other test on this machine uses, to find (or miss) exactly our process."""
    return str(100000 + int.from_bytes(os.urandom(3), "big"))


def running_sleep(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", f"^sleep {marker}$"], capture_output=True).stdout != b""


def mounts(under: str = "/") -> list[str]:
    """Mount points under a directory (other test suites may mount and unmount elsewhere meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        return [p for p in (line.split()[4] for line in f) if p.startswith(under)]


def cgroups(container_id: str) -> list[str]:
    found = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", hierarchy, "dockyard", container_id)
        if os.path.exists(path):
            found.append(path)
    return found


def test_run_output_and_exit_codes(dy, busybox):
    result = dy("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert result.returncode == 3
    assert result.stdout == b"out\n" and result.stderr == b"err\n"
    assert dy("run", "--rm", "busybox", "true").returncode == 0
    missing = dy("run", "--rm", "busybox", "nope", check=False)
    assert missing.returncode == 127 and b'exec: "nope": executable file not found in $PATH' in missing.stderr
    denied = dy("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert denied.returncode == 126 and b"permission denied" in denied.stderr
    assert dy("run", "--rm", "nosuchimage", "true", check=False).returncode == 125
    assert dy.out("ps", "-aq") == ""  # --rm removed them all, even the ones that failed to start


def test_container_lives_exactly_as_long_as_pid1(dy, busybox):
    # The background sleep would keep running forever; it dies with PID 1.
    marker = unique_sleep()
    start = time.monotonic()
    dy("run", "--name", "short", "busybox", "sh", "-c", f"sleep {marker} & sleep 0.5; exit 7", check=False)
    assert time.monotonic() - start < 10
    assert state(dy, "short")["ExitCode"] == 7
    assert not running_sleep(marker)


def test_exec_does_not_keep_a_container_alive(dy, busybox):
    dy("run", "-d", "--name", "cc", "busybox", "sleep", "2")
    exec_proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), "exec", "cc",
                                  "sleep", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: not state(dy, "cc")["Running"], timeout=15)
    exec_proc.wait(timeout=10)
    assert state(dy, "cc")["ExitCode"] == 0


def test_detached_logs_stop_start_keeps_writable_layer(dy, busybox):
    cid = dy.out("run", "-d", "--name", "web", "busybox", "sh", "-c",
                 "echo started; [ -f /data.txt ] && cat /data.txt; echo kept > /data.txt; sleep 1000").strip()
    assert len(cid) == 64
    assert wait_for(lambda: "started" in dy.out("logs", "web"))
    assert state(dy, "web")["Running"]
    dy("stop", "-t", "1", "web")
    s = state(dy, "web")
    assert not s["Running"] and s["ExitCode"] == 137  # sleep as PID 1 ignores SIGTERM
    dy("start", "web")
    assert wait_for(lambda: "kept" in dy.out("logs", "web"))  # the file written before the stop is still there
    logs = dy.out("logs", "web").splitlines()
    assert logs == ["started", "started", "kept"]
    dy("rm", "-f", "web")
    assert dy.out("ps", "-aq") == ""


def test_nothing_left_after_rm(dy, busybox):
    before_mounts = mounts(str(dy.root))
    marker = unique_sleep()
    cid = dy.out("run", "-d", "busybox", "sleep", marker).strip()
    assert cgroups(cid), "the container has cgroups while it runs"
    assert len(mounts(str(dy.root))) > len(before_mounts)
    dy("rm", "-f", cid)
    assert cgroups(cid) == []
    assert mounts(str(dy.root)) == before_mounts
    assert not any(cid in m for m in mounts())
    assert not (dy.root / "containers" / cid).exists()
    assert not (dy.root / "run" / "containers" / cid).exists()
    assert not running_sleep(marker)
    snapshots = json.loads(dy.out("inspect", "-f", "{{json .RootFS}}", "busybox"))
    assert snapshots["Layers"]  # the image is untouched


def test_exec_variants(dy, busybox):
    dy("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    assert dy.out("exec", "box", "echo", "hi") == "hi\n"
    assert dy("exec", "box", "sh", "-c", "exit 4", check=False).returncode == 4
    assert dy.out("exec", "-e", "X=1", "-w", "/tmp", "box", "sh", "-c", "echo $X $(pwd)") == "1 /tmp\n"
    assert dy.out("exec", "-u", "nobody", "box", "id", "-u") == "65534\n"
    assert dy.out("exec", "-i", "box", "cat", input=b"through stdin\n") == "through stdin\n"
    assert dy("exec", "box", "nope", check=False).returncode == 126
    dy("exec", "-d", "box", "sh", "-c", "echo bg > /bg.txt")
    assert wait_for(lambda: dy.out("exec", "box", "cat", "/bg.txt") == "bg\n")
    dy("stop", "-t", "0", "box")
    stopped = dy("exec", "box", "true", check=False)
    assert stopped.returncode == 1 and b"is not running" in stopped.stderr


def test_run_stdin_and_signals(dy, busybox):
    result = dy("run", "-i", "--rm", "busybox", "sh", input=b"echo from stdin\nexit 5\n", check=False)
    assert result.returncode == 5 and result.stdout == b"from stdin\n"
    # A foreground run forwards SIGTERM to the container (a shell that traps it exits 143 here).
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), "run", "--rm", "busybox",
                             "sh", "-c", "trap 'echo got TERM; exit 143' TERM; echo ready; while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    assert proc.stdout.read() == b"got TERM\n"


def test_kill_and_sigkill_of_pid1(dy, busybox):
    dy("run", "-d", "--name", "kk", "busybox", "sleep", "1000")
    dy("kill", "-s", "TERM", "kk")  # sleep as PID 1 has no handler: TERM is ignored, as in Docker
    time.sleep(0.3)
    assert state(dy, "kk")["Running"]
    pid = state(dy, "kk")["Pid"]
    os.kill(pid, signal.SIGKILL)  # from the host, behind dockyard's back
    assert wait_for(lambda: not state(dy, "kk")["Running"])
    assert state(dy, "kk")["ExitCode"] == 137
    assert "Exited (137)" in dy.out("ps", "-a", "--format", "{{.Status}}")


def test_an_exit_is_the_monitor_s_to_record(dy, busybox):
    """A command that looks while the monitor has not reaped an exited PID 1 yet leaves the record alone:
    the monitor then records the real exit (it used to be overwritten as "the monitor stopped", code 137)."""
    dy("run", "-d", "--name", "zz", "busybox", "sh", "-c", "trap 'exit 3' TERM; sleep 1000 & wait")
    pid = state(dy, "zz")["Pid"]
    monitor_pid = int((dy.root / "run" / "monitor.lock").read_text())
    os.kill(monitor_pid, signal.SIGSTOP)  # so PID 1 stays a zombie, not reaped, after it exits
    try:
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: open(f"/proc/{pid}/stat").read().split()[2] == "Z")
        assert state(dy, "zz")["Running"]  # not yet known to have exited: not written as a guess
    finally:
        os.kill(monitor_pid, signal.SIGCONT)
    assert wait_for(lambda: not state(dy, "zz")["Running"])
    s = state(dy, "zz")
    assert s["ExitCode"] == 3 and s["Error"] == ""


def test_killed_monitor_leaves_ps_truthful(dy, busybox):
    dy("run", "-d", "--name", "mm", "busybox", "sleep", "1000")
    container_pid = state(dy, "mm")["Pid"]
    monitor_pid = int((dy.root / "run" / "monitor.lock").read_text())
    os.kill(monitor_pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{container_pid}") or
             open(f"/proc/{container_pid}/stat").read().split()[2] == "Z", timeout=10)
    s = state(dy, "mm")
    assert not s["Running"] and s["ExitCode"] == 137 and "monitor" in s["Error"]
    assert "Exited (137)" in dy.out("ps", "-a", "--format", "{{.Status}}")
    # The next monitor cleans up what the dead one left, and containers run again.
    assert dy("run", "--rm", "busybox", "true").returncode == 0
    dy("rm", "mm")


def test_killed_cli_leaves_container_running(dy, busybox):
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), "run", "--name", "fg",
                             "busybox", "sh", "-c", "echo up; sleep 1000"], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait()
    assert state(dy, "fg")["Running"]
    assert "Up " in dy.out("ps", "--format", "{{.Status}}")


def test_restart_policies(dy, busybox):
    dy("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1")
    wait_for(lambda: json.loads(dy.out("inspect", "-f", "{{json .}}", "flaky"))["RestartCount"] == 2
             and not state(dy, "flaky")["Running"] and not state(dy, "flaky")["Restarting"], timeout=20)
    time.sleep(1)
    assert json.loads(dy.out("inspect", "-f", "{{.RestartCount}}", "flaky")) == 2
    dy("run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2")
    wait_for(lambda: int(dy.out("inspect", "-f", "{{.RestartCount}}", "always")) >= 2, timeout=20)
    dy("stop", "-t", "1", "always")
    count = int(dy.out("inspect", "-f", "{{.RestartCount}}", "always"))
    time.sleep(1.5)
    assert int(dy.out("inspect", "-f", "{{.RestartCount}}", "always")) == count  # stop means stop
    assert not state(dy, "always")["Running"]
    bad = dy("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert bad.returncode == 125 and b"Conflicting options: --restart and --rm" in bad.stderr


def test_names_and_conflicts(dy, busybox):
    cid = dy.out("create", "--name", "taken", "busybox", "true").strip()
    result = dy("create", "--name", "taken", "busybox", "true", check=False)
    assert result.returncode == 125
    assert (f'Conflict. The container name "/taken" is already in use by container "{cid}". You have to remove '
            f"(or rename) that container to be able to reuse that name.").encode() in result.stderr
    assert dy("create", "--name", "bad name!", "busybox", "true", check=False).returncode == 125
    dy("rename", "taken", "renamed")
    assert dy.out("ps", "-a", "--format", "{{.Names}}").split() == ["renamed"]
    generated = dy.out("create", "busybox", "true").strip()
    name = dy.out("inspect", "-f", "{{.Name}}", generated).strip()
    assert name.startswith("/") and "_" in name


def test_bad_flags_create_nothing(dy, busybox):
    before = dy.out("ps", "-aq")
    for args in (["--memory", "12q"], ["-p", "abc"], ["-v", "./does-not-exist:/x"], ["--restart", "sometimes"],
                 ["--cpus", "many"], ["--ulimit", "nofile=x"], ["--mount", "type=bind,source=/nope,target=/x"]):
        result = dy("run", *args, "busybox", "true", check=False)
        assert result.returncode == 125, args
        assert b"Traceback" not in result.stderr
    assert dy.out("ps", "-aq") == before


def test_resource_limits_reach_the_cgroup(dy, busybox):
    out = dy.out("run", "--rm", "--memory", "32m", "--memory-swap", "64m", "--pids-limit", "50", "--cpus", "0.5",
                 "--cpu-shares", "512", "--cpuset-cpus", "0", "busybox", "cat",
                 "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
                 "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                 "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/cpuset/cpuset.cpus", check=False)
    values = out.split()
    assert values[0] == str(32 << 20) and values[2] == "50" and values[3] == "50000" and values[4] == "512"
    assert values[5] == "0"


def test_user_workdir_env_hostname(dy, busybox):
    out = dy.out("run", "--rm", "-u", "nobody", "-w", "/made/here", "-e", "A=1", "--env", "B=two", "-h", "myhost",
                 "busybox", "sh", "-c", "id -u; pwd; echo $A $B; hostname; cat /etc/hostname; ls -ld /made/here")
    lines = out.splitlines()
    assert lines[:5] == ["65534", "/made/here", "1 two", "myhost", "myhost"]
    assert "nobody" in lines[5]
    env_file = dy.root.parent / "env.list"
    env_file.write_text("# comment\nFROM_FILE=yes\n\n")
    assert dy.out("run", "--rm", "--env-file", str(env_file), "busybox", "sh", "-c", "echo $FROM_FILE") == "yes\n"


def test_read_only_and_tmpfs(dy, busybox):
    result = dy("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c",
                "touch /scratch/ok && echo tmpfs-ok; touch /nope", check=False)
    assert result.stdout == b"tmpfs-ok\n" and b"Read-only file system" in result.stderr


def test_logs_options(dy, busybox):
    dy("run", "--name", "talk", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2")
    assert dy.out("logs", "talk").splitlines() == ["line1", "line2", "line3", "line4", "line5"]
    assert dy("logs", "talk").stderr == b"oops\n"
    assert dy.out("logs", "--tail", "2", "talk").splitlines() == ["line5"]  # the last two records: line5, oops
    stamped = dy.out("logs", "-t", "talk").splitlines()[0]
    assert stamped.endswith(" line1") and stamped[:4].isdigit() and "T" in stamped
    assert dy.out("logs", "--since", "1h", "talk").count("line") == 5
    assert dy.out("logs", "--until", "2000-01-01T00:00:00Z", "talk") == ""
    log_path = dy.out("inspect", "-f", "{{.LogPath}}", "talk").strip()
    first = json.loads(open(log_path).readline())
    assert set(first) == {"log", "stream", "time"} and first["log"] == "line1\n"


def test_logs_follow_until_exit(dy, busybox):
    dy("run", "-d", "--name", "ff", "busybox", "sh", "-c", "echo a; sleep 1; echo b")
    start = time.monotonic()
    assert dy.out("logs", "-f", "ff").splitlines() == ["a", "b"]
    assert time.monotonic() - start < 8


def test_log_rotation(dy, busybox):
    dy("run", "--name", "noisy", "--log-opt", "max-size=2k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
       "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done")
    log_path = dy.out("inspect", "-f", "{{.LogPath}}", "noisy").strip()
    assert os.path.exists(log_path + ".1") and os.path.exists(log_path + ".2")
    assert not os.path.exists(log_path + ".3")
    assert all(os.path.getsize(p) <= 2048 for p in (log_path, log_path + ".1", log_path + ".2"))
    assert dy.out("logs", "noisy").splitlines()[-1] == "line-299"


def test_ps_listing(dy, busybox):
    dy("run", "-d", "--name", "one", "-l", "app=web", "busybox", "sleep", "1000")
    dy("run", "--name", "two", "busybox", "true")
    lines = dy.out("ps").splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 2 and lines[1].split()[-1] == "one" and '"sleep 1000"' in lines[1]
    assert dy.out("ps", "-a", "--format", "{{.Names}}").split() == ["two", "one"]
    assert dy.out("ps", "-l", "--format", "{{.Names}}").split() == ["two"]
    assert dy.out("ps", "-n", "1", "-q") == dy.out("ps", "-aq").splitlines()[0] + "\n"
    assert dy.out("ps", "-a", "-f", "status=exited", "--format", "{{.Names}}").split() == ["two"]
    assert dy.out("ps", "-a", "-f", "label=app=web", "--format", "{{.Names}}").split() == ["one"]
    assert dy.out("ps", "-a", "-f", "exited=0", "--format", "{{.Names}}").split() == ["two"]
    assert dy.out("ps", "-a", "-f", "ancestor=busybox", "-q").count("\n") == 2
    row = json.loads(dy.out("ps", "--format", "{{json .}}"))
    assert row["Names"] == "one" and row["Status"].startswith("Up ")
    sized = dy.out("ps", "-s").splitlines()[0]
    assert sized.split()[-1] == "SIZE"


def test_wait_and_inspect_shape(dy, busybox):
    dy("run", "-d", "--name", "ww", "busybox", "sh", "-c", "sleep 0.5; exit 9")
    assert dy.out("wait", "ww") == "9\n"
    data = json.loads(dy.out("inspect", "ww"))[0]
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
                "LogPath", "Name", "RestartCount", "Driver", "Platform", "HostConfig", "GraphDriver", "Mounts",
                "Config", "NetworkSettings"):
        assert key in data, key
    assert data["Name"] == "/ww" and data["Path"] == "sh" and data["Args"] == ["-c", "sleep 0.5; exit 9"]
    assert data["State"]["Status"] == "exited" and data["State"]["ExitCode"] == 9
    assert data["Config"]["Hostname"] == data["Id"][:12]
    assert dy.out("container", "inspect", "-f", "{{.State.Status}}", "ww") == "exited\n"


def test_pause_unpause(dy, busybox):
    dy("run", "-d", "--name", "pp", "busybox", "sh", "-c", "while true; do date +%s%N > /tick; sleep 0.05; done")
    time.sleep(0.3)
    dy("pause", "pp")
    assert state(dy, "pp")["Status"] == "paused"
    assert "(Paused)" in dy.out("ps", "--format", "{{.Status}}")
    pid = state(dy, "pp")["Pid"]
    with open(f"/proc/{pid}/status") as f:
        assert "State:\tD" in f.read() or True  # frozen tasks show as D or S depending on the kernel
    rootfs = json.loads(dy.out("inspect", "-f", "{{json .GraphDriver.Data}}", "pp"))
    tick = os.path.join(rootfs.get("MergedDir") or rootfs["UpperDir"], "tick")
    first = open(tick).read()
    time.sleep(0.4)
    assert open(tick).read() == first  # nothing runs while paused
    dy("unpause", "pp")
    wait_for(lambda: open(tick).read() != first)
    assert state(dy, "pp")["Status"] == "running"


def test_volumes_named_anonymous_and_bind(dy, busybox, tmp_path):
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("hello\n")
    out = dy.out("run", "--rm", "-v", f"{host_dir}:/mnt/host:ro", "-v", "named:/data", "busybox", "sh", "-c",
                 "cat /mnt/host/from-host; echo persisted > /data/f; touch /mnt/host/x 2>/dev/null || echo ro")
    assert out == "hello\nro\n"
    assert dy.out("run", "--rm", "-v", "named:/data", "busybox", "cat", "/data/f") == "persisted\n"
    # An anonymous volume goes with --rm; a named one stays.
    dy("run", "--name", "anon", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/y")
    mounts_of = json.loads(dy.out("inspect", "-f", "{{json .Mounts}}", "anon"))
    anon_path = mounts_of[0]["Source"]
    assert os.path.exists(os.path.join(anon_path, "y"))
    dy("rm", "-v", "anon")
    assert not os.path.exists(anon_path)
    assert (dy.root / "volumes" / "named" / "_data" / "f").exists()


def test_named_volume_is_filled_from_the_image(dy, busybox):
    out = dy.out("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/group")
    assert out.startswith("root:x:0:")
    assert (dy.root / "volumes" / "etcvol" / "_data" / "passwd").exists()


@pytest.mark.skipif(not __import__("shutil").which("runc"), reason="runc not installed (apt-get install runc)")
def test_runc_runtime(dy, busybox):
    """The same container under the system's runc: run, exec, pause, stop, exit codes, cleanup."""
    result = dy("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "echo hi; exit 3", check=False)
    assert result.returncode == 3 and result.stdout == b"hi\n"
    assert dy("run", "--rm", "--runtime", "runc", "busybox", "nope", check=False).returncode == 127
    marker = unique_sleep()
    cid = dy.out("run", "-d", "--name", "viarunc", "--runtime", "runc", "--memory", "16m", "busybox",
                 "sleep", marker).strip()
    assert dy.out("exec", "viarunc", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes") == f"{16 << 20}\n"
    assert dy("exec", "viarunc", "sh", "-c", "exit 5", check=False).returncode == 5
    dy("pause", "viarunc")
    assert state(dy, "viarunc")["Paused"]
    dy("unpause", "viarunc")
    dy("stop", "-t", "1", "viarunc")
    assert state(dy, "viarunc")["ExitCode"] == 137 and not running_sleep(marker)
    dy("rm", "viarunc")
    assert cgroups(cid) == []
    bogus = dy("run", "--runtime", "bogus", "busybox", "true", check=False)
    assert bogus.returncode == 125 and b"unknown or invalid runtime name: bogus" in bogus.stderr


def test_init_reaps_and_forwards(dy, busybox):
    out = dy.out("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert out.startswith("/sbin/docker-init -- sh")


def _pty_run(dy: CLI, *args: str, rows: int = 30, cols: int = 100):
    """Start `dockyard ARGS` on a new pseudo-terminal of the given size; returns (process, master fd)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), *args], stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True, close_fds=True)
    os.close(slave)
    return proc, master


def _read_until(master: int, needle: bytes, timeout: float = 10.0) -> bytes:
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} not seen in {seen!r}")
        ready, _, _ = select.select([master], [], [], remaining)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    return seen


def test_tty_run_size_ctrl_c_and_detach(dy, busybox):
    proc, master = _pty_run(dy, "run", "-it", "--name", "term", "busybox", "sh")
    try:
        _read_until(master, b"# ")
        os.write(master, b"stty size; tty\r")
        out = _read_until(master, b"/dev/pts/0")
        assert b"30 100" in out  # the container's terminal has our window size
        os.write(master, b"sleep 100\r")
        time.sleep(0.5)
        os.write(master, b"\x03")  # Ctrl-C reaches the foreground job inside, not dockyard
        os.write(master, b"echo still-here\r")
        _read_until(master, b"still-here\r\n")
        os.write(master, b"\x10\x11")  # Ctrl-P Ctrl-Q: detach, the container keeps running
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(master)
    assert state(dy, "term")["Running"]
    dy("rm", "-f", "term")


def test_tty_exit_code(dy, busybox):
    proc, master = _pty_run(dy, "run", "-it", "--rm", "busybox", "sh", "-c", "exit 6")
    try:
        assert proc.wait(timeout=15) == 6
    finally:
        os.close(master)


def test_a_command_during_a_monitor_shutdown_gets_the_next_monitor(dy, busybox):
    """A command that finds no monitor answering while one still holds the lock (on its way out) waits for it
    to go and starts the next one, rather than giving up."""
    import fcntl

    from dockyard.engine.monitor import protocol

    dy("run", "--rm", "busybox", "true")  # a monitor, then none: ask it to go
    protocol.request(str(dy.root / "run" / "monitor.sock"), {"op": "shutdown"})
    wait_for(lambda: not (dy.root / "run" / "monitor.sock").exists())
    lock = os.open(dy.root / "run" / "monitor.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # what an exiting monitor holds until its very end
    try:
        cmd = [sys.executable, "-m", "dockyard", "--root", str(dy.root), "run", "--rm", "busybox", "echo", "served"]
        command = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
        time.sleep(1.5)  # the command has found the lock taken by now
    finally:
        os.close(lock)
    out, err = command.communicate(timeout=30)
    assert command.returncode == 0, err.decode()
    assert out == b"served\n"


def test_monitor_shutdown_cleans_up_its_containers(dy, busybox):
    marker = unique_sleep()
    cid = dy.out("run", "-d", "busybox", "sleep", marker).strip()
    assert mounts(str(dy.root))
    from dockyard.engine.monitor import protocol

    protocol.request(str(dy.root / "run" / "monitor.sock"), {"op": "shutdown"})
    wait_for(lambda: not (dy.root / "run" / "monitor.sock").exists())
    time.sleep(0.2)
    assert mounts(str(dy.root)) == [] and cgroups(cid) == [] and not running_sleep(marker)
    s = state(dy, cid)
    assert not s["Running"] and s["ExitCode"] == 137

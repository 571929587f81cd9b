"""The OCI operations: create, start, state, kill, delete, and exec of an extra process.

Who reaps whom: `create` and `exec_process` fork the container process from the *calling thread*, straight
into the container's pid namespace, so the caller is its parent. A long-lived caller (the engine's monitor)
gets the exit status with `os.waitpid(pid, 0)` (or a pidfd) like for any child; `state()` only says "stopped"
once the process has exited. A short-lived caller (the `dockyard-runtime create` command) exits after create;
the init is then reparented to the nearest subreaper (conmon, podman's monitor) or the host's init, which
reaps it. The runtime never waits for a container itself, except `delete --force` waiting for it to die.

Processes started by exec_process are the caller's children as well. When a container's init dies, the kernel
kills the rest of its pid namespace, and the init's own exit is only reported once every process of that
namespace has been reaped, so a caller must reap its exec'd children independently (waitpid(-1) or one
pidfd per child), not block on the init first.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from dockyard.runtime import cgroups, hooks, init, namespaces, state
from dockyard.runtime import syscalls as sc
from dockyard.runtime.errors import Conflict, HostError, InvalidArgument, NotFound, error_from_child

Stdio = tuple[int, int, int]


def load_config(bundle: str) -> dict[str, Any]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            config = json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"no config.json in bundle {bundle}") from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: {e}") from None
    if not isinstance(config, dict) or not isinstance(config.get("process"), dict):
        raise InvalidArgument(f"{path}: process is missing")
    return config


def create(
    container_id: str,
    bundle: str,
    state_root: str,
    *,
    stdio: Stdio | None = None,
    console_socket: str | None = None,
    pid_file: str | None = None,
    preserve_fds: int = 0,
    config: dict[str, Any] | None = None,
    seccomp_cache: str | None = None,
    no_new_keyring: bool = False,
    die_with_parent: bool = False,
    meanwhile: Callable[[], None] | None = None,
) -> int:
    """Set up the container and leave its init blocked until `start`; returns the init's pid (our child).

    stdio: fds to give the init as 0, 1, 2 (default: the caller's own). console_socket: a unix socket that
    receives the pty master (SCM_RIGHTS) when process.terminal is true. config: the parsed config.json, if
    the caller already has it. seccomp_cache: directory caching compiled filters (default: <state_root>/.seccomp).
    no_new_keyring: keep the caller's session keyring instead of a fresh one named after the container.
    die_with_parent: the init is killed (SIGKILL) when the calling thread exits.
    meanwhile: work of the caller's to do while the init sets itself up (in its namespaces, before it reports),
    on the other CPU when there is one; if it raises, the init is killed and create fails with its error.
    """
    state.validate_id(container_id)
    bundle = os.path.abspath(bundle)
    config = config if config is not None else load_config(bundle)
    rootfs = _rootfs(config, bundle)
    linux = config.get("linux") or {}
    ns = namespaces.Plan.from_spec(linux.get("namespaces"))
    namespaces.check_sysctls(linux.get("sysctl"), ns)
    program = _seccomp_program(linux.get("seccomp"), seccomp_cache or os.path.join(state_root, ".seccomp"))
    cdir = state.make_container_dir(state_root, container_id)
    fifo = os.path.join(cdir, state.FIFO_NAME)
    created_cgroups: list[str] = []
    pid = 0
    try:
        os.mkfifo(fifo, 0o600)
        dirs, created_cgroups = cgroups.prepare(container_id, linux.get("cgroupsPath"), linux.get("resources"))
        console = _connect_console(console_socket) if (config["process"].get("terminal")) else None
        args = init.InitArgs(config=config, rootfs=rootfs, bundle=bundle, fifo=fifo, report_fd=-1,
                             cgroup_dirs=dirs, ns=ns, stdio=stdio, console_fd=console,
                             preserve_fds=preserve_fds, seccomp_program=program, container_id=container_id,
                             no_new_keyring=no_new_keyring, die_with_parent=die_with_parent,
                             state={"ociVersion": state.OCI_VERSION, "id": container_id, "bundle": bundle,
                                    "annotations": config.get("annotations") or {}})
        try:
            pid = _spawn(lambda: init.run_init(args), args, ns.has("pid") and "pid" not in ns.join,
                         ns.join.get("pid"), meanwhile)
        finally:
            if console is not None:
                os.close(console)
        cgroups.apply_devices(dirs, linux.get("resources"))
        record = state.Record(
            id=container_id, bundle=bundle, pid=pid, start_time=state.process_start_time(pid) or 0,
            created=_now(), annotations=config.get("annotations") or {}, cgroups=dirs,
            created_cgroups=created_cgroups, config=config, owns_pidns=ns.has("pid") and "pid" not in ns.join,
        )
        state.write_record(state_root, record)
        if pid_file:
            _write_pid_file(pid_file, pid)
    except BaseException:
        if pid:
            _kill_and_reap(pid)
        cgroups.remove(created_cgroups)
        _rmtree(cdir)
        raise
    return pid


def _rootfs(config: dict[str, Any], bundle: str) -> str:
    root = (config.get("root") or {}).get("path")
    if not root:
        raise InvalidArgument("config.json: root.path is missing")
    rootfs = os.path.realpath(os.path.join(bundle, root))
    if not os.path.isdir(rootfs):
        raise NotFound(f"rootfs {rootfs} does not exist")
    return rootfs


def _seccomp_program(profile: dict[str, Any] | None, cache_dir: str) -> bytes | None:
    if not profile:
        return None
    from dockyard.runtime import seccomp

    return seccomp.program_for(profile, cache_dir)


def _connect_console(path: str | None) -> int:
    if not path:
        raise InvalidArgument("process.terminal is true but no console socket was given")
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise InvalidArgument(f"console socket {path}: {e.strerror}") from None
    return s.detach()


def _spawn(body: Any, args: Any, new_pidns: bool, pidns_path: str | None,
           meanwhile: Callable[[], None] | None = None) -> int:
    """Fork the child into its pid namespace (and its v2 cgroup); wait for its one-line report; return its pid."""
    r, w = os.pipe2(os.O_CLOEXEC)
    args.report_fd = w
    go_r = go_w = -1
    if isinstance(args, init.InitArgs) and hooks.wanted(args.config, *hooks.PARENT_CREATE):
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        args.go_fd = go_r
    # Non-dumpable across the fork: the child's /proc/<pid>/exe (the host's Python) and memory stay out of
    # reach of container processes until it execs the container's binary (CVE-2019-5736).
    was_dumpable = sc.prctl(sc.PR_GET_DUMPABLE)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    try:
        with namespaces.PidNamespaceForChildren(new_pidns, pidns_path):
            pid = _fork(args)
            if pid == 0:  # the child never leaves body(): it execs or _exits
                os.close(r)
                if go_w >= 0:
                    os.close(go_w)
                try:
                    body()
                finally:
                    os._exit(1)
    finally:
        if was_dumpable:
            sc.prctl(sc.PR_SET_DUMPABLE, was_dumpable)
        os.close(w)
        if go_r >= 0:
            os.close(go_r)
    try:
        if meanwhile is not None:
            meanwhile()
        report = _read_report(r)
        if report and "hooks" in report:
            report = _run_create_hooks(args, pid, r, go_w)
    except BaseException:
        _kill_and_reap(pid)
        raise
    finally:
        os.close(r)
        if go_w >= 0:
            os.close(go_w)
    if report is None and isinstance(args, init.InitArgs):
        _kill_and_reap(pid)
        raise HostError("container init exited during setup without a report")
    if report and "error" in report:
        _reap(pid)
        raise error_from_child(report.get("kind", "host"), report["error"])
    return pid


def _fork(args: Any) -> int:
    """Fork; when the container has a cgroup v2 directory and we are single-threaded, fork straight into it.

    The child then joins only the v1 hierarchies itself (see cgroups.join), which costs no RCU wait.
    """
    v2 = cgroups.v2_dir(args.cgroup_dirs)
    if v2 is None or not sc.single_threaded():
        return os.fork()
    try:
        fd = os.open(v2, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return os.fork()
    try:
        pid = sc.fork_into_cgroup(fd)
    except OSError:
        return os.fork()  # clone3 missing or refused (old kernel, threaded cgroup...): the slow path works
    finally:
        os.close(fd)
    if pid == 0:
        args.cgroup_dirs = {k: v for k, v in args.cgroup_dirs.items() if v != v2}
    return pid


def _run_create_hooks(args: init.InitArgs, pid: int, r: int, go_w: int) -> dict[str, Any] | None:
    """The init is waiting in its namespaces, rootfs mounted: run prestart and createRuntime, let it go on."""
    st = {**args.state, "status": "creating", "pid": pid}
    ok = False
    try:
        for kind in hooks.PARENT_CREATE:
            hooks.run_all(args.config, kind, st)
        ok = True
    finally:
        os.write(go_w, b"1" if ok else b"0")
    return _read_report(r)


def _read_report(fd: int) -> dict[str, Any] | None:
    """One JSON line from the child (it never writes a second one before we answer the first)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data) if data.strip() else None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def start(container_id: str, state_root: str) -> None:
    """Let a created container's init exec the process."""
    record = state.read_record(state_root, container_id)
    status = state.status(state_root, record)
    if status != "created":
        raise Conflict(f"cannot start a container in state {status!r}")
    fifo = state.fifo_path(state_root, container_id)
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:  # ENXIO: no reader left, the init died
        raise Conflict(f"container {container_id} init is gone: {e.strerror}") from None
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    os.unlink(fifo)
    if hooks.wanted(record.config, "poststart"):
        hooks.run_all(record.config, "poststart", state.oci_state(state_root, record))


def pause(container_id: str, state_root: str) -> None:
    """Freeze every process of a running container (cgroup freezer)."""
    record = state.read_record(state_root, container_id)
    status = state.status(state_root, record)
    if status != "running":
        raise Conflict(f"container {container_id} is not running: {status}")
    cgroups.freeze(record.cgroups, True)


def resume(container_id: str, state_root: str) -> None:
    record = state.read_record(state_root, container_id)
    status = state.status(state_root, record)
    if status != "paused":
        raise Conflict(f"container {container_id} is not paused: {status}")
    cgroups.freeze(record.cgroups, False)


def get_state(container_id: str, state_root: str) -> dict[str, Any]:
    """The OCI state document: ociVersion, id, status (created|running|stopped), pid, bundle, annotations."""
    return state.oci_state(state_root, state.read_record(state_root, container_id))


def kill(container_id: str, state_root: str, sig: int = signal.SIGTERM, all: bool = False) -> None:
    """Send sig to the init, or with all=True to every process in the container's cgroup."""
    record = state.read_record(state_root, container_id)
    if not state.is_alive(record):
        raise Conflict(f"container {container_id} is not running")
    targets = cgroups.pids(record.cgroups) if all else [record.pid]
    for pid in targets or [record.pid]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def delete(container_id: str, state_root: str, force: bool = False, timeout: float = 10.0) -> None:
    """Remove a stopped (or created) container: its cgroups and state. force kills a running one first."""
    try:
        record = state.read_record(state_root, container_id)
    except NotFound:
        if force:
            return
        raise
    status = state.status(state_root, record)
    if status in ("running", "paused") and not force:
        raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
    if status != "stopped":
        if status == "paused":
            cgroups.freeze(record.cgroups, False)  # frozen tasks would never act on SIGKILL
        _kill_everything(record, timeout)
    cgroups.remove(record.created_cgroups)
    _rmtree(state.container_dir(state_root, container_id))
    if hooks.wanted(record.config, "poststop"):
        hooks.run_all(record.config, "poststop", {**state.oci_state(state_root, record), "status": "stopped"},
                      ignore_errors=True)


def _kill_everything(record: state.Record, timeout: float) -> None:
    """SIGKILL the init (its pid namespace dies with it) and any stragglers in the cgroup; wait for the end."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in [record.pid] + cgroups.pids(record.cgroups):
            try:
                if pid != record.pid or state.is_alive(record):
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not state.is_alive(record) and not _live_pids(record):
            return
        if time.monotonic() > deadline:
            raise HostError(f"container {record.id} did not die within {timeout}s")
        # Reap it if it is our child (in-process callers); otherwise its parent will.
        try:
            os.waitpid(record.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.002)


def _live_pids(record: state.Record) -> list[int]:
    return [p for p in cgroups.pids(record.cgroups) if state.process_state_letter(p) not in (None, "Z", "X")]


def exec_process(
    container_id: str,
    state_root: str,
    process: dict[str, Any],
    *,
    stdio: Stdio | None = None,
    console_socket: str | None = None,
    pid_file: str | None = None,
    preserve_fds: int = 0,
    seccomp_cache: str | None = None,
) -> int:
    """Start an extra process in a running container (its namespaces, cgroups, seccomp profile).

    `process` is a complete OCI process object (see `exec_defaults` to fill one from the container's own).
    Returns its pid: the caller is its parent and reaps it. Raises CommandNotFound/CommandNotInvokable when
    the executable is missing or not runnable, before anything runs.
    """
    record = state.read_record(state_root, container_id)
    status = state.status(state_root, record)
    if status not in ("running", "created"):
        raise Conflict(f"cannot exec in a {status} container {container_id}")
    linux = record.config.get("linux") or {}
    ns_types = [n["type"] for n in linux.get("namespaces") or ()]
    program = _seccomp_program(linux.get("seccomp"), seccomp_cache or os.path.join(state_root, ".seccomp"))
    console = _connect_console(console_socket) if process.get("terminal") else None
    args = init.ExecArgs(process=process, init_pid=record.pid, ns_types=ns_types, report_fd=-1,
                         cgroup_dirs=record.cgroups, stdio=stdio, console_fd=console,
                         preserve_fds=preserve_fds, seccomp_program=program)
    try:
        pid = _spawn(lambda: init.run_exec(args), args, False,
                     f"/proc/{record.pid}/ns/pid" if "pid" in ns_types else None)
    finally:
        if console is not None:
            os.close(console)
    if pid_file:
        _write_pid_file(pid_file, pid)
    return pid


def exec_defaults(container_id: str, state_root: str, args: list[str], **overrides: Any) -> dict[str, Any]:
    """A process object for exec: the container's own process (env, user, cwd, caps, rlimits...) with new args."""
    record = state.read_record(state_root, container_id)
    proc = dict(record.config.get("process") or {})
    proc["args"] = list(args)
    proc["terminal"] = False
    proc.pop("consoleSize", None)
    proc.update({k: v for k, v in overrides.items() if v is not None})
    return proc


def list_containers(state_root: str) -> list[dict[str, Any]]:
    out = []
    for cid in state.list_ids(state_root):
        try:
            out.append(get_state(cid, state_root))
        except NotFound:
            continue
    return out

"""Code that runs in the forked child: the container's init (create) and an exec'd process (exec).

Both report to the parent over a close-on-exec pipe: one JSON line, {"ok": true} when the init is set up and
about to wait for `start`, or {"error": ..., "kind": ...} before exiting 1. An exec'd process writes nothing
on success: the pipe closing at execve is the signal.

Nothing here may return to the caller's code: every path ends in execve or os._exit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from dockyard.runtime import cgroups, devices, hooks, mounts, namespaces, process
from dockyard.runtime import syscalls as sc
from dockyard.runtime.errors import HostError, InvalidArgument, kind_of


class InitArgs:
    """Everything the init needs, prepared by the parent before the fork."""

    def __init__(self, *, config: dict[str, Any], rootfs: str, bundle: str, fifo: str, report_fd: int,
                 cgroup_dirs: dict[str, str], ns: namespaces.Plan, stdio: tuple[int, int, int] | None = None,
                 console_fd: int | None = None, preserve_fds: int = 0, seccomp_program: bytes | None = None,
                 container_id: str = "", no_new_keyring: bool = False, state: dict[str, Any] | None = None,
                 die_with_parent: bool = False) -> None:
        self.config, self.rootfs, self.bundle, self.fifo = config, rootfs, bundle, fifo
        self.report_fd, self.cgroup_dirs, self.ns, self.stdio = report_fd, cgroup_dirs, ns, stdio
        self.console_fd = console_fd  # connected console socket, when process.terminal
        self.preserve_fds, self.seccomp_program = preserve_fds, seccomp_program
        self.container_id, self.no_new_keyring = container_id, no_new_keyring
        self.state = state or {}  # the OCI state given to hooks
        self.go_fd = -1  # read end of a parent->child pipe: the parent has run its create-time hooks
        self.fifo_fd = -1  # opened by the init before pivot_root (the fifo lives in the host's state dir)
        self.dev_readonly = False
        self.die_with_parent = die_with_parent  # keep PR_SET_PDEATHSIG=SIGKILL through exec


class ExecArgs:
    """What an exec'd process needs to join a running container."""

    def __init__(self, *, process: dict[str, Any], init_pid: int, ns_types: list[str], report_fd: int,
                 cgroup_dirs: dict[str, str], stdio: tuple[int, int, int] | None = None,
                 console_fd: int | None = None, preserve_fds: int = 0, seccomp_program: bytes | None = None) -> None:
        self.process, self.init_pid, self.ns_types, self.report_fd = process, init_pid, ns_types, report_fd
        self.cgroup_dirs, self.stdio, self.console_fd = cgroup_dirs, stdio, console_fd
        self.preserve_fds, self.seccomp_program = preserve_fds, seccomp_program


def _report(fd: int, message: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


def _fail(fd: int, exc: BaseException) -> None:
    try:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if os.environ.get("DOCKYARD_RUNTIME_DEBUG") and "traceback" in sys.modules:
            message += "\n" + "".join(sys.modules["traceback"].format_exception(exc))
        _report(fd, {"error": message, "kind": kind_of(exc)})
    finally:
        os._exit(1)


def run_init(a: InitArgs) -> None:
    try:
        path, args, env, late = _setup_init(a)
        # From now on the container outlives whoever created it, unless asked to die with it (the monitor
        # asks: a container must never run on without the process that reaps it and records its exit).
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL if a.die_with_parent else 0)
        fifo = a.fifo_fd
        _report(a.report_fd, {"ok": True})
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        _fail(a.report_fd, e)
        return
    try:
        # Block until `start` writes a byte (runc's exec.fifo protocol, see state.py).
        while not os.read(fifo, 1):
            pass
        if hooks.wanted(a.config, "startContainer"):
            hooks.run_all(a.config, "startContainer", {**a.state, "status": "created", "pid": 1})
        process.reset_signals()
        process.execute(path, args, env, a.seccomp_program, late)
    except BaseException as e:  # noqa: BLE001 - after `start` the only channel left is the process's stderr
        _last_words(e)
    finally:
        os._exit(126)


def _setup_init(a: InitArgs) -> tuple[str, list[str], list[str], bool]:
    """Everything runc's init does before waiting on exec.fifo, in the same order."""
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)  # until ready: die with a creator that dies mid-setup
    proc = a.config.get("process") or {}
    linux = a.config.get("linux") or {}
    process.setup_stdio(a.stdio)
    process.set_oom_score_adj(proc.get("oomScoreAdj"))
    _enter_namespaces(a)
    # O_RDWR: opening never blocks, and reading blocks until `start` writes.
    a.fifo_fd = os.open(a.fifo, os.O_RDWR | os.O_CLOEXEC)
    if not a.no_new_keyring:
        sc.join_session_keyring("_ses." + a.container_id)
    _build_rootfs(a, linux)
    if proc.get("terminal"):
        _setup_console(a)
    mounts.finalize(bool((a.config.get("root") or {}).get("readonly")), a.dev_readonly)
    _set_names(a)
    _write_sysctls(linux.get("sysctl") or {})
    mounts.readonly_paths(linux.get("readonlyPaths"))
    mounts.masked_paths(linux.get("maskedPaths"))
    env = process.build_env(proc)  # HOME from the image's /etc/passwd, read while still root
    path = process.finalize(proc, a.seccomp_program, a.preserve_fds)
    return path, list(proc["args"]), env, bool(proc.get("noNewPrivileges"))


def _enter_namespaces(a: InitArgs) -> None:
    """cgroups first (a new cgroup namespace is rooted where we stand), then joined, then new namespaces."""
    cgroups.join(a.cgroup_dirs)
    namespaces.join_paths(a.ns.join)
    flags = a.ns.unshare_flags()
    if flags:
        sc.unshare(flags)
    if not a.ns.has("mount"):
        raise InvalidArgument("a mount namespace is required")


def _set_names(a: InitArgs) -> None:
    if a.config.get("hostname"):
        if not a.ns.has("uts"):
            raise InvalidArgument("setting the hostname needs a uts namespace")
        sc.sethostname(a.config["hostname"])
    if a.config.get("domainname"):
        if not a.ns.has("uts"):
            raise InvalidArgument("setting the domainname needs a uts namespace")
        sc.setdomainname(a.config["domainname"])


def _build_rootfs(a: InitArgs, linux: dict[str, Any]) -> None:
    mounts.prepare_root(a.rootfs, linux.get("rootfsPropagation"))
    ctx = mounts.Context(a.rootfs, a.bundle, a.cgroup_dirs, cgroupns=a.ns.has("cgroup"))
    rootfd = os.open(a.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mounts.mount_all(ctx, rootfd, a.config.get("mounts") or [])
        if not ctx.dev_bound:
            devices.create_nodes(rootfd, linux.get("devices"))
            devices.create_symlinks(rootfd)
    finally:
        os.close(rootfd)
    _create_hooks(a)
    mounts.pivot(a.rootfs)
    a.dev_readonly = ctx.dev_readonly


def _create_hooks(a: InitArgs) -> None:
    """prestart/createRuntime run in the parent while we wait; then createContainer here, before pivot_root."""
    if a.go_fd >= 0:
        _report(a.report_fd, {"hooks": "create"})
        if os.read(a.go_fd, 1) != b"1":
            raise HostError("create hooks failed")
    if hooks.wanted(a.config, "createContainer"):
        hooks.run_all(a.config, "createContainer", {**a.state, "status": "creating", "pid": os.getpid()})


def _setup_console(a: InitArgs) -> None:
    if a.console_fd is None:
        raise InvalidArgument("process.terminal is set but no console socket was given")
    master, slave = devices.open_console((a.config.get("process") or {}).get("consoleSize"))
    devices.bind_console(slave)
    devices.send_fd(a.console_fd, master)
    os.close(master)
    os.close(a.console_fd)
    devices.become_terminal_owner(slave)


def _write_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        if "/" in key or ".." in key:
            raise InvalidArgument(f"invalid sysctl {key!r}")
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))


def run_exec(a: ExecArgs) -> None:
    """Join the running container (cgroups, then namespaces), then become the requested process."""
    try:
        proc = a.process
        process.setup_stdio(a.stdio)
        cgroups.join(a.cgroup_dirs)
        paths = {t: f"/proc/{a.init_pid}/ns/{namespaces.PROC_NAMES[t]}" for t in a.ns_types if t != "pid"}
        namespaces.join_paths(paths)
        if proc.get("terminal"):
            _exec_console(a)
        env = process.build_env(proc)
        path = process.finalize(proc, a.seccomp_program, a.preserve_fds)
        process.reset_signals()
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
    except BaseException as e:  # noqa: BLE001
        _fail(a.report_fd, e)
        return
    try:
        process.execute(path, list(proc["args"]), env, a.seccomp_program, bool(proc.get("noNewPrivileges")))
    except BaseException as e:  # noqa: BLE001
        _last_words(e)
    finally:
        os._exit(126)


def _last_words(exc: BaseException) -> None:
    try:
        os.write(2, f"dockyard-runtime: {exc}\n".encode())
    except OSError:
        pass


def _exec_console(a: ExecArgs) -> None:
    if a.console_fd is None:
        raise InvalidArgument("process.terminal is set but no console socket was given")
    master, slave = devices.open_console(a.process.get("consoleSize"))
    devices.send_fd(a.console_fd, master)
    os.close(master)
    os.close(a.console_fd)
    devices.become_terminal_owner(slave)

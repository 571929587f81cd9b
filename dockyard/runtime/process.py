"""The last steps before a container process runs its own binary, shared by the init and by exec.

Everything here runs in the forked child. The order follows runc's: rlimits and no_new_privs while still
privileged; seccomp early only when no_new_privs is off (installing a filter then needs CAP_SYS_ADMIN);
fds marked close-on-exec; bounding set, user switch, capability sets; working directory; executable lookup.
The final `execute` execs the container's binary directly, so /proc/<pid>/exe never points at the host's
Python once the container's code runs.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.runtime import capabilities
from dockyard.runtime import syscalls as sc
from dockyard.runtime.errors import CommandNotFound, CommandNotInvokable
from dockyard.runtime.users import home_in_current_root

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
RLIM_INFINITY = 2**64 - 1


def setup_stdio(stdio: tuple[int, int, int] | None) -> None:
    """Put the caller's chosen fds on 0, 1, 2 (dup'ed out of the way first: they may overlap 0-2)."""
    if stdio is None:
        return
    high = [os.dup(fd) if fd >= 0 else -1 for fd in stdio]
    for target, fd in enumerate(high):
        if fd >= 0:
            os.dup2(fd, target, inheritable=True)
            os.close(fd)


def set_rlimits(items: list[dict[str, Any]] | None) -> None:
    """Apply rlimits, clamped to this process's hard limit: raising one needs CAP_SYS_RESOURCE, which a
    runtime may lack (it does on hosts and in nested containers), and a clear clamp beats a failed start."""
    for item in items or ():
        number = RLIMITS.get(item.get("type", ""))
        if number is None:
            raise InvalidArgument(f"unknown rlimit {item.get('type')!r}")
        soft, hard = _as_rlim(item.get("soft", 0)), _as_rlim(item.get("hard", 0))
        if soft > hard:
            raise InvalidArgument(f"{item['type']}: soft limit {soft} is above hard limit {hard}")
        try:
            resource.setrlimit(number, (soft, hard))
        except (ValueError, OSError):
            host_hard = _as_rlim(resource.getrlimit(number)[1])
            resource.setrlimit(number, (min(soft, host_hard), min(hard, host_hard)))


def _as_rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value >= RLIM_INFINITY or value < 0 else value


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def switch_user(user: dict[str, Any]) -> None:
    """setgroups/setgid/setuid, keeping the permitted capabilities across the uid change."""
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    for value in [uid, gid, *(user.get("additionalGids") or ())]:
        if not 0 <= int(value) <= 2**32 - 2:
            raise InvalidArgument(f"uid/gid {value} out of range")
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setgroups([int(g) for g in user.get("additionalGids") or ()])
    os.setgid(gid)
    os.setuid(uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    if user.get("umask") is not None:
        os.umask(int(user["umask"]))
    else:
        os.umask(0o022)


def finalize(proc: dict[str, Any], seccomp_program: bytes | None, preserve_fds: int) -> str:
    """Privileged-to-unprivileged transition; returns the executable path. Raises before anything runs."""
    set_rlimits(proc.get("rlimits"))
    nnp = bool(proc.get("noNewPrivileges"))
    if nnp:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_program is not None and not nnp:
        sc.seccomp_load_bpf(seccomp_program)
    # Every fd we did not promise the container is closed by execve (CVE-2024-21626's leaked fd).
    sc.close_range(3 + preserve_fds, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    for fd in range(3, 3 + preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    caps = capabilities.Plan(proc.get("capabilities"))
    caps.drop_bounding()
    cwd = proc.get("cwd") or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"cwd {cwd!r} must be an absolute path")
    chdir_later = _chdir(cwd, retry_on_permission=True)
    switch_user(proc.get("user") or {})
    caps.apply_sets()
    if chdir_later:
        _chdir(cwd, retry_on_permission=False)
    args = proc.get("args") or []
    if not args:
        raise InvalidArgument("process.args must not be empty")
    return find_executable(args[0], env_path(proc.get("env") or []))


def _chdir(cwd: str, retry_on_permission: bool) -> bool:
    """chdir as root first (a dir only root can enter), retry after the user switch if that was refused."""
    try:
        os.chdir(cwd)
        return False
    except PermissionError:
        if retry_on_permission:
            return True
        raise
    except OSError as e:
        raise InvalidArgument(f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}") from None


def env_path(env: list[str]) -> str:
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return DEFAULT_PATH


def find_executable(name: str, path: str) -> str:
    """Like execvp's search, but done before the container is started so failures are reported at create."""
    if "/" in name:
        _check_executable(name, name)
        return name
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            _check_executable(candidate, name)
            return candidate
        except CommandNotFound:
            continue
        except CommandNotInvokable:
            continue
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def _check_executable(path: str, name: str) -> None:
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise CommandNotFound(f'exec: "{name}": stat {path}: no such file or directory') from None
        raise CommandNotInvokable(f'exec: "{name}": {e.strerror}') from None
    if stat.S_ISDIR(st.st_mode):
        raise CommandNotInvokable(f'exec: "{name}": is a directory')
    if not os.access(path, os.X_OK):
        raise CommandNotInvokable(f'exec: "{name}": permission denied')


def build_env(proc: dict[str, Any]) -> list[str]:
    env = list(proc.get("env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + home_in_current_root(int((proc.get("user") or {}).get("uid", 0))))
    return env


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ and may block others; the container must start with defaults."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP,
                signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGTTOU, signal.SIGTTIN,
                signal.SIGTSTP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def execute(path: str, args: list[str], env: list[str], seccomp_program: bytes | None, late_seccomp: bool) -> None:
    """Replace this process by the container's binary. Never returns; exits 127/126 when execve fails."""
    if late_seccomp and seccomp_program is not None:
        sc.seccomp_load_bpf(seccomp_program)
    try:
        sc.execve(path, args, env)
    except OSError as e:
        code = 127 if e.errno == errno.ENOENT else 126
        try:
            os.write(2, f"dockyard-runtime: exec {args[0]}: {e.strerror}\n".encode())
        finally:
            os._exit(code)

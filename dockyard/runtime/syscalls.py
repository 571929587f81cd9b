"""The runtime's one seam to the kernel: thin ctypes wrappers for the calls Python's os module lacks.

Each wrapper raises OSError carrying the call's name, so a failure deep in container setup reads as
"pivot_root: Invalid argument" rather than a bare errno. mount/umount come from dockyard.linux and are
re-exported here, so runtime modules import system calls from this one place only.
"""

from __future__ import annotations

import ctypes
import os

from dockyard.linux import (  # noqa: F401  (re-exported: the runtime's single seam)
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    libc,
    mount,
    umount,
)

MS_NOATIME = 1 << 10
MS_NODIRATIME = 1 << 11
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_SYNCHRONOUS = 1 << 4
MS_DIRSYNC = 1 << 7
MS_MANDLOCK = 1 << 6
MS_SILENT = 1 << 15
MS_UNBINDABLE = 1 << 17
MS_LAZYTIME = 1 << 25

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

CLOSE_RANGE_CLOEXEC = 1 << 2

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10

# x86_64 and aarch64 numbers; the runtime targets Linux on these two.
_NR = {
    "x86_64": {"pivot_root": 155, "setns": 308, "unshare": 272, "capset": 126, "capget": 125,
               "close_range": 436, "openat2": 437, "seccomp": 317, "keyctl": 250, "clone3": 435},
    "aarch64": {"pivot_root": 41, "setns": 268, "unshare": 97, "capset": 91, "capget": 90,
                "close_range": 436, "openat2": 437, "seccomp": 277, "keyctl": 219, "clone3": 435},
}[os.uname().machine]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _syscall(name: str, *args: object) -> int:
    return _check(libc().syscall(ctypes.c_long(_NR[name]), *args), name)


def unshare(flags: int) -> None:
    _check(libc().unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({nstype:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    _syscall("pivot_root", new_root.encode(), put_old.encode())


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        libc().prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4),
                     ctypes.c_ulong(arg5)),
        f"prctl({option})",
    )


def sethostname(name: str) -> None:
    data = name.encode()
    _check(libc().sethostname(data, ctypes.c_size_t(len(data))), "sethostname")


def setdomainname(name: str) -> None:
    data = name.encode()
    _check(libc().setdomainname(data, ctypes.c_size_t(len(data))), "setdomainname")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _syscall("capset", ctypes.byref(header), data)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _syscall("close_range", ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): used with RESOLVE_IN_ROOT so a path never escapes a container's rootfs via symlinks or '..'."""
    how = _OpenHow(flags, mode, resolve)
    return _syscall("openat2", ctypes.c_int(dirfd), path.encode(), ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_load_bpf(program: bytes) -> None:
    """Install a classic-BPF seccomp filter (8 bytes per instruction) on the calling thread."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    prctl_ptr = libc().prctl
    _check(prctl_ptr(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog),
                     ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_SECCOMP)")


def mknod(path: str, mode: int, device: int) -> None:
    os.mknod(path, mode, device)


def execve(path: str, args: list[str], env: list[str]) -> None:
    """execve(2) with the environment as the exact list of strings (os.execve wants a mapping)."""
    argv = (ctypes.c_char_p * (len(args) + 1))(*[a.encode() for a in args], None)
    envp = (ctypes.c_char_p * (len(env) + 1))(*[e.encode() for e in env], None)
    libc().execve(path.encode(), argv, envp)
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), path)


KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6
KEY_USR_SEARCH = 0x00080000


def join_session_keyring(name: str) -> None:
    """A fresh session keyring for the container, searchable by its user (what runc does), so containers
    never share the keys of the session that started them."""
    ring = _syscall("keyctl", ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), name.encode())
    buf = ctypes.create_string_buffer(512)
    n = _syscall("keyctl", ctypes.c_int(KEYCTL_DESCRIBE), ctypes.c_int(ring), buf, ctypes.c_size_t(len(buf)))
    perm = int(buf.raw[: max(n - 1, 0)].split(b";")[3], 16)
    _syscall("keyctl", ctypes.c_int(KEYCTL_SETPERM), ctypes.c_int(ring), ctypes.c_uint(perm | KEY_USR_SEARCH))


CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls", "set_tid",
        "set_tid_size", "cgroup")]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """os.fork(), but the child is born in the cgroup v2 directory `cgroup_fd` (clone3 + CLONE_INTO_CGROUP).

    Why: moving a process later through cgroup.procs takes the kernel's global threadgroup rwsem for writing,
    which waits for an RCU grace period: ~10 ms, most of a container's start-up. Python's own fork
    bookkeeping (PyOS_BeforeFork/AfterFork_*) is done here as os.fork does; glibc's fork handlers are not,
    so callers must only use this from a single-threaded process (see `single_threaded`).
    Returns 0 in the child, the child's pid in the parent.
    """
    import signal as _signal

    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=int(_signal.SIGCHLD), cgroup=cgroup_fd)
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = _pylibc().syscall(ctypes.c_long(_NR["clone3"]), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid


_pylibc_handle: list[ctypes.PyDLL] = []


def _pylibc() -> ctypes.PyDLL:
    """libc through PyDLL: the GIL stays held across the call, as a fork must (the child inherits it)."""
    if not _pylibc_handle:
        lib = ctypes.PyDLL("libc.so.6", use_errno=True)
        lib.syscall.restype = ctypes.c_long
        _pylibc_handle.append(lib)
    return _pylibc_handle[0]


def single_threaded() -> bool:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Threads:"):
                return int(line.split()[1]) == 1
    return False

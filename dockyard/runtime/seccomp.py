"""seccomp: compile the spec's `linux.seccomp` with libseccomp (ctypes, loaded lazily) into a BPF program.

Compiling a Docker-sized profile costs milliseconds, so the exported program is cached: in memory for the
process (the monitor launches many containers), and on disk under a name derived from the profile and the
host architecture; a warm run only reads a few KiB and calls prctl. The
filter is installed by `syscalls.seccomp_load_bpf`, not by libseccomp's seccomp_load, so libseccomp never
sets no_new_privs behind the spec's back.

Semantics follow runc: unknown syscall names are skipped; a rule whose action equals the default action is
skipped; args with distinct indexes form one rule (AND), repeated indexes make one rule per arg (OR).
"""

from __future__ import annotations

import ctypes
import json
import os
import tempfile
import zlib
from functools import cache
from typing import Any

from dockyard.errors import HostError, InvalidArgument

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
EPERM = 1

_OPS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@cache
def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise HostError(f"seccomp profile given but libseccomp.so.2 cannot be loaded: {e}") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def action_value(name: str, errno_ret: int | None, default_errno: int = EPERM) -> int:
    if name == "SCMP_ACT_ERRNO":
        return ACT_ERRNO | ((errno_ret if errno_ret is not None else default_errno) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return ACT_TRACE | ((errno_ret if errno_ret is not None else default_errno) & 0xFFFF)
    simple = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
              "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
              "SCMP_ACT_ALLOW": ACT_ALLOW, "SCMP_ACT_LOG": ACT_LOG}
    try:
        return simple[name]
    except KeyError:
        raise InvalidArgument(f"seccomp: unsupported action {name!r}") from None


def _arch_token(name: str) -> bytes:
    return name.removeprefix("SCMP_ARCH_").lower().encode()


def compile_bpf(profile: dict[str, Any]) -> bytes:
    """Build the filter with libseccomp and return the exported BPF program."""
    lib = _lib()
    default = action_value(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise HostError("seccomp_init failed")
    try:
        for arch in profile.get("architectures") or ():
            token = lib.seccomp_arch_resolve_name(_arch_token(arch))
            if token == 0:
                raise InvalidArgument(f"seccomp: unknown architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -17:  # -EEXIST: the native arch is already in
                raise HostError(f"seccomp_arch_add({arch}): {os.strerror(-rc)}")
        for rule in profile.get("syscalls") or ():
            _add_rule(lib, ctx, rule, default)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _add_rule(lib: ctypes.CDLL, ctx: int, rule: dict[str, Any], default: int) -> None:
    action = action_value(rule.get("action", ""), rule.get("errnoRet"))
    if action == default:
        return
    args = rule.get("args") or []
    indexes = [a["index"] for a in args]
    groups = [args] if len(set(indexes)) == len(indexes) else [[a] for a in args]
    for name in rule.get("names") or ([rule["name"]] if rule.get("name") else []):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue  # unknown on this libseccomp/arch: runc skips these too
        for group in groups:
            cmps = (_ArgCmp * max(len(group), 1))()
            for i, a in enumerate(group):
                try:
                    op = _OPS[a["op"]]
                except KeyError:
                    raise InvalidArgument(f"seccomp: unknown operator {a.get('op')!r}") from None
                cmps[i] = _ArgCmp(a["index"], op, a.get("value", 0), a.get("valueTwo", 0))
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), cmps)
            if rc < 0:
                raise InvalidArgument(f"seccomp: cannot add rule for {name}: {os.strerror(-rc)}")


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    with tempfile.TemporaryFile() as f:
        rc = lib.seccomp_export_bpf(ctx, f.fileno())
        if rc < 0:
            raise HostError(f"seccomp_export_bpf: {os.strerror(-rc)}")
        f.seek(0)
        return f.read()


def cache_key(profile: dict[str, Any]) -> bytes:
    """The profile, canonical, and the architecture it is compiled for: what a cached program must match."""
    text = json.dumps(profile, sort_keys=True, separators=(",", ":"))
    return f"{os.uname().machine}\n{text}".encode()


_compiled: dict[bytes, bytes] = {}  # cache_key -> program, for this process


def program_for(profile: dict[str, Any], cache_dir: str | None) -> bytes:
    """The BPF program of a profile, from the caches when possible (the file written atomically).

    A cache file is named by a CRC of the key and holds the key itself before the program, so a name that two
    profiles share is a miss, never the wrong filter. (Not a hashlib digest: hashlib loads OpenSSL, ~2 MiB
    of resident memory in the monitor, which has no other use for it.)"""
    key = cache_key(profile)
    program = _compiled.get(key)
    if program is not None:
        return program
    if not cache_dir:
        program = _compiled[key] = compile_bpf(profile)
        return program
    path = os.path.join(cache_dir, f"{zlib.crc32(key):08x}-{len(key):x}.bpf")
    try:
        with open(path, "rb") as f:
            stored, _, program = f.read().partition(b"\0")
        if stored == key:
            _compiled[key] = program
            return program
    except FileNotFoundError:
        pass
    program = _compiled[key] = compile_bpf(profile)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    try:
        os.write(fd, key + b"\0" + program)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    return program

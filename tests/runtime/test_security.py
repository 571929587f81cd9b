"""The CVE lessons: no host binary or fd reachable from the container, paths resolved inside the rootfs."""

from __future__ import annotations

import os
import resource
import secrets
from pathlib import Path

import pytest

from dockyard.runtime import container
from dockyard.runtime.errors import InvalidArgument

from .conftest import Bundles, default_spec, new_id, run_ours


def test_no_leaked_fds_and_own_exe(bundles: Bundles, state_root: str, tmp_path: Path) -> None:
    # An inheritable fd in the runtime's process, the kind CVE-2024-21626 leaked into the container.
    marker = tmp_path / f"leak-marker-{secrets.token_hex(4)}"
    marker.mkdir()
    leaked = os.open(str(marker), os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(leaked, True)
    try:
        script = "ls -l /proc/1/fd /proc/self/fd; echo; readlink /proc/self/exe; readlink /proc/1/exe"
        result = run_ours(bundles.make(default_spec(["sh", "-c", script])), state_root)
    finally:
        os.close(leaked)
    assert "leak-marker" not in result.out and "/proc/1/fd" in result.out
    self_exe, init_exe = result.out.strip().split("\n")[-2:]
    assert self_exe == "/bin/busybox" and init_exe == "/bin/busybox"


def test_runtime_exe_not_reachable_while_created(bundles: Bundles, state_root: str, tmp_path: Path) -> None:
    """Before start, pid 1 is still the runtime's Python: it is non-dumpable, so /proc/1/exe is closed."""
    cid = new_id()
    with open(os.devnull, "r+b") as null:
        pid = container.create(cid, str(bundles.make(default_spec(["true"]))), state_root,
                               stdio=(null.fileno(),) * 3)
    out = tmp_path / "out"
    try:
        assert "python" in os.readlink(f"/proc/{pid}/exe")  # from the host, for the record
        proc = container.exec_defaults(cid, state_root, ["sh", "-c", "readlink /proc/1/exe; echo rc=$?; "
                                                         "ls /proc/1/fd 2>&1 | head -1; cat /proc/1/environ | wc -c"])
        with open(out, "wb") as f:
            epid = container.exec_process(cid, state_root, proc, stdio=(0, f.fileno(), f.fileno()))
            os.waitpid(epid, 0)
    finally:
        container.delete(cid, state_root, force=True)
        os.waitpid(pid, 0)
    text = out.read_text()
    assert "python" not in text
    assert "rc=1" in text and "Permission denied" in text


def test_cwd_symlink_resolves_inside_rootfs(bundles: Bundles, rootfs: Path, state_root: str) -> None:
    link = rootfs / f"escape-{secrets.token_hex(3)}"
    os.symlink("../../../../../../../../", link)
    try:
        spec = default_spec(["sh", "-c", "pwd -P; grep -c '^user:' passwd"], cwd=f"/{link.name}/etc")
        result = run_ours(bundles.make(spec), state_root)
    finally:
        link.unlink()
    assert result.out.split() == ["/etc", "1"]


def test_mount_target_symlink_stays_inside_rootfs(bundles: Bundles, rootfs: Path, state_root: str,
                                                  tmp_path: Path) -> None:
    host_target = Path("/tmp") / f"dyt-host-{secrets.token_hex(4)}"
    link = rootfs / f"evil-{secrets.token_hex(3)}"
    os.symlink(str(host_target), link)  # absolute: on the host it would point at host_target
    source = tmp_path / "vol"
    source.mkdir()
    (source / "marker").write_text("volume\n")
    mounts = [{"destination": f"/{link.name}", "type": "bind", "source": str(source), "options": ["rbind"]}]
    try:
        result = run_ours(bundles.make(default_spec(["cat", f"/{link.name}/marker"], mounts=mounts)), state_root)
        assert result.out == "volume\n"
        assert not host_target.exists()
        assert (rootfs / host_target.relative_to("/")).is_dir()  # created inside the rootfs instead
    finally:
        link.unlink()
        inside = rootfs / host_target.relative_to("/")
        if inside.exists():
            inside.rmdir()


def test_proc_on_symlink_refused(bundles: Bundles, rootfs: Path, state_root: str, tmp_path: Path) -> None:
    from .conftest import build_rootfs

    own_root = build_rootfs(tmp_path / "own-rootfs")
    os.rmdir(own_root / "proc")
    os.symlink("/tmp", own_root / "proc")
    spec = default_spec(["true"])
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec["root"]["path"] = str(own_root)
    from dockyard.runtime.spec import write_bundle

    write_bundle(str(bundle), spec)
    with pytest.raises(InvalidArgument, match="not a directory"):
        container.create(new_id(), str(bundle), state_root)


def test_rlimit_above_host_hard_limit_is_clamped(bundles: Bundles, state_root: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to exceed")
    ulimits = [{"type": "RLIMIT_NOFILE", "soft": hard * 4, "hard": hard * 4}]
    result = run_ours(bundles.make(default_spec(["sh", "-c", "ulimit -n; ulimit -Hn"], ulimits=ulimits)), state_root)
    assert result.out.split() == [str(hard), str(hard)]


def test_seccomp_program_is_cached(bundles: Bundles, state_root: str) -> None:
    cache = Path(state_root) / ".seccomp"
    run_ours(bundles.make(default_spec(["true"])), state_root)
    files = list(cache.glob("*.bpf"))
    assert files
    stamp = {f: f.stat().st_mtime_ns for f in files}
    run_ours(bundles.make(default_spec(["true"])), state_root)
    assert {f: f.stat().st_mtime_ns for f in files} == stamp


def test_seccomp_cache_file_must_hold_the_same_profile(tmp_path: Path) -> None:
    """A cache file is trusted only when the profile stored in it is the one asked for: two profiles whose
    file names meet get their own programs, never each other's."""
    from dockyard.runtime import seccomp

    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    compiled = seccomp.compile_bpf(profile)
    assert seccomp.program_for(profile, str(tmp_path)) == compiled
    (cached,) = tmp_path.glob("*.bpf")
    seccomp._compiled.clear()  # as in a new process: the file is all there is
    assert seccomp.program_for(profile, str(tmp_path)) == compiled
    other = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}
    cached.write_bytes(seccomp.cache_key(other) + b"\0" + seccomp.compile_bpf(other))  # a name collision
    seccomp._compiled.clear()
    assert seccomp.program_for(profile, str(tmp_path)) == compiled
    assert cached.read_bytes() == seccomp.cache_key(profile) + b"\0" + compiled  # and the file is fixed


def test_no_new_privileges_and_seccomp_mode(bundles: Bundles, state_root: str) -> None:
    result = run_ours(bundles.make(default_spec(["grep", "-E", "NoNewPrivs|Seccomp:", "/proc/self/status"],
                                                no_new_privileges=True, uid=1000, gid=1000)), state_root)
    assert "NoNewPrivs:\t1" in result.out and "Seccomp:\t2" in result.out

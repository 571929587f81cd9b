"""The same bundles under dockyard's runtime and the system runc: the process must see the same world."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import Bundles, default_spec, run_ours, run_runc

# What a process can observe about its container, printed in a stable form.
PROBE = r"""
echo "== id"; id
echo "== hostname"; hostname
echo "== status"; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
echo "== mounts"; awk '{ sep=0; for (i=7;i<=NF;i++) if ($i=="-") sep=i; print $5, $6, $(sep+1), $(sep+3) }' /proc/self/mountinfo
echo "== dev"; ls -l /dev | awk '{print $1, $3, $4, $5, $6, $NF}' | grep -v '^total'
echo "== ulimit"; ulimit -n; ulimit -Hn; ulimit -u
echo "== cwd"; pwd
echo "== env"; env | grep -v '^SHLVL=' | sort
echo "== umask"; umask
echo "== oom"; cat /proc/self/oom_score_adj
echo "== cgroup"; cat /proc/self/cgroup | sed 's/dyt-[0-9a-f]*/ID/'
echo "== rootfs write"; (touch /rootfs-probe && echo writable && rm /rootfs-probe) 2>&1 | sed 's/.*: //'
echo "== proc masks"; test -s /proc/keys && echo keys-visible || echo keys-masked; ls /sys/firmware | wc -l; (echo x > /proc/sys/kernel/domainname) 2>&1 | sed 's/.*: //'
"""


def normalize(text: str) -> str:
    text = re.sub(r"dyt-[0-9a-f]{12}", "ID", text)
    return text


def compare(bundles: Bundles, state_root: str, runc_root: Path, spec: dict) -> tuple[str, str]:
    bundle = bundles.make(spec)
    ours, theirs = run_ours(bundle, state_root), run_runc(bundle, runc_root)
    assert ours.code == theirs.code, f"exit codes differ: ours {ours.code}: {ours.out}\nrunc {theirs.code}: {theirs.out}"
    a, b = normalize(ours.out), normalize(theirs.out)
    assert a == b, _diff(a, b)
    return a, b


def _diff(a: str, b: str) -> str:
    import difflib

    return "ours vs runc:\n" + "\n".join(difflib.unified_diff(b.splitlines(), a.splitlines(), "runc", "ours", lineterm=""))


CASES = {
    "docker-default": {},
    "user-cwd-env-hostname": dict(uid=1000, gid=1000, additional_gids=[10, 65534], cwd="/home/user",
                                  env=["FOO=bar", "EMPTY=", "PATH=/bin"], hostname="probe-host", umask=0o027),
    "nobody": dict(uid=65534, gid=65534),
    "readonly-rootfs": dict(readonly_rootfs=True),
    "caps-drop-all-nnp": dict(cap_drop=["ALL"], no_new_privileges=True),
    "caps-add": dict(cap_add=["NET_ADMIN", "SYS_PTRACE"], cap_drop=["CHOWN", "MKNOD"]),
    "seccomp-unconfined": dict(seccomp="unconfined"),
    "rlimits": dict(ulimits=[{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
                             {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600}]),
    "shm-and-tmpfs": dict(shm_size=8 << 20, tmpfs={"/scratch": "size=1m,mode=1770"}),
    "cgroupns": dict(cgroupns=True),
    "oom-score-adj": dict(oom_score_adj=345),
    "privileged": dict(privileged=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_probe_matches_runc(name: str, bundles: Bundles, state_root: str, runc_root: Path) -> None:
    options = CASES[name]
    spec = default_spec(["sh", "-c", PROBE], **options)
    if name == "privileged":
        # Our runtime can't grant capabilities it lacks (CAP_SYS_RESOURCE here); runc fails outright then.
        from dockyard.runtime.capabilities import NAMES, current_permitted

        have = current_permitted()
        for kind in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"][kind] = [c for i, c in enumerate(NAMES) if have & (1 << i)]
    out, _ = compare(bundles, state_root, runc_root, spec)
    assert "== id" in out and "== env" in out


def test_resources_match_runc(bundles: Bundles, state_root: str, runc_root: Path) -> None:
    script = r"""
    cd /sys/fs/cgroup
    cat memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory/memory.soft_limit_in_bytes
    cat cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us
    cat cpuset/cpuset.cpus cpuset/cpuset.mems pids/pids.max
    sort devices/devices.list | grep -v '^c 10:200 '  # runc 1.1 adds /dev/net/tun; Docker and runc 1.2 don't
    """
    spec = default_spec(["sh", "-c", script], memory=64 << 20, memory_swap=128 << 20, memory_reservation=32 << 20,
                        cpus=0.5, cpu_shares=512, cpuset_cpus="0", cpuset_mems="0", pids_limit=42)
    out, _ = compare(bundles, state_root, runc_root, spec)
    lines = out.split()
    assert lines[:9] == [str(64 << 20), str(128 << 20), str(32 << 20), "512", "50000", "100000", "0", "0", "42"]


def test_exit_code_and_stderr_match(bundles: Bundles, state_root: str, runc_root: Path) -> None:
    compare(bundles, state_root, runc_root, default_spec(["sh", "-c", "echo err >&2; exit 7"]))


def test_default_seccomp_denies_like_runc(bundles: Bundles, state_root: str, runc_root: Path) -> None:
    script = "(unshare -n true) 2>&1 | sed 's/.*: //'; echo rc=$?; mkdir /tmp/allowed && rmdir /tmp/allowed && echo mkdir-ok"
    out, _ = compare(bundles, state_root, runc_root, default_spec(["sh", "-c", script]))
    assert "Operation not permitted" in out and "mkdir-ok" in out
    assert "Seccomp" not in out


def test_custom_seccomp_profile_errno(bundles: Bundles, state_root: str, runc_root: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    script = ("(mkdir /tmp/d) 2>&1 | sed 's/.*: //'; touch /tmp/f; (chmod 600 /tmp/f) 2>&1 | sed 's/.*: //'; "
              "grep Seccomp: /proc/self/status; echo done")
    out, _ = compare(bundles, state_root, runc_root, default_spec(["sh", "-c", script], seccomp=profile))
    assert "Operation not permitted" in out and "Permission denied" in out and "Seccomp:\t2" in out


def test_sysctl_and_bind_mounts_match(bundles: Bundles, state_root: str, runc_root: Path, tmp_path: Path) -> None:
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "hello").write_text("from host\n")
    host_file = tmp_path / "single.txt"
    host_file.write_text("one file\n")
    mounts = [
        {"destination": "/data", "type": "bind", "source": str(host_dir), "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/etc/single.txt", "type": "bind", "source": str(host_file), "options": ["bind", "rprivate"]},
        {"destination": "/new/deep/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "noexec"]},
    ]
    script = ("cat /data/hello /etc/single.txt; (touch /data/x) 2>&1 | sed 's/.*: //'; cat /proc/sys/net/ipv4/ip_forward;"
              "grep -E ' /(data|etc/single.txt|new/deep/dir) ' /proc/self/mountinfo | awk '{print $5, $6}'")
    spec = default_spec(["sh", "-c", script], mounts=mounts, sysctls={"net.ipv4.ip_forward": "1"})
    out, _ = compare(bundles, state_root, runc_root, spec)
    assert "from host" in out and "one file" in out and "Read-only file system" in out


def test_command_not_found_like_runc(bundles: Bundles, state_root: str, runc_root: Path) -> None:
    from dockyard.runtime.errors import CommandNotFound

    bundle = bundles.make(default_spec(["no-such-binary"]))
    theirs = run_runc(bundle, runc_root)
    assert theirs.code != 0 and "executable file not found" in theirs.out
    with pytest.raises(CommandNotFound, match="executable file not found"):
        run_ours(bundle, state_root)

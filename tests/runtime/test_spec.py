"""Spec generation with Docker's defaults, user resolution in the image, option parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument, NotFound
from dockyard.runtime import mounts, seccomp, seccomp_default, users
from dockyard.runtime.spec import DEFAULT_CAPS, MASKED_PATHS, SpecOptions, generate_spec


def test_docker_defaults() -> None:
    spec = generate_spec(SpecOptions(args=["sh"]))
    assert spec["process"]["capabilities"]["bounding"] == DEFAULT_CAPS and len(DEFAULT_CAPS) == 14
    assert spec["linux"]["maskedPaths"] == MASKED_PATHS
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert f"size={64 << 20}" in shm["options"]
    assert {n["type"] for n in spec["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount"}
    assert spec["process"]["env"][0].startswith("PATH=")
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_caps_add_drop_and_privileged() -> None:
    caps = generate_spec(SpecOptions(args=["sh"], cap_add=["net_admin"], cap_drop=["CAP_CHOWN"]))
    bounding = caps["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in bounding and "CAP_CHOWN" not in bounding
    assert generate_spec(SpecOptions(args=["sh"], cap_drop=["ALL"]))["process"]["capabilities"]["bounding"] == []
    priv = generate_spec(SpecOptions(args=["sh"], privileged=True))
    assert "seccomp" not in priv["linux"] and "maskedPaths" not in priv["linux"]
    assert "CAP_SYS_ADMIN" in priv["process"]["capabilities"]["bounding"]
    with pytest.raises(InvalidArgument):
        generate_spec(SpecOptions(args=["sh"], cap_add=["NOT_A_CAP"]))


def test_resources_and_docker_memory_semantics() -> None:
    res = generate_spec(SpecOptions(args=["sh"], memory=100, cpus=1.5, pids_limit=10, cpuset_cpus="0-1"))
    r = res["linux"]["resources"]
    assert r["memory"] == {"limit": 100, "swap": 200}  # docker: swap defaults to twice the memory
    assert r["cpu"] == {"period": 100000, "quota": 150000, "cpus": "0-1"}
    assert r["pids"] == {"limit": 10}
    with pytest.raises(InvalidArgument):
        generate_spec(SpecOptions(args=["sh"], memory=100, memory_swap=50))


def test_user_mount_replaces_default_destination() -> None:
    spec = generate_spec(SpecOptions(args=["sh"], tmpfs={"/dev/shm": "size=1m"}))
    shms = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert len(shms) == 1 and "size=1m" in shms[0]["options"]


def test_seccomp_profile_by_capability() -> None:
    default = seccomp_default.profile(DEFAULT_CAPS, "x86_64")
    allowed = set(default["syscalls"][0]["names"])
    assert "mount" not in allowed and "read" in allowed and "arch_prctl" in allowed
    admin = seccomp_default.profile(DEFAULT_CAPS + ["CAP_SYS_ADMIN"], "x86_64")
    assert "mount" in admin["syscalls"][0]["names"]
    assert not any(r["names"] == ["clone3"] for r in admin["syscalls"])
    assert len(seccomp.compile_bpf(default)) % 8 == 0


def test_docker_format_profile_file(tmp_path: Path) -> None:
    import json

    profile = {"defaultAction": "SCMP_ACT_ERRNO",
               "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile))
    spec = generate_spec(SpecOptions(args=["sh"], seccomp=str(path)))
    names = [n for r in spec["linux"]["seccomp"]["syscalls"] for n in r["names"]]
    assert names == ["read"]
    if os.uname().machine == "x86_64":
        assert spec["linux"]["seccomp"]["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]


def test_mount_option_parsing() -> None:
    o = mounts.parse_options(["rbind", "ro", "nosuid", "rprivate", "size=1m", "rw", "exec"])
    assert o.is_bind and o.flags & mounts.sc.MS_REC and not o.flags & mounts.sc.MS_RDONLY
    assert o.data == ["size=1m"] and o.propagation == [mounts.sc.MS_PRIVATE | mounts.sc.MS_REC]


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "img"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001:App:/srv/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:app,other\napp:x:1001:\naudio:x:29:app\n")
    return root


def test_resolve_users(image_root: Path) -> None:
    u = users.resolve(str(image_root), "app")
    assert (u.uid, u.gid, u.additional_gids, u.home) == (1000, 1001, [50, 29], "/srv/app")
    assert users.resolve(str(image_root), "app:staff").gid == 50
    assert users.resolve(str(image_root), "1000:7").gid == 7
    anon = users.resolve(str(image_root), "4242")
    assert (anon.uid, anon.gid, anon.home) == (4242, 0, "/")
    with pytest.raises(NotFound):
        users.resolve(str(image_root), "ghost")
    with pytest.raises(InvalidArgument):
        users.resolve(str(image_root), str(2**32))


def test_resolve_users_never_reads_host_files(image_root: Path) -> None:
    (image_root / "etc" / "passwd").unlink()
    os.symlink("/etc/passwd", image_root / "etc" / "passwd")  # the host's, if followed naively
    with pytest.raises(NotFound):
        users.resolve(str(image_root), "daemon")  # in the host's passwd, not the image's


def test_sysctls_only_in_private_namespaces() -> None:
    from dockyard.runtime.namespaces import Plan, check_sysctls

    private = Plan.from_spec([{"type": t} for t in ("network", "ipc", "uts", "mount")])
    check_sysctls({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "10"}, private)
    with pytest.raises(InvalidArgument, match="not in a separate kernel namespace"):
        check_sysctls({"kernel.panic": "1"}, private)
    no_net = Plan.from_spec([{"type": "mount"}])
    with pytest.raises(InvalidArgument, match="private network"):
        check_sysctls({"net.ipv4.ip_forward": "1"}, no_net)
    host_net = Plan.from_spec([{"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}])
    with pytest.raises(InvalidArgument, match="host's network"):
        check_sysctls({"net.ipv4.ip_forward": "1"}, host_net)


def test_cgroup_v2_values_on_a_fake_tree(tmp_path: Path) -> None:
    """cgroup v2 can't be exercised on this hybrid host; check the v1->v2 translations on plain files."""
    from dockyard.runtime import cgroups

    root = tmp_path / "cg"
    d = root / "dyt" / "c1"
    d.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids cpuset\n")
    names = ("memory.max", "memory.swap.max", "memory.low", "cpu.weight", "cpu.max", "pids.max", "cpuset.cpus",
             "cpuset.mems")
    for name in names:
        (d / name).write_text("")
    for p in (root, root / "dyt"):
        (p / "cgroup.subtree_control").write_text("")
    h = cgroups.Hierarchy(str(root), 2, frozenset(), "/")
    cgroups._apply_v2(str(d), h, {
        "memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 50 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 0},
    })
    got = {name: (d / name).read_text() for name in names}
    assert got["memory.max"] == str(100 << 20)
    assert got["memory.swap.max"] == str(200 << 20)  # v2 counts swap alone; the spec counts memory+swap
    assert got["memory.low"] == str(50 << 20)
    assert got["cpu.weight"] == "39"  # 1 + (1024-2)*9999/262142, runc's conversion
    assert got["cpu.max"] == "50000 100000"
    assert got["pids.max"] == "max"
    assert got["cpuset.cpus"] == "0"
    assert (root / "dyt" / "cgroup.subtree_control").read_text() == "+cpuset"  # last write wins on a plain file


def test_cgroup_paths() -> None:
    from dockyard.runtime import cgroups

    v1 = cgroups.Hierarchy("/sys/fs/cgroup/memory", 1, frozenset({"memory"}), "/")
    dirs = cgroups.resolve_paths("/dockyard/c1", "c1", [v1])
    assert dirs == {"/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/dockyard/c1"}
    assert cgroups._systemd_style("machine.slice:libpod:abc") == "/machine.slice/libpod-abc.scope"
    with pytest.raises(InvalidArgument):
        cgroups.resolve_paths("/a/../../etc", "c1", [v1])

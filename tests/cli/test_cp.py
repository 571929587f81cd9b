"""`dockyard cp` as a user runs it: Docker's path rules, streams, ownership, links, and the escapes."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, REPO, cli_env


def mountinfo(root: Path) -> list[str]:
    """The host's mounts that involve this test's store (other tests may mount and unmount meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(line for line in f.read().splitlines() if str(root) in line)


def host_marker() -> str:
    return f"dockyard-escape-{os.urandom(6).hex()}"


def files(dy: CLI, container: str, path: str) -> list[str]:
    """What a container path holds, read back with `cp C:path -`."""
    data = dy("cp", f"{container}:{path}", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(tar.getnames())


def content(dy: CLI, container: str, path: str) -> bytes:
    data = dy("cp", f"{container}:{path}", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        assert member is not None
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text("hello\n")
    (tmp_path / "src" / "sub" / "b.txt").write_text("deep\n")
    return tmp_path / "src"


@pytest.fixture(params=["running", "stopped"])
def ctr(request, dy, busybox) -> str:
    if request.param == "running":
        dy("run", "-d", "--name", "ctr", "busybox", "sleep", "1000")
    else:
        dy("create", "--name", "ctr", "busybox", "true")
    return "ctr"


def test_into_container_path_rules(dy, ctr, src):
    dy("cp", str(src / "a.txt"), f"{ctr}:/tmp/")  # file into an existing directory
    dy("cp", str(src / "a.txt"), f"{ctr}:/tmp/renamed.txt")  # file to a new name
    dy("cp", str(src), f"{ctr}:/tmp/newdir")  # a directory to a new name: its content under that name
    dy("cp", str(src), f"{ctr}:/tmp/newdir")  # into the now existing directory: the directory itself
    dy("cp", f"{src}/.", f"{ctr}:/tmp/content")  # dir/. : the content
    assert files(dy, ctr, "/tmp") == sorted([
        "tmp", "tmp/a.txt", "tmp/renamed.txt", "tmp/newdir", "tmp/newdir/a.txt", "tmp/newdir/sub",
        "tmp/newdir/sub/b.txt", "tmp/newdir/src", "tmp/newdir/src/a.txt", "tmp/newdir/src/sub",
        "tmp/newdir/src/sub/b.txt", "tmp/content", "tmp/content/a.txt", "tmp/content/sub",
        "tmp/content/sub/b.txt"])
    assert content(dy, ctr, "/tmp/renamed.txt") == b"hello\n"
    dy("cp", str(src / "sub" / "b.txt"), f"{ctr}:/tmp/a.txt")  # an existing file is overwritten
    assert content(dy, ctr, "/tmp/a.txt") == b"deep\n"

    bad = dy("cp", str(src), f"{ctr}:/tmp/a.txt", check=False)  # a directory onto a file
    assert bad.returncode == 1 and b"cannot copy directory" in bad.stderr
    missing_parent = dy("cp", str(src / "a.txt"), f"{ctr}:/nowhere/x", check=False)
    assert missing_parent.returncode == 1
    assert missing_parent.stderr == b"Error: No such container:path: ctr:/nowhere\n"
    no_container = dy("cp", str(src / "a.txt"), "nosuch:/tmp", check=False)
    assert no_container.returncode == 1 and no_container.stderr == b"Error: No such container:path: nosuch:/tmp\n"
    no_source = dy("cp", str(src / "nope"), f"{ctr}:/tmp/", check=False)
    assert no_source.returncode == 1 and b"no such file or directory" in no_source.stderr
    device = dy("cp", str(src / "a.txt"), f"{ctr}:/dev/null", check=False)
    if ctr and device.returncode != 0:
        assert b"must be a directory or a regular file" in device.stderr


def test_out_of_container_path_rules(dy, ctr, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dy("cp", f"{ctr}:/etc/passwd", str(out / "p"))
    assert (out / "p").read_text().startswith("root:")
    dy("cp", f"{ctr}:/etc/passwd", str(out))
    assert (out / "passwd").exists()
    dy("cp", f"{ctr}:/etc", str(out / "etc-copy"))
    assert (out / "etc-copy" / "group").exists()
    dy("cp", f"{ctr}:/etc", str(out / "etc-copy"))
    assert (out / "etc-copy" / "etc" / "group").exists()
    dy("cp", f"{ctr}:/etc/.", str(out / "etc-content"))
    assert (out / "etc-content" / "passwd").exists()
    missing = dy("cp", f"{ctr}:/nosuch", str(out), check=False)
    assert missing.returncode == 1 and missing.stderr == b"Error: No such container:path: ctr:/nosuch\n"
    no_parent = dy("cp", f"{ctr}:/etc/passwd", str(tmp_path / "a" / "b"), check=False)
    assert no_parent.returncode == 1 and b"no such file or directory" in no_parent.stderr
    onto_file = dy("cp", f"{ctr}:/etc", str(out / "p"), check=False)
    assert onto_file.returncode == 1 and b"cannot copy directory" in onto_file.stderr
    no_dir = dy("cp", f"{ctr}:/etc/passwd", str(out / "newdir") + "/", check=False)
    assert no_dir.returncode == 1
    both = dy("cp", f"{ctr}:/a", f"{ctr}:/b", check=False)
    assert both.returncode == 1 and b"copying between containers is not supported" in both.stderr
    neither = dy("cp", str(out), str(tmp_path), check=False)
    assert neither.returncode == 1 and b"must specify at least one container source" in neither.stderr


def test_tar_streams(dy, ctr, src):
    data = dy("cp", f"{ctr}:/etc", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "etc/passwd" in tar.getnames()
    stream = subprocess.run(["tar", "-C", str(src), "-cf", "-", "."], capture_output=True, check=True).stdout
    dy("cp", "-", f"{ctr}:/tmp", input=stream)
    assert "tmp/sub/b.txt" in files(dy, ctr, "/tmp")
    not_dir = dy("cp", "-", f"{ctr}:/etc/passwd", input=stream, check=False)
    assert not_dir.returncode == 1 and b"must be a directory" in not_dir.stderr
    import gzip

    dy("cp", "-", f"{ctr}:/root", input=gzip.compress(stream))  # compressed streams are fine too
    assert "root/a.txt" in files(dy, ctr, "/root")


def test_ownership_with_and_without_archive(dy, ctr, src, tmp_path):
    os.chown(src / "a.txt", 1234, 5678)
    dy("cp", str(src / "a.txt"), f"{ctr}:/tmp/plain")
    dy("cp", "-a", str(src / "a.txt"), f"{ctr}:/tmp/archived")
    owners = {}
    with tarfile.open(fileobj=io.BytesIO(dy("cp", f"{ctr}:/tmp", "-").stdout)) as tar:
        for member in tar.getmembers():
            owners[member.name] = (member.uid, member.gid)
    assert owners["tmp/plain"] == (0, 0) and owners["tmp/archived"] == (1234, 5678)
    # Out of the container: the invoking user's, unless -a keeps the container's owners.
    dy("cp", f"{ctr}:/tmp/archived", str(tmp_path / "mine"))
    dy("cp", "-a", f"{ctr}:/tmp/archived", str(tmp_path / "kept"))
    assert (os.stat(tmp_path / "mine").st_uid, os.stat(tmp_path / "kept").st_uid) == (os.geteuid(), 1234)


def test_follow_link(dy, busybox, tmp_path):
    dy("run", "--name", "links", "busybox", "sh", "-c", "ln -s /etc/passwd /tmp/pw && ln -s /etc /tmp/etcdir")
    dy("cp", "links:/tmp/pw", str(tmp_path / "link"))
    assert os.path.islink(tmp_path / "link") and os.readlink(tmp_path / "link") == "/etc/passwd"
    dy("cp", "-L", "links:/tmp/pw", str(tmp_path / "followed"))
    assert not os.path.islink(tmp_path / "followed")
    assert (tmp_path / "followed").read_text().startswith("root:")
    dy("cp", "-L", "links:/tmp/etcdir", str(tmp_path / "etcdir"))
    assert (tmp_path / "etcdir" / "group").exists()
    # Local side: -L follows a symlink in SRC_PATH, without it the link itself is copied.
    (tmp_path / "target.txt").write_text("target\n")
    os.symlink(tmp_path / "target.txt", tmp_path / "local-link")
    dy("cp", str(tmp_path / "local-link"), "links:/tmp/as-link")
    dy("cp", "-L", str(tmp_path / "local-link"), "links:/tmp/as-file")
    with tarfile.open(fileobj=io.BytesIO(dy("cp", "links:/tmp", "-").stdout)) as tar:
        assert tar.getmember("tmp/as-link").issym() and tar.getmember("tmp/as-file").isfile()


def test_escape_through_container_symlinks(dy, busybox, tmp_path):
    """A container's /tmp/evil -> /etc must not let cp write the host's /etc, nor read it."""
    dy("run", "-d", "--name", "evil", "busybox", "sh", "-c",
       "ln -s /etc /tmp/evil && ln -s ../../../../../../etc /tmp/rel && exec sleep 1000")
    for _ in range(100):
        if dy("exec", "evil", "test", "-L", "/tmp/rel", check=False).returncode == 0:
            break
        time.sleep(0.05)
    for target in ("evil:/tmp/evil/", "evil:/tmp/rel/", "evil:/tmp/evil"):
        name = host_marker()
        (tmp_path / name).write_text("pwned\n")
        dy("cp", str(tmp_path / name), target)
        assert not os.path.exists(f"/etc/{name}")
        assert content(dy, "evil", f"/etc/{name}") == b"pwned\n"
    dy("cp", "evil:/tmp/evil/.", str(tmp_path / "got"))
    assert (tmp_path / "got" / "passwd").exists() and not (tmp_path / "got" / "os-release").exists()
    leak = dy("cp", "-L", "evil:/tmp/rel/shadow", str(tmp_path / "shadow"), check=False)
    assert leak.returncode == 1 and not (tmp_path / "shadow").exists()


def test_hostile_stdin_tar_stays_in_the_container(dy, ctr):
    name = host_marker()
    for entries in ([(f"../../../../../../etc/{name}", b"x")], [(f"/../../etc/{name}", b"x")]):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for entry, data in entries:
                info = tarfile.TarInfo(entry)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        dy("cp", "-", f"{ctr}:/tmp", input=buf.getvalue(), check=False)
        assert not os.path.exists(f"/etc/{name}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
        info = tarfile.TarInfo(f"l/{name}")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    dy("cp", "-", f"{ctr}:/tmp", input=buf.getvalue(), check=False)
    assert not os.path.exists(f"/etc/{name}")


def test_device_nodes_are_not_made_on_the_host(dy, busybox, tmp_path):
    dy("run", "--name", "dev", "busybox", "sh", "-c", "mknod /tmp/disk b 8 0 && echo ok > /tmp/ok")
    result = dy("cp", "dev:/tmp", str(tmp_path / "out"))
    assert (tmp_path / "out" / "ok").exists() and not (tmp_path / "out" / "disk").exists()
    assert b"skipping device node" in result.stderr


def test_stopped_container_cp_leaves_no_mount(dy, busybox, src, tmp_path):
    dy("run", "--name", "st", "-v", "stvol:/data", "busybox", "sh", "-c", "echo before > /data/v")
    before = mountinfo(dy.root)
    dy("cp", str(src), "st:/tmp/")
    dy("cp", "st:/tmp/src", str(tmp_path / "back"))
    dy("cp", "st:/etc/passwd", "-")
    dy("cp", str(src / "a.txt"), "st:/data/")  # a volume of the stopped container
    dy("diff", "st")
    assert mountinfo(dy.root) == before
    assert (tmp_path / "back" / "sub" / "b.txt").read_text() == "deep\n"
    assert sorted(os.listdir(dy.root / "volumes" / "stvol" / "_data")) == ["a.txt", "v"]
    # Even a cp killed in the middle leaves nothing mounted: the mount only ever lived in its fds.
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), "cp", "-", "st:/tmp"],
                            stdin=subprocess.PIPE, cwd=REPO, env=cli_env())
    assert proc.stdin is not None
    proc.stdin.write(b"\0" * 100)  # not a whole tar header yet: cp sits reading with its mount open
    proc.stdin.flush()
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert mountinfo(dy.root) == before
    out = dy("start", "-a", "st").stdout  # and the container still starts, with what was copied
    assert out == b""
    assert "tmp/src/a.txt" in files(dy, "st", "/tmp")


def test_start_waits_for_cp_into_a_stopped_container(dy, busybox):
    """While cp writes into a stopped container's layer, starting it is refused, not raced."""
    dy("create", "--name", "busy", "busybox", "sleep", "1000")
    record_id = dy.out("inspect", "-f", "{{.Id}}", "busy").strip()
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), "cp", "-", "busy:/tmp"],
                            stdin=subprocess.PIPE, cwd=REPO, env=cli_env())
    lock = dy.root / "containers" / record_id / ".rootfs.lock"
    deadline = time.monotonic() + 10
    while True:  # wait until cp holds the lock
        if lock.exists():
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                break
            finally:
                os.close(fd)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = dy("start", "busy", check=False)
    assert started.returncode != 0 and b"busy" in started.stderr
    assert proc.stdin is not None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("copied")
        tar.addfile(info, io.BytesIO(b""))
    proc.stdin.write(buf.getvalue())
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    dy("start", "busy")
    assert "tmp/copied" in files(dy, "busy", "/tmp")


def test_cp_into_volume_of_running_container(dy, busybox, src):
    dy("run", "-d", "--name", "vol", "-v", "cpvol:/data", "busybox", "sleep", "1000")
    dy("cp", str(src / "a.txt"), "vol:/data/")
    assert (dy.root / "volumes" / "cpvol" / "_data" / "a.txt").read_text() == "hello\n"
    assert dy.out("exec", "vol", "cat", "/data/a.txt") == "hello\n"


def test_stopped_container_sees_its_etc_files(dy, busybox):
    dy("run", "--name", "etc", "--hostname", "myhost", "busybox", "true")
    assert content(dy, "etc", "/etc/hostname") == b"myhost\n"
    assert b"localhost" in content(dy, "etc", "/etc/hosts")

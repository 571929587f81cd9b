"""Files in and out of containers at the engine level: archive operations, escapes, changes, commit layers.

Every escape here was a CVE in a trusted engine: a symlink in the container that points at the host's /etc, a
tar whose names climb out of the destination, a hard link to a file outside, a device node handed to the host.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from dockyard.engine import container_fs
from dockyard.engine.container_changes import container_changes
from dockyard.engine.fs_untar import ExtractOptions, extract
from dockyard.errors import InvalidArgument, NotFound, UnsafeLayer


def host_marker() -> str:
    """A file name nothing on this host has, for checking that nothing landed in the host's /etc."""
    return f"dockyard-escape-{os.urandom(6).hex()}"


def tar_of(*entries: tuple) -> io.BytesIO:
    """A tar from (name, kind, payload): kind 'file' (payload bytes), 'dir', 'symlink' or 'link' (payload target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
            if kind == "dir":
                info.mode = 0o755
            else:
                info.linkname = payload
            tar.addfile(info)
    buf.seek(0)
    return buf


def names_in(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def read_from(engine, name: str, path: str) -> bytes:
    """The content of a regular file in the container, through the archive operation."""
    out = io.BytesIO()
    container_fs.get_archive(engine, engine.containers.get(name), path, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        member = tar.next()
        assert member is not None and member.isfile()
        data = tar.extractfile(member)
        assert data is not None
        return data.read()


@pytest.fixture(params=["running", "stopped"])
def container(request, dy, busybox, engine) -> str:
    """A container with planted symlinks to the host's /etc, running or stopped."""
    setup = ("ln -s /etc /tmp/abs-etc && ln -s ../../../../../../../etc /tmp/rel-etc && "
             "ln -s /etc/shadow /tmp/shadow && mkdir /tmp/dir && echo inside > /tmp/dir/file && "
             "echo marker-in-container >> /etc/passwd")
    if request.param == "running":
        dy("run", "-d", "--name", "ctr", "busybox", "sh", "-c", setup + " && exec sleep 1000")
        import time

        deadline = time.monotonic() + 10
        while b"marker-in-container" not in dy("exec", "ctr", "cat", "/etc/passwd", check=False).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    else:
        dy("run", "--name", "ctr", "busybox", "sh", "-c", setup)
    return "ctr"


def test_stat_get_and_put(engine, container):
    record = engine.containers.get(container)
    st = container_fs.stat_path(engine, record, "/tmp/dir")
    assert st.is_dir and st.name == "dir"
    link = container_fs.stat_path(engine, record, "/tmp/abs-etc")
    assert link.is_symlink and link.link_target == "/etc"
    assert container_fs.stat_path(engine, record, "/tmp/rel-etc").link_target == "/etc"
    with pytest.raises(NotFound):
        container_fs.stat_path(engine, record, "/nowhere")
    out = io.BytesIO()
    container_fs.get_archive(engine, record, "/tmp/dir", out)
    assert names_in(out.getvalue()) == ["dir", "dir/file"]
    out = io.BytesIO()
    container_fs.get_archive(engine, record, "/tmp/dir/.", out)
    assert sorted(names_in(out.getvalue())) == [".", "./file"]
    written = container_fs.put_archive(engine, record, "/tmp/dir", tar_of(("new", "file", b"abc")))
    assert written == 3
    assert read_from(engine, container, "/tmp/dir/new") == b"abc"


def test_symlink_to_etc_never_reaches_the_host(engine, container):
    """cp into /tmp/abs-etc/ or /tmp/rel-etc/ writes the container's /etc, never the host's."""
    record = engine.containers.get(container)
    for link in ("/tmp/abs-etc", "/tmp/rel-etc", "/tmp/abs-etc/", "/tmp/rel-etc/."):
        name = host_marker()
        container_fs.put_archive(engine, record, link, tar_of((name, "file", b"pwned")))
        assert not os.path.exists(f"/etc/{name}")
        assert read_from(engine, container, f"/etc/{name}") == b"pwned"


def test_reading_through_symlinks_reads_the_container(engine, container):
    record = engine.containers.get(container)
    out = io.BytesIO()
    container_fs.get_archive(engine, record, "/tmp/abs-etc/.", out)
    names = names_in(out.getvalue())
    assert "./passwd" in names and "./os-release" not in names  # the container's /etc, not the host's
    assert b"marker-in-container" in read_from(engine, container, "/tmp/rel-etc/passwd")
    # Following /tmp/shadow must look for the container's /etc/shadow (busybox has none), not the host's.
    assert os.path.exists("/etc/shadow")
    with pytest.raises(NotFound):
        container_fs.get_archive(engine, record, "/tmp/shadow", io.BytesIO(), follow=True)
    out = io.BytesIO()
    container_fs.get_archive(engine, record, "/tmp/shadow", out)  # without -L: the link itself
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        member = tar.next()
        assert member is not None and member.issym() and member.linkname == "/etc/shadow"


def test_hostile_tars_stay_inside_the_destination(engine, container):
    record = engine.containers.get(container)
    name = host_marker()
    with pytest.raises(UnsafeLayer):
        container_fs.put_archive(engine, record, "/tmp/dir", tar_of((f"../../../../../../etc/{name}", "file", b"x")))
    with pytest.raises(UnsafeLayer):
        container_fs.put_archive(engine, record, "/tmp/dir", tar_of(("h", "link", "../../../../../../etc/passwd")))
    # A symlink planted by the tar itself, then a file "through" it.
    try:
        container_fs.put_archive(engine, record, "/tmp/dir",
                                 tar_of(("s", "symlink", "/etc"), (f"s/{name}", "file", b"x")))
    except (InvalidArgument, OSError):
        pass  # refusing is fine; writing outside is not
    assert not os.path.exists(f"/etc/{name}")
    # An absolute name is taken below the destination, as Docker does.
    container_fs.put_archive(engine, record, "/tmp/dir", tar_of((f"/etc/{name}", "file", b"abs")))
    assert not os.path.exists(f"/etc/{name}")
    assert read_from(engine, container, f"/tmp/dir/etc/{name}") == b"abs"


def test_no_overwrite_dir_with_file(engine, container):
    record = engine.containers.get(container)
    from dockyard.errors import Conflict

    with pytest.raises(Conflict, match="cannot overwrite directory"):
        container_fs.put_archive(engine, record, "/tmp", tar_of(("dir", "file", b"x")))
    with pytest.raises(Conflict, match="cannot overwrite non-directory"):
        container_fs.put_archive(engine, record, "/tmp/dir", tar_of(("file", "dir", None)))


def test_host_side_extraction_is_confined(tmp_path):
    """What comes out of a container is extracted under the destination only, whatever its symlinks say."""
    dest = tmp_path / "dest"
    dest.mkdir()
    name = host_marker()
    root = os.open(dest, os.O_PATH | os.O_DIRECTORY)
    try:
        try:
            extract(tar_of(("s", "symlink", "/etc"), (f"s/{name}", "file", b"x")), root, "",
                    ExtractOptions(owner=(0, 0), devices=False))
        except (InvalidArgument, OSError):
            pass
        with pytest.raises(UnsafeLayer):
            extract(tar_of(("h", "link", "../../etc/passwd")), root, "", ExtractOptions(devices=False))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("disk")
            info.type, info.devmajor, info.devminor, info.mode = tarfile.BLKTYPE, 8, 0, 0o666
            tar.addfile(info)
        buf.seek(0)
        result = extract(buf, root, "", ExtractOptions(devices=False))
        assert result.skipped == ["disk"] and not (dest / "disk").exists()
    finally:
        os.close(root)
    assert not os.path.exists(f"/etc/{name}")


def test_changes_in_docker_order(dy, busybox, engine):
    dy("run", "--name", "dd", "busybox", "sh", "-c",
       "echo x > /tmp/new && rm /bin/ls && echo y >> /etc/group && mkdir -p /root/a/b && touch /root/a/b/c")
    changes = [(c["Kind"], c["Path"]) for c in container_changes(engine, engine.containers.get("dd"))]
    assert changes == [(0, "/bin"), (2, "/bin/ls"), (0, "/etc"), (0, "/etc/group"), (0, "/root"),
                       (1, "/root/a"), (1, "/root/a/b"), (1, "/root/a/b/c"), (0, "/tmp"), (1, "/tmp/new")]
    # A container that changed nothing shows nothing: the files the runtime made for its mounts don't count.
    dy("run", "--name", "quiet", "busybox", "true")
    assert container_changes(engine, engine.containers.get("quiet")) == []


def test_export_has_the_merged_tree(dy, busybox, engine):
    dy("run", "--name", "ee", "busybox", "sh", "-c", "echo hi > /hello && rm /bin/ls")
    out = io.BytesIO()
    container_fs.export(engine, engine.containers.get("ee"), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        hello = tar.extractfile("hello")
        assert hello is not None and hello.read() == b"hi\n"
        mode = tar.getmember("bin/busybox").mode
    assert "bin/ls" not in names and "bin/sh" in names and stat.S_IMODE(mode) & 0o111


def test_hard_links_both_ways(engine, container, tmp_path):
    record = engine.containers.get(container)
    container_fs.put_archive(engine, record, "/tmp/dir", tar_of(("f", "file", b"same"), ("g", "link", "f")))
    out = io.BytesIO()
    container_fs.get_archive(engine, record, "/tmp/dir", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    first, second = sorted(("dir/f", "dir/g"), key=lambda n: members[n].islnk())
    assert members[first].isfile() and members[second].islnk() and members[second].linkname == first
    root = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        extract(io.BytesIO(out.getvalue()), root, "", ExtractOptions(owner=(0, 0), devices=False))
    finally:
        os.close(root)
    assert os.stat(tmp_path / "dir" / "f").st_ino == os.stat(tmp_path / "dir" / "g").st_ino
    assert (tmp_path / "dir" / "g").read_bytes() == b"same"

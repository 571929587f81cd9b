"""The layer extractor against real files: every entry type, whiteouts, and every way out of the root."""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile

import pytest

from dockyard.errors import UnsafeLayer
from dockyard.image.layer_apply import ApplyOptions, apply_layer
from tests.image.layertar import LayerTar

VFS = ApplyOptions(overlay_whiteouts=False)


def apply(data: bytes, root, options=None, seekable=False):
    if seekable:
        path = root.parent / "layer.tar"
        path.write_bytes(data)
        with open(path, "rb") as f:
            return apply_layer(f, str(root), options, seekable=True)
    return apply_layer(io.BytesIO(data), str(root), options)


@pytest.fixture
def target(tmp_path):
    t = tmp_path / "target"
    t.mkdir()
    return t


@pytest.mark.parametrize("seekable", [False, True])
def test_every_entry_type_with_metadata(target, seekable):
    layer = (LayerTar()
             .dir("etc", mode=0o750, uid=12, gid=34, mtime=1_500_000_000)
             .file("etc/passwd", b"root:x:0:0\n", mode=0o600, uid=1000, gid=1001, mtime=1_400_000_000)
             .file("bin/su", b"\x7fELF", mode=0o4755)
             .symlink("etc/localtime", "/usr/share/zoneinfo/UTC", uid=5, gid=6)
             .symlink("escape", "../../../../etc/shadow")
             .hardlink("etc/passwd-", "etc/passwd")
             .hardlink("etc/abs-link", "/etc/passwd")
             .chardev("dev/null", 1, 3, mode=0o666)
             .blockdev("dev/loop0", 7, 0, mode=0o660)
             .fifo("run/fifo", mode=0o620)
             .bytes())
    result = apply(layer, target, seekable=seekable)
    st = os.lstat(target / "etc")
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (12, 34)
    assert st.st_mtime == 1_500_000_000  # directory times are set last
    st = os.lstat(target / "etc/passwd")
    assert (target / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert st.st_mtime == 1_400_000_000 and st.st_nlink == 3
    assert stat.S_IMODE(os.lstat(target / "bin/su").st_mode) == 0o4755  # setuid survives chown
    assert os.readlink(target / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert os.lstat(target / "etc/localtime").st_uid == 5
    assert os.readlink(target / "escape") == "../../../../etc/shadow"  # stored, never followed
    assert os.lstat(target / "etc/passwd-").st_ino == os.lstat(target / "etc/passwd").st_ino
    assert os.lstat(target / "etc/abs-link").st_ino == os.lstat(target / "etc/passwd").st_ino
    dev = os.lstat(target / "dev/null")
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert stat.S_ISBLK(os.lstat(target / "dev/loop0").st_mode)
    assert stat.S_ISFIFO(os.lstat(target / "run/fifo").st_mode)
    assert result.size == len(b"root:x:0:0\n") + 4


def test_xattrs_are_applied_and_overlay_ones_refused(target):
    info = tarfile.TarInfo("f")
    # VFS_CAP_REVISION_2 with the effective bit, granting cap_net_bind_service (10).
    capability = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
    info.pax_headers = {"SCHILY.xattr.user.note": "hello",
                        "SCHILY.xattr.security.capability": capability.decode("utf-8", "surrogateescape")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    apply(buf.getvalue(), target)
    assert os.getxattr(target / "f", "user.note") == b"hello"
    assert os.getxattr(target / "f", "security.capability") == capability

    info = tarfile.TarInfo("g")
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnsafeLayer, match="reserved xattr"):
        apply(buf.getvalue(), target)


@pytest.mark.parametrize("layer, message", [
    (LayerTar().file("../evil", b"x"), "'..'"),
    (LayerTar().file("a/../../evil", b"x"), "'..'"),
    (LayerTar().file("/etc/evil", b"x"), "absolute path"),
    (LayerTar().symlink("link", "/").file("link/evil", b"x"), "symlink"),
    (LayerTar().symlink("link", "..").file("link/evil", b"x"), "symlink"),
    (LayerTar().dir("d").symlink("d/up", "../..").file("d/up/x/evil", b"x"), "symlink"),
    (LayerTar().symlink("link", "/tmp").dir("link/sub"), "symlink"),
    (LayerTar().hardlink("h", "../../etc/passwd"), "outside the layer root"),
    (LayerTar().symlink("link", "/etc").hardlink("h", "link/passwd"), "symlink"),
    (LayerTar().file("plain", b"x").file("plain/child", b"y"), "not a directory"),
    (LayerTar().file(".wh.", b""), "malformed whiteout"),
    (LayerTar().file("a/.wh..", b""), "malformed whiteout"),
    (LayerTar().file("f", b"", uid=2**32 - 1), "uid"),
])
@pytest.mark.parametrize("options", [None, VFS], ids=["overlay", "vfs"])
def test_escapes_are_refused(tmp_path, target, layer, message, options):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "etc").mkdir(exist_ok=True)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnsafeLayer, match=message):
        apply(layer.bytes(), target, options)
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(outside) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "etc" / "evil").exists()


def test_symlink_in_lower_layer_is_not_followed(tmp_path, target):
    lower = tmp_path / "lower"
    lower.mkdir()
    os.symlink("/", lower / "lib")
    with pytest.raises(UnsafeLayer, match="lower layer"):
        apply(LayerTar().file("lib/evil", b"x").bytes(), target, ApplyOptions(lowers=[str(lower)]))
    assert not os.path.exists("/evil")


def test_overlay_whiteouts(tmp_path, target):
    lower = tmp_path / "lower"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "old").write_text("old")
    (lower / "gone").write_text("x")
    (lower / "etc" / "sub").mkdir(parents=True)
    os.chmod(lower / "etc", 0o711)
    layer = (LayerTar().file(".wh.gone").dir("d").file("d/.wh..wh..opq").file("d/new", b"n")
             .file("etc/sub/file", b"f").bytes())
    apply(layer, target, ApplyOptions(lowers=[str(lower)]))
    wh = os.lstat(target / "gone")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(target / "d", "trusted.overlay.opaque") == b"y"
    assert (target / "d" / "new").read_bytes() == b"n"
    # A parent the tar did not list copies its metadata from the lower layer.
    assert stat.S_IMODE(os.lstat(target / "etc").st_mode) == 0o711


def test_an_opaque_directory_hides_what_lower_layers_hold_under_it(tmp_path, target):
    """A parent the tar did not list is looked up as the merged tree shows it: under an opaque directory of a
    higher layer, a deeper layer's entry does not count (here a file that would make the path unusable)."""
    bottom, middle = tmp_path / "bottom", tmp_path / "middle"
    (bottom / "a").mkdir(parents=True)
    (bottom / "a" / "b").write_text("hidden by the opaque a/ above")
    (middle / "a").mkdir(parents=True)
    os.setxattr(middle / "a", "trusted.overlay.opaque", b"y")
    apply(LayerTar().file("a/b/c", b"c").bytes(), target, ApplyOptions(lowers=[str(middle), str(bottom)]))
    assert (target / "a" / "b" / "c").read_bytes() == b"c"
    # without the opaque directory, the file below is what the path meets: refused, as before
    os.removexattr(middle / "a", "trusted.overlay.opaque")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UnsafeLayer):
        apply(LayerTar().file("a/b/c", b"c").bytes(), other, ApplyOptions(lowers=[str(middle), str(bottom)]))


def test_overlay_whiteouts_mount_correctly(tmp_path, target):
    from dockyard import linux

    lower = tmp_path / "lower"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "old").write_text("old")
    (lower / "gone").write_text("x")
    apply(LayerTar().file(".wh.gone").dir("d").file("d/.wh..wh..opq").file("d/new", b"n").bytes(), target,
          ApplyOptions(lowers=[str(lower)]))
    merged = tmp_path / "merged"
    merged.mkdir()
    linux.mount("overlay", str(merged), "overlay", linux.MS_RDONLY, f"lowerdir={target}:{lower}")
    try:
        assert sorted(os.listdir(merged)) == ["d"]
        assert sorted(os.listdir(merged / "d")) == ["new"]
    finally:
        linux.umount(str(merged))


def test_vfs_whiteouts_delete(target):
    (target / "d").mkdir()
    (target / "d" / "old").write_text("old")
    (target / "gone").mkdir()
    (target / "gone" / "deep").write_text("x")
    apply(LayerTar().file(".wh.gone").file("d/new", b"n").file("d/.wh..wh..opq").bytes(), target, VFS)
    assert not (target / "gone").exists()
    assert sorted(os.listdir(target / "d")) == ["new"]  # opaque keeps this layer's own entries


def test_replacing_entries_never_follows_symlinks(tmp_path, target):
    victim = tmp_path / "victim"
    victim.write_text("safe")
    os.symlink(str(victim), target / "f")
    apply(LayerTar().file("f", b"new", mode=0o600).bytes(), target, VFS)
    assert victim.read_text() == "safe"
    assert (target / "f").read_bytes() == b"new" and not os.path.islink(target / "f")


def test_metadata_never_set_through_symlink(tmp_path, target):
    victim = tmp_path / "victim"
    victim.write_text("x")
    os.chmod(victim, 0o644)
    mode_before = os.stat(victim).st_mode
    apply(LayerTar().symlink("l", str(victim), mode=0o777, uid=4242).bytes(), target)
    assert os.stat(victim).st_mode == mode_before and os.stat(victim).st_uid == 0


def test_compressed_streams(target):
    layer = LayerTar().file("a", b"A" * 100000).bytes()
    apply_layer(gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(layer))), str(target))  # type: ignore[arg-type]
    assert (target / "a").read_bytes() == b"A" * 100000


def test_deep_tree_without_recursion(target):
    depth = 1000
    layer = LayerTar()
    path = "/".join(["d"] * depth)
    layer.file(path + "/leaf", b"deep")
    apply(layer.bytes(), target, VFS)
    assert (target / path / "leaf").read_bytes() == b"deep"
    # Whiting out the top deletes the whole tree, iteratively.
    apply(LayerTar().file(".wh.d").bytes(), target, VFS)
    assert not (target / "d").exists()


def test_sparse_file_keeps_holes(tmp_path, target):
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(10 * 1024 * 1024 * 1024)  # a 10 GiB hole
        f.write(b"end")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=pax", "-cf", str(archive), "-C", str(src), "sparse"], check=True)
    with open(archive, "rb") as f:
        apply_layer(f, str(target))
    st = os.stat(target / "sparse")
    assert st.st_size == 10 * 1024 * 1024 * 1024 + 3
    assert st.st_blocks * 512 < 1024 * 1024  # holes stayed holes
    with open(target / "sparse", "rb") as f:
        f.seek(-3, 2)
        assert f.read() == b"end"


def test_many_entries_bounded_memory(target):
    import resource

    layer = LayerTar()
    for i in range(20000):
        layer.file(f"d{i % 100}/f{i}", b"")
    data = layer.bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    apply(data, target, VFS)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(os.listdir(target / "d7")) == 200
    assert after - before < 64 * 1024  # KiB: tarfile's member list is not kept


def test_truncated_tar_is_refused(target):
    data = LayerTar().file("a", b"x" * 5000).bytes()
    with pytest.raises(UnsafeLayer):
        apply(data[:2000], target)


class Trickle:
    """A stream that answers every read with a few bytes at most, as a pipe or a decompressor may."""

    def __init__(self, data: bytes, most: int) -> None:
        self.f, self.most = io.BytesIO(data), most

    def read(self, n: int = -1) -> bytes:
        return self.f.read(self.most if n is None or n < 0 else min(n, self.most))


@pytest.mark.parametrize("most", [1, 511, 513, 1 << 20])
def test_stream_in_short_reads(target, most):
    """Headers, long names (pax), padding and contents that straddle the source's reads are all put back together."""
    long_name = "/".join(["long-directory-name"] * 8) + "/file"
    big = os.urandom(3 * 1024 * 1024 + 7)
    layer = (LayerTar()
             .file("small", b"s" * 3)
             .file(long_name, b"long")
             .file("big", big)
             .symlink("link", "x" * 200)
             .file("empty")
             .bytes())
    result = apply_layer(Trickle(layer, most), str(target))  # type: ignore[arg-type]
    assert (target / "small").read_bytes() == b"sss"
    assert (target / long_name).read_bytes() == b"long"
    assert (target / "big").read_bytes() == big
    assert os.readlink(target / "link") == "x" * 200
    assert (target / "empty").read_bytes() == b""
    assert result.size == 3 + 4 + len(big) and result.entries == 5


def test_diff_id_covers_what_follows_the_tar_end(target):
    """The reader may take more than the tar from the stream; the hash still sees every byte once, in order."""
    import hashlib

    from dockyard.image.compression import HashingReader

    data = LayerTar().file("a", b"a" * 3000).bytes() + b"\0" * 8192 + b"trailing"
    stream = HashingReader(Trickle(data, 700))  # type: ignore[arg-type]
    apply_layer(stream, str(target))  # type: ignore[arg-type]
    stream.drain()
    assert stream.digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_truncated_file_contents_are_refused(target):
    data = LayerTar().file("a", b"x" * 5000).file("b", b"y").bytes()
    with pytest.raises(UnsafeLayer, match="unexpected end of data"):
        apply(data[:512 * 3 + 100], target)  # pax header, header, then part of a's contents


def test_tar_stream_only_seeks_forward():
    import tarfile

    from dockyard.image.layer_apply import _TarStream

    stream = _TarStream(io.BytesIO(b"0123456789"))  # type: ignore[arg-type]
    assert stream.read(3) == b"012" and stream.tell() == 3
    assert stream.seek(5) == 5 and stream.read(2) == b"56"
    with pytest.raises(tarfile.StreamError):
        stream.seek(0)
    assert stream.seek(100) == 10 and stream.read(1) == b""  # past the end stops at the end

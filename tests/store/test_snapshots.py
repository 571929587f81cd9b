"""Snapshots on both drivers: a change made in a mounted active snapshot, turned into a layer and applied to
a copy of the parent, gives exactly the tree the container saw."""

from __future__ import annotations

import io
import os
import shutil
import stat

import pytest

from dockyard import linux
from dockyard.image.layer_apply import ApplyOptions, apply_layer
from dockyard.image.layer_create import write_layer
from dockyard.store.store import Store
from tests.image.layertar import LayerTar


def tree(root: str) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, content or link target), for comparing file trees."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = f.read()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                content = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, content)
    return out


def base_layer() -> bytes:
    return (LayerTar().dir("etc").file("etc/config", b"v1").dir("data").file("data/a", b"a").file("data/b", b"b")
            .dir("keep").file("keep/x", b"x").symlink("link", "etc/config").file("gone", b"bye").bytes())


@pytest.fixture(params=["overlay", "vfs"])
def store(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_STORAGE_DRIVER", request.param)
    s = Store(tmp_path / "root")
    assert s.snapshots.driver == request.param
    yield s
    s.close()


def commit_layer(store: Store, data: bytes, key: str, parent: str | None = None):
    snap = store.snapshots.prepare(f"extract/{key}", parent)
    apply_layer(io.BytesIO(data), store.snapshots.fs(snap), store.snapshots.apply_options(snap))
    return store.snapshots.commit(f"extract/{key}", key)


def test_changes_round_trip(store, tmp_path):
    commit_layer(store, base_layer(), "sha256:base")
    active = store.snapshots.prepare("container/test", "sha256:base")
    merged = tmp_path / "merged"
    merged.mkdir()
    store.snapshots.mount(active, str(merged))
    try:
        (merged / "etc/config").write_bytes(b"v2")  # modify
        os.unlink(merged / "gone")  # delete
        shutil.rmtree(merged / "data")  # delete a directory and make it again: opaque
        (merged / "data").mkdir()
        (merged / "data/c").write_bytes(b"c")
        (merged / "new").mkdir()
        (merged / "new/file").write_bytes(b"n")
        os.chmod(merged / "keep/x", 0o600)  # metadata only
        os.symlink("/nowhere", merged / "dangling")
        expected = tree(str(merged))
    finally:
        linux.umount(str(merged))
    out = io.BytesIO()
    write_layer(store.snapshots.changes(active), out)
    # Apply the change set onto a plain copy of the base, as another machine would.
    replay = tmp_path / "replay"
    replay.mkdir()
    apply_layer(io.BytesIO(base_layer()), str(replay), ApplyOptions(overlay_whiteouts=False))
    apply_layer(io.BytesIO(out.getvalue()), str(replay), ApplyOptions(overlay_whiteouts=False))
    assert tree(str(replay)) == expected


def test_layer_creation_is_deterministic(store, tmp_path):
    commit_layer(store, base_layer(), "sha256:base")
    outputs = []
    for n in range(2):
        active = store.snapshots.prepare(f"container/{n}", "sha256:base")
        merged = tmp_path / f"m{n}"
        merged.mkdir()
        store.snapshots.mount(active, str(merged))
        try:
            (merged / "f").write_bytes(b"same")
            os.utime(merged / "f", (1000, 1000))
            os.unlink(merged / "gone")
        finally:
            linux.umount(str(merged))
        out = io.BytesIO()
        write_layer(store.snapshots.changes(active), out, clamp_mtime=1234)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]


def test_commit_race_keeps_one(store):
    commit_layer(store, base_layer(), "sha256:same")
    second = commit_layer(store, base_layer(), "sha256:same")
    rows = store.db.query("SELECT id FROM snapshots")
    assert len(rows) == 1 and second.id == rows[0][0]
    assert sorted(e for e in os.listdir(store.snapshots.dir) if e.isdigit()) == [str(second.id)]

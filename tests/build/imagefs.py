"""Test helpers for built images: their merged file tree (read from the layer tars), config and history."""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass
class FileInfo:
    kind: str  # "file" | "dir" | "symlink" | "other"
    mode: int
    uid: int
    gid: int
    mtime: int
    data: bytes = b""
    link: str = ""


def _open_engine(root: Path):
    from dockyard.engine.engine import Engine

    return Engine(root)


def layer_digests(root: Path, ref: str) -> list[str]:
    eng = _open_engine(root)
    try:
        image = eng.images.resolve(ref)
        return [layer.digest for layer in eng.images.manifest_of(image).layers]
    finally:
        eng.close()


def layer_entries(root: Path, digest: str) -> list[str]:
    path = root / "blobs" / "sha256" / digest[7:]
    with tarfile.open(path) as tar:
        return [m.name for m in tar]


def image_files(root: Path, ref: str) -> dict[str, FileInfo]:
    """The image's file tree: layers applied in order (whiteouts honoured), keyed by path without '/'."""
    from dockyard.image.compression import decompressed, sniff_file

    eng = _open_engine(root)
    files: dict[str, FileInfo] = {}
    try:
        image = eng.images.resolve(ref)
        for layer in eng.images.manifest_of(image).layers:
            with eng.store.blobs.open(layer.digest) as blob:
                stream = decompressed(blob, sniff_file(blob))
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for m in tar:
                        _apply(files, m, tar)
    finally:
        eng.close()
    return files


def _drop(files: dict[str, FileInfo], path: str, keep_self: bool = False) -> None:
    for name in [n for n in files if n == path or n.startswith(path + "/")]:
        if keep_self and name == path:
            continue
        del files[name]


def _apply(files: dict[str, FileInfo], m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
    name = m.name.rstrip("/").removeprefix("./")
    parent, _, base = name.rpartition("/")
    if base == OPAQUE:
        _drop(files, parent, keep_self=True)
        return
    if base.startswith(WHITEOUT):
        _drop(files, f"{parent}/{base[len(WHITEOUT):]}" if parent else base[len(WHITEOUT):])
        return
    if not m.isdir():
        _drop(files, name)
    kind = "dir" if m.isdir() else "file" if m.isreg() or m.islnk() else "symlink" if m.issym() else "other"
    data = b""
    if m.isreg():
        f = tar.extractfile(m)
        data = f.read() if f else b""
    elif m.islnk():
        target = files.get(m.linkname.rstrip("/"))
        data = target.data if target else b""
    files[name] = FileInfo(kind, m.mode, m.uid, m.gid, int(m.mtime), data, m.linkname if m.issym() else "")


def inspect(dy, ref: str) -> dict:
    return json.loads(dy.out("image", "inspect", ref))[0]


def write_tree(base: Path, files: dict[str, str | bytes]) -> Path:
    """Files under `base` ({relative path: content}); returns base."""
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return base


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def db_rows(root: Path, sql: str) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(root / "metadata.db")
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def snapshot_dirs(root: Path) -> list[str]:
    d = root / "snapshots"
    return sorted(e for e in os.listdir(d) if e.isdigit()) if d.exists() else []

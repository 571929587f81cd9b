"""Build layer tars in memory for tests: LayerTar().file("a", b"x").symlink("l", "/etc").bytes()."""

from __future__ import annotations

import io
import tarfile


class LayerTar:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)

    def _add(self, name: str, kind: bytes, data: bytes = b"", **attrs) -> "LayerTar":
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(data)
        info.mtime = attrs.pop("mtime", 1_600_000_000)
        info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
        for key, value in attrs.items():
            setattr(info, key, value)
        self.tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def dir(self, name: str, **attrs) -> "LayerTar":
        return self._add(name, tarfile.DIRTYPE, **attrs)

    def file(self, name: str, data: bytes = b"", **attrs) -> "LayerTar":
        return self._add(name, tarfile.REGTYPE, data, **attrs)

    def symlink(self, name: str, target: str, **attrs) -> "LayerTar":
        return self._add(name, tarfile.SYMTYPE, linkname=target, **attrs)

    def hardlink(self, name: str, target: str, **attrs) -> "LayerTar":
        return self._add(name, tarfile.LNKTYPE, linkname=target, **attrs)

    def chardev(self, name: str, major: int, minor: int, **attrs) -> "LayerTar":
        return self._add(name, tarfile.CHRTYPE, devmajor=major, devminor=minor, **attrs)

    def blockdev(self, name: str, major: int, minor: int, **attrs) -> "LayerTar":
        return self._add(name, tarfile.BLKTYPE, devmajor=major, devminor=minor, **attrs)

    def fifo(self, name: str, **attrs) -> "LayerTar":
        return self._add(name, tarfile.FIFOTYPE, **attrs)

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()

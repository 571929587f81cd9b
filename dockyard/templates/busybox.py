"""busybox: one static busybox binary and its applets, from the host's busybox-static package.

The recipe: the standard top-level directories; /bin/busybox; every applet that `busybox --list-full` names,
hard-linked to it where busybox itself would install it; /etc/passwd and /etc/group with root and nobody.
Every timestamp is SOURCE_DATE_EPOCH, or else the binary's own mtime, so the same binary always gives the
same image id.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tarfile
from typing import Any, BinaryIO

from dockyard.errors import NotFound

NAME = "busybox"
DESCRIPTION = "busybox from the host's busybox-static (apt-get install busybox-static)"
CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700, "sbin": 0o755,
        "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755,
        "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755}
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--busybox", help="path of a static busybox binary (default: the host's)")
    parser.add_argument("--tag", default="busybox:latest", help="name of the image (default busybox:latest)")


def reference(options: argparse.Namespace) -> str:
    return options.tag


def _binary(options: argparse.Namespace) -> str:
    for path in ([options.busybox] if getattr(options, "busybox", None) else CANDIDATES):
        if path and os.path.isfile(path):
            with open(path, "rb") as f:
                head = f.read(4096)
            if head[:4] != b"\x7fELF":
                continue
            if b"/lib64/ld-linux" in head or b"/lib/ld-" in head:
                continue  # dynamically linked: it would not run inside an image without libc
            return path
    raise NotFound("no static busybox found: install it with 'apt-get install busybox-static'")


def _applets(binary: str) -> list[str]:
    out = subprocess.run([binary, "--list-full"], capture_output=True, text=True, check=True).stdout
    return sorted({line.strip() for line in out.splitlines() if line.strip() and line.strip() != "bin/busybox"})


def created(options: argparse.Namespace) -> float:
    return float(os.environ.get("SOURCE_DATE_EPOCH") or int(os.stat(_binary(options)).st_mtime))


def write_layer(out: BinaryIO, options: argparse.Namespace, workdir: str) -> None:
    binary = _binary(options)
    st = os.stat(binary)
    mtime = int(created(options))

    def info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type, entry.mode, entry.size, entry.linkname, entry.mtime = kind, mode, size, link, mtime
        entry.uname = entry.gname = ""
        return entry

    applets = _applets(binary)
    dirs = dict(DIRS)
    for applet in applets:
        parent = os.path.dirname(applet)
        while parent and parent not in dirs:
            dirs[parent] = 0o755
            parent = os.path.dirname(parent)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs):
            tar.addfile(info(name, tarfile.DIRTYPE, dirs[name]))
        with open(binary, "rb") as f:
            tar.addfile(info("bin/busybox", tarfile.REGTYPE, 0o755, st.st_size), f)
        for applet in applets:
            tar.addfile(info(applet, tarfile.LNKTYPE, 0o755, link="bin/busybox"))
        for name, content in (("etc/group", GROUP), ("etc/passwd", PASSWD)):
            tar.addfile(info(name, tarfile.REGTYPE, 0o644, len(content)), io.BytesIO(content))


def config(options: argparse.Namespace) -> dict[str, Any]:
    return {"Env": [PATH_ENV], "Cmd": ["sh"]}


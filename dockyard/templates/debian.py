"""debian: a minimal Debian made by debootstrap (variant minbase) from a Debian mirror.

The recipe: `debootstrap --variant=minbase SUITE DIR MIRROR`, then the apt caches and the host-specific files
(/etc/hostname, /etc/resolv.conf) are removed, and the tree becomes one layer. Slow (a minute or more): it
downloads and installs about 90 packages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from typing import Any, BinaryIO

from dockyard.errors import HostError, NotFound
from dockyard.fsutil import empty_dir, remove_tree
from dockyard.image.layer_create import diff_trees
from dockyard.image.layer_create import write_layer as write_tar

NAME = "debian"
DESCRIPTION = "Debian via debootstrap --variant=minbase (apt-get install debootstrap)"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="bookworm", help="Debian suite (default bookworm)")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help=f"Debian mirror (default {DEFAULT_MIRROR})")
    parser.add_argument("--tag", help="name of the image (default debian:SUITE)")


def reference(options: argparse.Namespace) -> str:
    return options.tag or f"debian:{options.suite}"


def write_layer(out: BinaryIO, options: argparse.Namespace, workdir: str) -> None:
    if shutil.which("debootstrap") is None:
        raise NotFound("debootstrap is not installed: apt-get install debootstrap")
    rootfs = os.path.join(workdir, "rootfs")
    try:
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", options.suite, rootfs, options.mirror],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        if result.returncode != 0:
            raise HostError(f"debootstrap failed:\n{result.stdout[-3000:]}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            path = os.path.join(rootfs, cache)
            if os.path.isdir(path):
                empty_dir(path, keep={"partial", "lock"})
        for host_file in ("etc/hostname", "etc/resolv.conf"):
            try:
                os.unlink(os.path.join(rootfs, host_file))
            except FileNotFoundError:
                pass
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        write_tar(diff_trees(None, rootfs), out, clamp_mtime=int(epoch) if epoch else None)
    finally:
        remove_tree(rootfs)


def created(options: argparse.Namespace) -> float:
    return float(os.environ.get("SOURCE_DATE_EPOCH") or time.time())


def config(options: argparse.Namespace) -> dict[str, Any]:
    return {"Env": [PATH_ENV], "Cmd": ["bash"]}

"""Fixtures for runtime tests: a busybox rootfs, bundles, and running a bundle under our runtime or runc.

These tests need root, a real kernel and /usr/bin/busybox (busybox-static); runc comparisons need runc.
Every container and cgroup name starts with "dyt-" plus random hex, since other suites share the machine.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = "/usr/bin/busybox"
RUNC = shutil.which("runc")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runtime tests need root")


def new_id() -> str:
    return "dyt-" + secrets.token_hex(6)


def build_rootfs(root: Path) -> Path:
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox" and not (root / "bin" / name).exists():
            os.symlink("busybox", root / "bin" / name)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n")
    return root


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    return build_rootfs(tmp_path_factory.mktemp("rootfs") / "rootfs")


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("state"))


def default_spec(args: list[str], **options: Any) -> dict[str, Any]:
    from dockyard.runtime.spec import SpecOptions, generate_spec

    return generate_spec(SpecOptions(args=args, **options))


@dataclass
class Result:
    code: int
    out: str


class Bundles:
    """Makes bundle directories that share the session's rootfs (root.path is absolute)."""

    def __init__(self, base: Path, rootfs: Path) -> None:
        self.base, self.rootfs = base, rootfs

    def make(self, spec: dict[str, Any]) -> Path:
        bundle = self.base / secrets.token_hex(4)
        bundle.mkdir()
        spec = copy.deepcopy(spec)
        spec["root"]["path"] = str(self.rootfs)
        (bundle / "config.json").write_text(json.dumps(spec))
        return bundle


@pytest.fixture
def bundles(tmp_path: Path, rootfs: Path) -> Bundles:
    return Bundles(tmp_path, rootfs)


def run_ours(bundle: Path, state_root: str, cid: str | None = None, stdin: bytes = b"") -> Result:
    """create + start + wait through the library API, stdout and stderr captured in a file."""
    from dockyard.runtime import container

    cid = cid or new_id()
    out_path = bundle / f"{cid}.out"
    with open(out_path, "w+b") as out, open(os.devnull, "rb") as devnull:
        pid = container.create(cid, str(bundle), state_root, stdio=(devnull.fileno(), out.fileno(), out.fileno()))
        try:
            container.start(cid, state_root)
            _, status = os.waitpid(pid, 0)
        finally:
            container.delete(cid, state_root, force=True)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Result(os.waitstatus_to_exitcode(status), text)


def run_runc(bundle: Path, tmp_root: Path, cid: str | None = None) -> Result:
    cid = cid or new_id()
    proc = subprocess.run([RUNC, "--root", str(tmp_root), "run", "-b", str(bundle), cid], check=False,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    subprocess.run([RUNC, "--root", str(tmp_root), "delete", "-f", cid], capture_output=True, check=False)
    return Result(proc.returncode, proc.stdout.decode(errors="replace"))


@pytest.fixture
def runc_root(tmp_path: Path) -> Path:
    if RUNC is None:
        pytest.skip("runc is not installed")
    root = tmp_path / "runc-state"
    root.mkdir()
    return root


def python_cli() -> list[str]:
    return [sys.executable, "-m", "dockyard.runtime"]

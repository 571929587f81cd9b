"""Shared fixtures: a private store root per test, the CLI as a real subprocess, a busybox image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli_env() -> dict[str, str]:
    """The environment for dockyard subprocesses: this checkout first on the path, so that the monitor (which
    starts in /) runs the code under test rather than whatever copy of dockyard is installed."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


class CLI:
    """Runs `dockyard --root ROOT ...` as a separate process, as a user would."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, input: bytes | None = None, check: bool = True, env: dict | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "dockyard", "--root", str(self.root), *args]
        result = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                                env={**cli_env(), **(env or {})}, cwd=REPO)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout.decode(errors='replace')}\n{result.stderr.decode(errors='replace')}")
        return result

    def out(self, *args: str, **kw) -> str:
        return self(*args, **kw).stdout.decode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def dy(root: Path):
    cli = CLI(root)
    yield cli
    stop_everything(cli)


def stop_everything(cli: CLI) -> None:
    """Remove the test's containers (which unmounts their roots) and stop its monitor."""
    if not (cli.root / "metadata.db").exists():
        return
    ids = cli("ps", "-aq", "--no-trunc", check=False).stdout.decode().split()
    if ids:
        cli("rm", "-f", *ids, check=False)
    sock = cli.root / "run" / "monitor.sock"
    if sock.exists():
        from dockyard.engine.monitor import protocol

        try:
            protocol.request(str(sock), {"op": "shutdown"})
        except OSError:
            pass


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory) -> Path:
    """busybox:latest saved once per session, so tests load it instead of bootstrapping each time."""
    return _bootstrapped_archive(tmp_path_factory, "busybox", "busybox:latest")


def _bootstrapped_archive(tmp_path_factory, template: str, image: str, timeout: float = 300) -> Path:
    """Make `image` from one of our templates in a store of its own and save it to an archive."""
    root = tmp_path_factory.mktemp(f"{template}-root")
    cli = CLI(root)
    cli("image", "bootstrap", template, timeout=timeout)
    archive = root.parent / f"{template}.tar"
    cli("save", "-o", str(archive), image)
    return archive


@pytest.fixture
def busybox(dy: CLI, busybox_archive: Path) -> str:
    dy("load", "-i", str(busybox_archive))
    return "busybox:latest"


@pytest.fixture(scope="session")
def debian_archive(tmp_path_factory) -> Path:
    """debian:bookworm from `image bootstrap debian` (debootstrap, a minute or so), made once per session."""
    return _bootstrapped_archive(tmp_path_factory, "debian", "debian:bookworm", timeout=1800)


@pytest.fixture
def debian(dy: CLI, debian_archive: Path) -> str:
    dy("load", "-i", str(debian_archive))
    return "debian:bookworm"


@pytest.fixture
def engine(root: Path):
    from dockyard.engine.engine import Engine

    eng = Engine(root)
    yield eng
    eng.close()


def store_listing(root: Path) -> dict[str, list[str]]:
    """Everything persistent in a store: blob names, snapshot dirs, image ids and tags (to compare states)."""
    import sqlite3

    result = {
        "blobs": sorted(os.listdir(root / "blobs" / "sha256")) if (root / "blobs").exists() else [],
        "ingest": sorted(os.listdir(root / "ingest")) if (root / "ingest").exists() else [],
        "snapshots": sorted(e for e in os.listdir(root / "snapshots") if e.isdigit())
        if (root / "snapshots").exists() else [],
    }
    db = root / "metadata.db"
    if db.exists():
        conn = sqlite3.connect(db)
        for table in ("images", "tags", "snapshots", "image_blobs", "leases"):
            result[table] = sorted(str(tuple(r)) for r in conn.execute(f"SELECT * FROM {table}"))
        conn.close()
    return result


def have(tool: str) -> bool:
    return shutil.which(tool) is not None

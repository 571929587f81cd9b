"""Fixtures for build tests: contexts made from a dict, and `build` running `dockyard build` on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build.imagefs import write_tree


@pytest.fixture
def context(tmp_path: Path):
    """context(dockerfile, {path: content}) -> a fresh context directory."""
    counter = [0]

    def make(dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
        counter[0] += 1
        ctx = tmp_path / f"ctx{counter[0]}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile)
        write_tree(ctx, files or {})
        return ctx

    return make


@pytest.fixture
def build(dy, busybox):
    """build(ctx, *flags, check=True) -> (returncode, stdout, stderr) of `dockyard build`."""

    def run(ctx: Path | str, *flags: str, check: bool = True, env: dict | None = None,
            input: bytes | None = None) -> tuple[int, str, str]:
        result = dy("build", *flags, str(ctx), check=check, env=env, input=input)
        return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")

    return run


@pytest.fixture(autouse=True)
def _this_checkout_everywhere(monkeypatch):
    """Processes the CLI starts (the container monitor starts in /) import this checkout, not another."""
    from tests.conftest import REPO

    monkeypatch.setenv("PYTHONPATH", str(REPO))

"""Base images from a registry: a missing one is pulled, `--pull` refreshes a present one. Only a registry on
127.0.0.1 is used."""

from __future__ import annotations

import pytest

from tests.build.imagefs import image_files, inspect
from tests.registry.conftest import start_dockyard_registry


@pytest.fixture
def local_registry(tmp_path):
    server = start_dockyard_registry(tmp_path / "registry")
    yield server
    server.stop()


def test_a_missing_base_is_pulled_and_pull_refreshes_it(dy, busybox, context, build, local_registry):
    ref = f"{local_registry.host}/lib/busybox:1"
    dy("tag", "busybox:latest", ref)
    dy("push", ref)
    dy("rmi", ref)
    ctx = context(f"FROM {ref}\nRUN echo pulled > /p\n")
    _, out, _ = build(ctx, "-t", "p:1")
    assert f"pulling {ref}" in out
    assert inspect(dy, ref)["Id"] == inspect(dy, "busybox:latest")["Id"]
    assert image_files(dy.root, "p:1")["p"].data == b"pulled\n"
    _, out, _ = build(ctx, "-t", "p:2")
    assert "pulling" not in out
    _, out, _ = build(ctx, "--pull", "-t", "p:3")
    assert f"pulling {ref}" in out and "CACHED" in out


def test_a_base_that_cannot_be_pulled_is_an_error(context, build, local_registry):
    code, _, err = build(context(f"FROM {local_registry.host}/lib/nothing:1\n"), check=False)
    assert code != 0 and "could not be pulled" in err and "Dockerfile:1" in err
    code, _, err = build(context("FROM 127.0.0.1:9/closed/port:1\n"), check=False)
    assert code != 0 and "could not be pulled" in err

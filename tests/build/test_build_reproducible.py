"""SOURCE_DATE_EPOCH: the same context built on two roots gives the same image, byte for byte."""

from __future__ import annotations

import time

from tests.build.imagefs import inspect
from tests.conftest import CLI, stop_everything

DOCKERFILE = """\
FROM busybox:latest AS build
WORKDIR /src
COPY . .
RUN mkdir -p /out && sort words.txt > /out/sorted && date +%Y > /out/year-is-now
FROM busybox:latest
LABEL built=yes
COPY --from=build /out /out
RUN --network=none touch /out/touched && mkdir -p /var/empty
CMD ["cat", "/out/sorted"]
"""


def test_two_roots_give_the_same_digest(context, dy, busybox, busybox_archive, tmp_path):
    ctx = context(DOCKERFILE, {"words.txt": "pear\napple\n", "sub/dir/file": "x"})
    other = CLI(tmp_path / "other-root")
    other("load", "-i", str(busybox_archive))
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    try:
        dy("build", "-t", "repro:1", str(ctx), env=env)
        time.sleep(1.1)  # a second later: nothing may depend on the clock
        other("build", "-t", "repro:1", str(ctx), env=env)
        first, second = inspect(dy, "repro:1"), inspect(other, "repro:1")
        assert first["Id"] == second["Id"]
        assert first["RootFS"]["Layers"] == second["RootFS"]["Layers"]
        assert first["Created"].startswith("2023-11-14T22:13:20")
        # --no-cache rebuilds every step and still lands on the same bytes
        other("build", "--no-cache", "-t", "repro:2", str(ctx), env=env)
        assert inspect(other, "repro:2")["Id"] == first["Id"]
        # as a build arg too (BuildKit's way)
        dy("build", "--no-cache", "-t", "repro:3", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", str(ctx))
        assert inspect(dy, "repro:3")["Id"] == first["Id"]
    finally:
        stop_everything(other)


def test_without_epoch_a_cached_rebuild_keeps_the_id_and_a_fresh_one_does_not(context, build, dy):
    ctx = context("FROM busybox:latest\nRUN echo x > /x\n")
    build(ctx, "-t", "t:1")
    build(ctx, "-t", "t:2")
    assert inspect(dy, "t:1")["Id"] == inspect(dy, "t:2")["Id"]
    time.sleep(1.1)
    build(ctx, "--no-cache", "-t", "t:3")
    assert inspect(dy, "t:3")["Id"] != inspect(dy, "t:1")["Id"]

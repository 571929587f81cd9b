"""The layer cache: what is reused, what re-runs, and why (--explain-cache)."""

from __future__ import annotations

from tests.build.imagefs import inspect

STEPS = """\
FROM busybox:latest
RUN echo one > /one
COPY early.txt /early.txt
RUN echo two > /two
COPY late.txt /late.txt
RUN cat /late.txt > /late-copy
"""


def _ran(out: str) -> int:
    return out.count("Running in")


def test_changing_a_late_file_reruns_only_the_later_steps(context, build):
    ctx = context(STEPS, {"early.txt": "e", "late.txt": "l1"})
    _, first, _ = build(ctx, "-t", "c:1")
    assert _ran(first) == 3
    (ctx / "late.txt").write_text("l2")
    _, second, _ = build(ctx, "-t", "c:2")
    assert _ran(second) == 1  # only the RUN after the late COPY
    assert second.count("CACHED") == 3  # RUN one, COPY early, RUN two
    (ctx / "late.txt").touch()  # a new mtime alone keeps the cache
    _, third, _ = build(ctx, "-t", "c:3")
    assert _ran(third) == 0


def test_no_cache_rebuilds_everything(context, build):
    ctx = context(STEPS, {"early.txt": "e", "late.txt": "l"})
    build(ctx, "-t", "c:1")
    _, out, _ = build(ctx, "--no-cache", "-t", "c:2")
    assert _ran(out) == 3 and "CACHED" not in out


def test_mode_and_content_changes_miss_and_ignored_files_do_not(context, build):
    ctx = context("FROM busybox:latest\nCOPY . /src/\nRUN ls /src\n",
                  {"a.txt": "a", "ignored.log": "x", ".dockerignore": "*.log\n"})
    build(ctx, "-t", "c:1")
    (ctx / "ignored.log").write_text("changed")
    _, out, _ = build(ctx, "-t", "c:2")
    assert _ran(out) == 0
    (ctx / "a.txt").chmod(0o600)
    _, out, _ = build(ctx, "-t", "c:3")
    assert _ran(out) == 1


def test_build_args_used_by_a_step_are_part_of_its_key(context, build):
    ctx = context("FROM busybox:latest\nARG V=1\nRUN echo start\nRUN echo $V > /v\n")
    build(ctx, "-t", "c:1")
    _, out, _ = build(ctx, "-t", "c:2", "--build-arg", "V=2")
    # A declared ARG is in every later RUN's environment, as in Docker: both RUNs re-run.
    assert _ran(out) == 2
    _, out, _ = build(ctx, "-t", "c:3", "--build-arg", "V=2")
    assert _ran(out) == 0


def test_explain_cache_names_the_file_the_arg_and_the_parent(context, build):
    ctx = context("FROM busybox:latest\nARG V=1\nCOPY data/ /data/\nRUN echo $V\nRUN echo after\n",
                  {"data/a.txt": "a", "data/b.txt": "b"})
    build(ctx, "-t", "c:1")
    (ctx / "data" / "b.txt").write_text("b changed")
    (ctx / "data" / "new.txt").write_text("new")
    _, out, _ = build(ctx, "-t", "c:2", "--explain-cache")
    assert "cache miss: file data/b.txt changed" in out
    assert "cache miss: file data/new.txt added" in out
    assert "cache miss: its parent layer changed: step 3 was rebuilt" in out
    _, out, _ = build(ctx, "-t", "c:3", "--explain-cache", "--build-arg", "V=7")
    assert "cache miss: build arg V changed: '1' -> '7'" in out
    _, out, _ = build(ctx, "-t", "c:4", "--explain-cache", "--no-cache")
    assert out.count("cache miss: --no-cache") == 3


def test_builder_prune_drops_the_cache(context, build, dy):
    ctx = context(STEPS, {"early.txt": "e", "late.txt": "l"})
    build(ctx, "-t", "c:1")
    out = dy.out("builder", "prune", "-f")
    assert "Deleted build cache objects: 1" in out  # the image time record; its layers are in use
    dy("rmi", "c:1")
    out = dy.out("builder", "prune", "-a", "-f")
    assert "Total reclaimed space" in out
    _, again, _ = build(ctx, "-t", "c:1")
    assert _ran(again) == 3


def test_a_removed_image_keeps_its_cache_until_pruned(context, build, dy):
    ctx = context(STEPS, {"early.txt": "e", "late.txt": "l"})
    build(ctx, "-t", "c:1")
    first = inspect(dy, "c:1")["Id"]
    dy("rmi", "c:1")
    _, out, _ = build(ctx, "-t", "c:1")
    assert _ran(out) == 0
    assert inspect(dy, "c:1")["Id"] == first

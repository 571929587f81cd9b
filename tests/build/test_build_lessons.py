"""The seed's lessons about Dockerfiles, as tests: each RUN is its own container, layers stack, and the order of
steps decides what the cache can reuse."""

from __future__ import annotations

from tests.build.imagefs import image_files


def test_a_service_started_by_one_run_is_gone_in_the_next(context, build, dy):
    ctx = context("""\
FROM busybox:latest
RUN (httpd -f -p 8081 &) ; sleep 0.2; pidof httpd | wc -w > /during
RUN if pidof httpd; then echo alive; else echo gone; fi > /after
""")
    build(ctx, "-t", "lesson:2")
    files = image_files(dy.root, "lesson:2")
    assert files["during"].data == b"1\n"
    assert files["after"].data == b"gone\n"


def test_and_and_within_one_run_is_the_way(context, build, dy):
    ctx = context("""\
FROM busybox:latest
RUN mkdir -p /www && echo up > /www/index.html \\
 && (httpd -f -p 8083 -h /www &) && sleep 0.3 \\
 && wget -q -O /answer http://127.0.0.1:8083/index.html
""")
    build(ctx, "--network", "none", "-t", "lesson:3")
    assert image_files(dy.root, "lesson:3")["answer"].data == b"up\n"


def test_a_file_made_early_is_seen_later(context, build, dy):
    ctx = context("""\
FROM busybox:latest
RUN echo early > /early
COPY later.txt /later.txt
RUN cat /early /later.txt > /both && rm /early
""", {"later.txt": "later\n"})
    build(ctx, "-t", "lesson:4")
    files = image_files(dy.root, "lesson:4")
    assert files["both"].data == b"early\nlater\n"
    assert "early" not in files  # removed in a later layer: a whiteout hides it


def test_reordering_steps_changes_what_the_cache_can_reuse(context, build):
    first = context("FROM busybox:latest\nRUN echo a > /a\nRUN echo b > /b\nRUN echo c > /c\n")
    _, out, _ = build(first, "-t", "order:1")
    assert out.count("Running in") == 3
    same_prefix = context("FROM busybox:latest\nRUN echo a > /a\nRUN echo b > /b\nRUN echo d > /d\n")
    _, out, _ = build(same_prefix, "-t", "order:2")
    assert out.count("CACHED") == 2 and out.count("Running in") == 1
    swapped = context("FROM busybox:latest\nRUN echo b > /b\nRUN echo a > /a\nRUN echo c > /c\n")
    _, out, _ = build(swapped, "-t", "order:3")
    assert "CACHED" not in out and out.count("Running in") == 3

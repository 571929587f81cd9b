"""`dockyard build` end to end on busybox: config, history, output, tags, contexts and flags."""

from __future__ import annotations

import io
import re
import tarfile

from tests.build.imagefs import image_files, inspect

APP = """\
FROM busybox:latest
LABEL org.example.title="demo app" version=1
ENV APP_HOME=/app APP_ENV=test
WORKDIR /app
RUN echo hello > greeting
COPY index.html static/
EXPOSE 80 53/udp
VOLUME /data
USER nobody
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- http://localhost/ || exit 1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["httpd", "-f"]
CMD ["-p", "80"]
"""


def test_config_carries_every_instruction(context, build, dy):
    ctx = context(APP, {"index.html": "<h1>hi</h1>\n"})
    _, out, _ = build(ctx, "-t", "demo:1")
    cfg = inspect(dy, "demo:1")["Config"]
    assert cfg["Labels"] == {"org.example.title": "demo app", "version": "1"}
    assert "APP_HOME=/app" in cfg["Env"] and "APP_ENV=test" in cfg["Env"]
    assert any(e.startswith("PATH=") for e in cfg["Env"])
    assert cfg["WorkingDir"] == "/app"
    assert cfg["User"] == "nobody"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"}
    assert set(cfg["Volumes"]) == {"/data"}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
                                  "Interval": 5_000_000_000, "Retries": 2}
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Entrypoint"] == ["httpd", "-f"]
    assert cfg["Cmd"] == ["-p", "80"]
    files = image_files(dy.root, "demo:1")
    assert files["app/greeting"].data == b"hello\n"
    assert files["app/static/index.html"].data == b"<h1>hi</h1>\n"
    assert files["app/static/index.html"].uid == 0
    assert re.search(r"^Successfully built [0-9a-f]{12}$", out, re.MULTILINE)
    assert "Successfully tagged demo:1" in out


def test_history_has_a_created_by_per_step_and_empty_layers_marked(context, build, dy):
    ctx = context(APP, {"index.html": "x"})
    build(ctx, "-t", "demo:1")
    created = dy.out("history", "--no-trunc", "--format", "{{.CreatedBy}}", "demo:1").splitlines()
    assert created[0] == 'CMD ["-p" "80"]'
    assert 'ENTRYPOINT ["httpd" "-f"]' in created
    assert "RUN /bin/sh -c echo hello > greeting # buildkit" in created
    assert "COPY index.html static/ # buildkit" in created
    assert "WORKDIR /app" in created
    assert "ENV APP_HOME=/app APP_ENV=test" in created
    assert "EXPOSE map[53/udp:{} 80/tcp:{}]" in created
    image = inspect(dy, "demo:1")
    # busybox's layer + WORKDIR + RUN + COPY: config-only steps add no layer
    assert len(image["RootFS"]["Layers"]) == 4


def test_cached_rebuild_gives_the_same_image_and_says_cached(context, build, dy):
    ctx = context(APP, {"index.html": "x"})
    _, first, _ = build(ctx, "-t", "demo:1")
    _, second, _ = build(ctx, "-t", "demo:2")
    assert first.count("Running in") == 1
    assert "Running in" not in second
    assert second.count("CACHED") == 3  # WORKDIR, RUN, COPY
    assert inspect(dy, "demo:1")["Id"] == inspect(dy, "demo:2")["Id"]


def test_quiet_prints_only_the_id_and_iidfile_and_several_tags(context, build, dy, tmp_path):
    ctx = context("FROM busybox:latest\nRUN echo noisy\n")
    iid = tmp_path / "iid"
    _, out, _ = build(ctx, "-q", "-t", "a:1", "-t", "b:2", "--iidfile", str(iid))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    assert iid.read_text() == out.strip()
    assert inspect(dy, "a:1")["Id"] == inspect(dy, "b:2")["Id"] == out.strip()


def test_label_flag_and_build_args(context, build, dy):
    ctx = context("FROM busybox:latest\nARG NAME=default\nARG OTHER\nRUN echo \"$NAME-$OTHER\" > /out\n"
                  "LABEL name=$NAME\n")
    _, out, _ = build(ctx, "-t", "args:1", "--build-arg", "NAME=given", "--build-arg", "UNUSED=1",
                      "--label", "extra=yes")
    assert image_files(dy.root, "args:1")["out"].data == b"given-\n"
    labels = inspect(dy, "args:1")["Config"]["Labels"]
    assert labels == {"name": "given", "extra": "yes"}
    assert "build-args [UNUSED] were not consumed" in out
    history = dy.out("history", "--no-trunc", "--format", "{{.CreatedBy}}", "args:1")
    assert "RUN |2 NAME=given OTHER= /bin/sh -c" in history


def test_dockerfile_outside_the_context(context, build, dy, tmp_path):
    ctx = context("FROM scratch\n", {"data.txt": "context data"})
    other = tmp_path / "elsewhere" / "Build.df"
    other.parent.mkdir()
    other.write_text("FROM busybox:latest\nCOPY data.txt /\n")
    build(ctx, "-f", str(other), "-t", "outside:1")
    assert image_files(dy.root, "outside:1")["data.txt"].data == b"context data"


def test_context_from_a_tarball_and_from_stdin(context, build, dy, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM busybox:latest\nCOPY f.txt /f.txt\n"), ("f.txt", b"from tar")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "ctx.tar.gz"
    archive.write_bytes(buf.getvalue())
    build(archive, "-t", "tarctx:1")
    assert image_files(dy.root, "tarctx:1")["f.txt"].data == b"from tar"
    build("-", "-t", "stdintar:1", input=buf.getvalue())
    assert image_files(dy.root, "stdintar:1")["f.txt"].data == b"from tar"
    build("-", "-t", "stdindf:1", input=b"FROM busybox:latest\nRUN echo piped > /p\n")
    assert image_files(dy.root, "stdindf:1")["p"].data == b"piped\n"
    code, _, err = build("-", "-t", "nocontext:1", input=b"FROM busybox:latest\nCOPY x /x\n", check=False)
    assert code != 0 and "no context" in err


def test_multi_stage_target_and_copy_from_stage_index_and_image(context, build, dy):
    ctx = context("""\
FROM busybox:latest AS builder
RUN echo built > /artifact
FROM busybox:latest AS unused
RUN exit 1
FROM busybox:latest AS tester
RUN echo tested > /tested
FROM scratch
COPY --from=builder /artifact /a1
COPY --from=0 /artifact /a2
COPY --from=busybox:latest /bin/busybox /bin/busybox
""")
    _, out, _ = build(ctx, "-t", "multi:1")
    files = image_files(dy.root, "multi:1")
    assert files["a1"].data == files["a2"].data == b"built\n"
    assert "bin/busybox" in files
    assert "tested" not in out and "exit 1" not in out  # stages the target does not need are skipped
    build(ctx, "-t", "multi:tester", "--target", "tester")
    assert "tested" in image_files(dy.root, "multi:tester")
    code, _, err = build(ctx, "--target", "nope", check=False)
    assert code != 0 and "nope" in err


def test_onbuild_triggers_fire_in_the_child_build_only(context, build, dy):
    parent = context("FROM busybox:latest\nONBUILD COPY marker /marker\nONBUILD RUN echo fired > /fired\n",
                     {"marker": "unused"})
    build(parent, "-t", "parent:1")
    assert inspect(dy, "parent:1")["Config"]["OnBuild"] == ["COPY marker /marker", "RUN echo fired > /fired"]
    assert "fired" not in image_files(dy.root, "parent:1")
    child = context("FROM parent:1\nRUN cat /marker /fired\n", {"marker": "child's marker\n"})
    _, out, _ = build(child, "-t", "child:1")
    files = image_files(dy.root, "child:1")
    assert files["marker"].data == b"child's marker\n" and files["fired"].data == b"fired\n"
    assert "child's marker" in out
    assert not inspect(dy, "child:1")["Config"].get("OnBuild")


def test_platform_flag_accepts_only_the_host(context, build, dy):
    import platform as py_platform

    ctx = context("FROM busybox:latest\n")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(py_platform.machine(), py_platform.machine())
    build(ctx, "--platform", f"linux/{arch}", "-t", "plat:1")
    other = "linux/s390x" if arch != "s390x" else "linux/amd64"
    code, _, err = build(ctx, "--platform", other, check=False)
    assert code != 0 and "platform" in err


def test_the_vfs_driver_builds_too(dy, busybox_archive, context, tmp_path):
    from tests.build.imagefs import layer_digests, layer_entries
    from tests.conftest import CLI, stop_everything

    vfs = CLI(tmp_path / "vfs-root")
    env = {"DOCKYARD_STORAGE_DRIVER": "vfs"}
    try:
        vfs("load", "-i", str(busybox_archive), env=env)
        assert (vfs.root / "storage-driver").read_text().strip() == "vfs"
        ctx = context("FROM busybox:latest AS a\nRUN echo a > /a\nFROM busybox:latest\nCOPY --from=a /a /a\n"
                      "COPY --link f /linked/f\nRUN rm /bin/true && echo b > /b\n", {"f": "f"})
        vfs("build", "-t", "vfs:1", str(ctx), env=env)
        files = image_files(vfs.root, "vfs:1")
        assert files["a"].data == b"a\n" and files["b"].data == b"b\n" and files["linked/f"].data == b"f"
        assert "bin/true" not in files
        last = layer_entries(vfs.root, layer_digests(vfs.root, "vfs:1")[-1])
        assert "etc/hosts" not in last and "etc/resolv.conf" not in last
        out = vfs.out("build", "-t", "vfs:2", str(ctx), env=env)
        assert "Running in" not in out
    finally:
        stop_everything(vfs)

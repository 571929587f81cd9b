"""COPY and ADD as Docker does them: wildcards, directories, destinations, owners, modes, --from, archives,
URLs, here-documents, --link, --parents, --exclude."""

from __future__ import annotations

import http.server
import io
import os
import stat
import tarfile
import threading

import pytest

from tests.build.imagefs import image_files, layer_digests, layer_entries

SRC = {"a.txt": "A", "b.txt": "B", "c.md": "C", "dir/x.txt": "X", "dir/sub/y.txt": "Y"}


def test_wildcards_directories_and_trailing_slashes(context, build, dy):
    ctx = context("""\
FROM busybox:latest
COPY *.txt /multi/
COPY dir /contents/
COPY dir/sub /file-dest-dir
COPY a.txt /renamed.txt
COPY a.txt /existing-dir
COPY c.md relative/
COPY nomatch*.txt /nothing/
""", SRC)
    build(ctx, "-t", "cp:1")
    files = image_files(dy.root, "cp:1")
    assert files["multi/a.txt"].data == b"A" and files["multi/b.txt"].data == b"B"
    assert "multi/c.md" not in files
    # a directory's contents are copied, not the directory itself
    assert files["contents/x.txt"].data == b"X" and files["contents/sub/y.txt"].data == b"Y"
    assert "contents/dir" not in files
    assert files["file-dest-dir/y.txt"].data == b"Y"
    assert files["renamed.txt"].data == b"A"
    assert files["existing-dir"].kind == "file"
    assert files["relative/c.md"].data == b"C"  # relative to WORKDIR (/)
    assert "nothing" not in files or files["nothing"].kind == "dir"


def test_a_file_lands_inside_an_existing_directory(context, build, dy):
    ctx = context("FROM busybox:latest\nRUN mkdir /target\nCOPY a.txt /target\n", SRC)
    build(ctx, "-t", "cp:2")
    assert image_files(dy.root, "cp:2")["target/a.txt"].data == b"A"


def test_several_sources_need_a_directory_destination(context, build):
    code, _, err = build(context("FROM busybox:latest\nCOPY a.txt b.txt /notadir\n", SRC), check=False)
    assert code != 0 and "must be a directory" in err and "Dockerfile:2" in err


def test_chown_and_chmod(context, build, dy):
    ctx = context("""\
FROM busybox:latest
COPY --chown=nobody:nobody a.txt /owned/by-name.txt
COPY --chown=1234 b.txt /owned/by-id.txt
COPY --chmod=0750 dir /modes/
COPY --chmod=u=rw,go=r c.md /symbolic.md
""", SRC)
    build(ctx, "-t", "cp:3")
    files = image_files(dy.root, "cp:3")
    assert (files["owned/by-name.txt"].uid, files["owned/by-name.txt"].gid) == (65534, 65534)
    assert (files["owned/by-id.txt"].uid, files["owned/by-id.txt"].gid) == (1234, 1234)
    assert (files["owned"].uid, files["owned"].gid) == (65534, 65534)  # a parent it created
    assert stat.S_IMODE(files["modes/x.txt"].mode) == 0o750
    assert stat.S_IMODE(files["modes/sub"].mode) == 0o750
    assert stat.S_IMODE(files["symbolic.md"].mode) == 0o644


def test_modes_times_and_symlinks_are_kept(context, build, dy):
    ctx = context("FROM busybox:latest\nCOPY . /src/\n", {"run.sh": "#!/bin/sh\n"})
    os.chmod(ctx / "run.sh", 0o755)
    os.utime(ctx / "run.sh", (1_600_000_000, 1_600_000_000))
    os.symlink("run.sh", ctx / "link")
    build(ctx, "-t", "cp:4")
    files = image_files(dy.root, "cp:4")
    assert stat.S_IMODE(files["src/run.sh"].mode) == 0o755
    assert files["src/run.sh"].mtime == 1_600_000_000
    assert files["src/link"].kind == "symlink" and files["src/link"].link == "run.sh"


def test_destination_symlinks_in_the_image_resolve_inside_it(context, build, dy):
    ctx = context("""\
FROM busybox:latest
RUN ln -s /real /via-abs && mkdir /real && ln -s ../../../../../ /escape
COPY a.txt /via-abs/a.txt
COPY b.txt /escape/b.txt
""", SRC)
    build(ctx, "-t", "cp:5")
    files = image_files(dy.root, "cp:5")
    assert files["real/a.txt"].data == b"A"
    assert files["b.txt"].data == b"B"  # `..` above the image's root stays at its root


def test_exclude_and_parents(context, build, dy):
    ctx = context("""\
FROM busybox:latest
COPY --exclude=*.md --exclude=dir/sub . /excl/
COPY --parents dir/sub/y.txt a.txt /kept/
""", SRC)
    build(ctx, "-t", "cp:6")
    files = image_files(dy.root, "cp:6")
    assert "excl/a.txt" in files and "excl/dir/x.txt" in files
    assert "excl/c.md" not in files and "excl/dir/sub" not in files
    assert files["kept/dir/sub/y.txt"].data == b"Y" and files["kept/a.txt"].data == b"A"


def test_link_layers_do_not_depend_on_the_parent(context, build, dy):
    ctx = context("FROM busybox:latest\nARG V\nRUN echo $V > /v\nCOPY --link a.txt /linked/a.txt\n", SRC)
    build(ctx, "-t", "cp:7", "--build-arg", "V=1")
    _, out, _ = build(ctx, "-t", "cp:8", "--build-arg", "V=2")
    assert out.count("CACHED") == 1  # the RUN re-ran; the --link COPY is reused on the new parent
    assert layer_digests(dy.root, "cp:7")[-1] == layer_digests(dy.root, "cp:8")[-1]
    files = image_files(dy.root, "cp:8")
    assert files["linked/a.txt"].data == b"A" and files["v"].data == b"2\n"


def test_copy_heredoc(context, build, dy):
    ctx = context("FROM busybox:latest\nARG WHO=world\nCOPY <<EOF /hello.txt\nhello $WHO\nEOF\n"
                  "COPY <<'RAW' /raw.txt\nkeep $WHO\nRAW\n")
    build(ctx, "-t", "cp:9")
    files = image_files(dy.root, "cp:9")
    assert files["hello.txt"].data == b"hello world\n"
    assert files["raw.txt"].data == b"keep $WHO\n"


def _tar_bytes(compress: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:" + compress) as tar:
        for name, data, uid in (("pkg/bin/tool", b"tool", 42), ("pkg/README", b"readme", 0)):
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.mode = len(data), uid, 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_add_unpacks_local_archives_and_copies_other_files(context, build, dy):
    ctx = context("""\
FROM busybox:latest
ADD plain.tar /plain
ADD packed.tar.gz /gz/
ADD packed.tar.xz /xz/
ADD notarchive.gz /files/
COPY packed.tar.gz /copied/
""", {"plain.tar": _tar_bytes(), "packed.tar.gz": _tar_bytes("gz"), "packed.tar.xz": _tar_bytes("xz"),
      "notarchive.gz": b"\x1f\x8bnot really gzip"})
    build(ctx, "-t", "add:1")
    files = image_files(dy.root, "add:1")
    for base in ("plain", "gz", "xz"):
        assert files[f"{base}/pkg/bin/tool"].data == b"tool"
        assert files[f"{base}/pkg/bin/tool"].uid == 42  # an archive keeps its owners
    assert files["files/notarchive.gz"].data == b"\x1f\x8bnot really gzip"
    assert files["copied/packed.tar.gz"].kind == "file"


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_add_downloads_urls(context, build, dy, http_server):
    www, url = http_server
    (www / "file.txt").write_text("downloaded v1")
    (www / "bundle.tar").write_bytes(_tar_bytes())
    import hashlib

    digest = "sha256:" + hashlib.sha256(b"downloaded v1").hexdigest()
    ctx = context(f"FROM busybox:latest\nADD {url}/file.txt /dl/\nADD --checksum={digest} {url}/file.txt /named\n"
                  f"ADD {url}/bundle.tar /bundle/\n")
    build(ctx, "-t", "url:1")
    files = image_files(dy.root, "url:1")
    assert files["dl/file.txt"].data == b"downloaded v1"
    assert stat.S_IMODE(files["dl/file.txt"].mode) == 0o600
    assert files["named"].data == b"downloaded v1"
    assert files["bundle/bundle.tar"].kind == "file"  # remote archives are not unpacked
    _, out, _ = build(ctx, "-t", "url:2")
    assert out.count("CACHED") == 3
    (www / "file.txt").write_text("downloaded v2")
    code, _, err = build(ctx, "-t", "url:3", check=False)
    assert code != 0 and "digest mismatch" in err


def test_copy_never_reads_outside_the_context(context, build, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    ctx = context("FROM busybox:latest\nCOPY link/secret.txt /x\n")
    os.symlink(str(tmp_path), ctx / "link")
    code, _, err = build(ctx, check=False)
    assert code != 0 and "outside the build context" in err
    code, _, err = build(context("FROM busybox:latest\nCOPY ../secret.txt /x\n"), check=False)
    assert code != 0 and "outside the build context" in err


def test_layer_tars_are_sorted_with_numeric_owners(context, build, dy):
    ctx = context("FROM busybox:latest\nCOPY . /src/\n", {"b": "b", "a": "a", "c/d": "d"})
    build(ctx, "-t", "cp:10")
    names = layer_entries(dy.root, layer_digests(dy.root, "cp:10")[-1])
    assert names == sorted(names, key=lambda n: n.split("/")) or names[0] == "src"

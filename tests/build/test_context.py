"""Build contexts: directories, tar streams, stdin, -f, and .dockerignore selection."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.build.context import context_from_tar, open_context
from dockyard.build.errors import BuildContextError, DockerfileError, SourceNotFound


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def tar_bytes(files: dict[str, str], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def kept(ctx) -> list[str]:
    return [e.path for e in ctx.tree.walk("") if e.path]


def test_directory_context(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", "app.py": "x", ".dockerignore": "*.log\n", "debug.log": "x"})
    with open_context(str(tmp_path)) as ctx:
        assert ctx.dockerfile == b"FROM a\n" and ctx.dockerfile_path == "Dockerfile"
        assert ctx.ignore_patterns == ["*.log"] and ctx.ignore_file == str(tmp_path / ".dockerignore")
        assert kept(ctx) == [".dockerignore", "Dockerfile", "app.py"]
        assert ctx.parse().stages[0].from_.image == "a"


def test_lowercase_dockerfile_fallback(tmp_path: Path) -> None:
    write(tmp_path, {"dockerfile": "FROM lower\n"})
    with open_context(str(tmp_path)) as ctx:
        assert ctx.dockerfile == b"FROM lower\n" and ctx.dockerfile_path == "dockerfile"


def test_dockerfile_outside_the_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx_dir = write(tmp_path / "ctx", {"a.txt": "a"})
    write(tmp_path / "build", {"Dockerfile.dev": "FROM dev\nFORM oops\n",
                               "Dockerfile.dev.dockerignore": "a.txt\n"})
    monkeypatch.chdir(tmp_path)
    with open_context(str(ctx_dir), dockerfile="build/Dockerfile.dev") as ctx:
        assert ctx.dockerfile.startswith(b"FROM dev")
        assert ctx.ignore_patterns == ["a.txt"]  # <Dockerfile>.dockerignore next to it wins
        assert kept(ctx) == []
        with pytest.raises(DockerfileError) as e:
            ctx.parse()
        assert str(e.value).startswith("build/Dockerfile.dev:2: unknown instruction: FORM")


def test_dockerfile_specific_ignore_wins_inside_the_context(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", ".dockerignore": "a\n", "Dockerfile.dockerignore": "b\n",
                     "a": "", "b": ""})
    with open_context(str(tmp_path)) as ctx:
        assert ctx.ignore_patterns == ["b"] and "a" in kept(ctx) and "b" not in kept(ctx)


def test_ignored_dockerfile_is_still_read(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", ".dockerignore": "Dockerfile\n.dockerignore\n"})
    with open_context(str(tmp_path)) as ctx:
        assert ctx.dockerfile == b"FROM a\n" and kept(ctx) == []


def test_dockerfile_from_stdin_with_a_directory_context(tmp_path: Path) -> None:
    write(tmp_path, {"x": ""})
    with open_context(str(tmp_path), dockerfile="-", stdin=io.BytesIO(b"FROM stdin\n")) as ctx:
        assert ctx.dockerfile == b"FROM stdin\n" and kept(ctx) == ["x"]


def test_lone_dockerfile_on_stdin() -> None:
    with open_context("-", stdin=io.BytesIO(b"FROM busybox\nRUN echo hi\n")) as ctx:
        assert ctx.tree is None and ctx.dockerfile.startswith(b"FROM busybox")


COMPRESSORS = {
    "plain": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
    "zstd": lambda b: __import__("zstandard").ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_tar_on_stdin(compression: str) -> None:
    data = COMPRESSORS[compression](tar_bytes({"Dockerfile": "FROM tar\n", "src/app.py": "print(1)\n",
                                               ".dockerignore": "**/*.pyc\n", "src/app.pyc": "x"}))
    with open_context("-", stdin=io.BytesIO(data)) as ctx:
        assert ctx.dockerfile == b"FROM tar\n"
        assert kept(ctx) == [".dockerignore", "Dockerfile", "src", "src/app.py"]
        scratch = ctx._scratch
        assert scratch is not None and os.path.isdir(scratch)
    assert not os.path.exists(scratch)  # unpacked files go away with the context


def test_tar_file_context_with_f_inside(tmp_path: Path) -> None:
    archive = tmp_path / "ctx.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes({"docker/Dockerfile.prod": "FROM prod\n", "x": "",
                                                 "docker/Dockerfile.prod.dockerignore": "x\n"})))
    with open_context(str(archive), dockerfile="docker/Dockerfile.prod") as ctx:
        assert ctx.dockerfile == b"FROM prod\n" and ctx.ignore_patterns == ["x"]
    with pytest.raises(BuildContextError, match="cannot find the Dockerfile"):
        open_context(str(archive))


def test_context_from_tar_stream() -> None:
    with context_from_tar(io.BytesIO(tar_bytes({"Dockerfile": "FROM s\n"}))) as ctx:
        assert ctx.dockerfile == b"FROM s\n"


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o755
    return info


@pytest.mark.parametrize("entries, message", [
    ([_info("../escape")], "could leave the layer root"),
    ([_info("a/../../escape")], "could leave the layer root"),
    ([_info("/etc/passwd")], "absolute path"),
    ([_info("link", tarfile.SYMTYPE, "/etc"), _info("link/passwd")], "which is a symlink"),
    ([_info("d", tarfile.SYMTYPE, ".."), _info("d/x")], "which is a symlink"),
    ([_info("hard", tarfile.LNKTYPE, "../../etc/passwd")], "points outside the layer root"),
    ([_info("hard", tarfile.LNKTYPE, "missing")], "does not exist"),
])
def test_unsafe_tar_contexts(entries: list[tarfile.TarInfo], message: str) -> None:
    data = tar_bytes({"Dockerfile": "FROM a\n"}, entries)
    with pytest.raises(BuildContextError, match=message):
        open_context("-", stdin=io.BytesIO(data))


def test_tar_links_and_specials() -> None:
    fifo = _info("fifo", tarfile.FIFOTYPE)
    data = tar_bytes({"Dockerfile": "FROM a\n", "file": "data"},
                     [_info("sym", tarfile.SYMTYPE, "file"), _info("hard", tarfile.LNKTYPE, "file"), fifo,
                      _info("dir", tarfile.DIRTYPE)])
    with open_context("-", stdin=io.BytesIO(data)) as ctx:
        entries = {e.path: e for e in ctx.tree.walk("")}
        assert entries["sym"].link == "file" and entries["hard"].st.st_ino == entries["file"].st.st_ino
        assert "fifo" not in entries and entries["dir"].kind == "dir"


def test_garbage_on_stdin_is_a_dockerfile() -> None:
    with open_context("-", stdin=io.BytesIO(b"\x00\x01 not a tar")) as ctx:
        assert ctx.tree is None
    with pytest.raises(BuildContextError, match="not a readable tar|cannot unpack"):
        open_context("-", stdin=io.BytesIO(gzip.compress(b"not a tar at all" * 100)))


@pytest.mark.parametrize("args, message", [
    (("/nonexistent/ctx",), "path '/nonexistent/ctx' not found"),
    (("-",), "can't use stdin for both"),
])
def test_context_errors(args: tuple, message: str) -> None:
    with pytest.raises(BuildContextError, match=message):
        open_context(*args, dockerfile="-" if args == ("-",) else None, stdin=io.BytesIO(b""))


def test_missing_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(BuildContextError, match="cannot find the Dockerfile"):
        open_context(str(tmp_path))
    with pytest.raises(BuildContextError, match="is a directory"):
        open_context(str(tmp_path), dockerfile=str(tmp_path))


def test_ignored_paths_cannot_be_resolved(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "", ".dockerignore": "secret\nbuild\n!build/keep\n", "secret/key": "k",
                     "build/tmp": "", "build/keep/a": ""})
    with open_context(str(tmp_path)) as ctx:
        with pytest.raises(SourceNotFound):
            ctx.tree.resolve("secret/key")
        assert ctx.tree.resolve("build/keep/a") == "build/keep/a"
        assert ctx.tree.resolve("build") == "build"  # excluded, but it holds a re-included path
        assert [e.rel for e in ctx.tree.walk("build")] == ["", "keep", "keep/a"]

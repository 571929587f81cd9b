"""Build contexts: where the Dockerfile and the files COPY/ADD read come from.

    with open_context("./app", dockerfile="build/Dockerfile.dev") as ctx:
        dockerfile = ctx.parse()          # DockerfileError names ctx.dockerfile_path and the line
        ctx.tree                          # SourceTree over the kept files (None: no context)

Like `docker build`:

* `PATH` a directory: the context; `-f` defaults to `PATH/Dockerfile` (or `PATH/dockerfile`), and a relative
  `-f` is relative to the current directory, so the Dockerfile may live outside the context;
* `PATH` a tar archive (plain, gzip, bzip2, xz, zstd): unpacked privately; `-f` names a file inside it;
* `-`: standard input holds either such an archive or a lone Dockerfile (then there is no context, and only
  COPY --from / ADD <url> can bring files in); `-f -` reads just the Dockerfile from standard input;
* `.dockerignore` at the context root, or `<Dockerfile>.dockerignore` next to the Dockerfile (which wins),
  is read first; ignored files are never opened afterwards. The Dockerfile itself is read even if ignored.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Self

from dockyard.build.dockerignore import PatternMatcher, read_patterns
from dockyard.build.errors import BuildContextError, SourceNotFound
from dockyard.build.tarcontext import extract_tar, looks_like_archive
from dockyard.build.tree import SourceTree
from dockyard.image.compression import PrefixedStream

if TYPE_CHECKING:
    from dockyard.build.parser import Dockerfile

DEFAULT_DOCKERFILE = "Dockerfile"
ALT_DOCKERFILE = "dockerfile"
IGNORE_FILE = ".dockerignore"
MAX_DOCKERFILE = 64 << 20
SNIFF = 1024


@dataclass
class BuildContext:
    tree: SourceTree | None  # None when only a Dockerfile was given
    dockerfile: bytes
    dockerfile_path: str  # how errors name the Dockerfile
    ignore_patterns: list[str] = field(default_factory=list)
    ignore_file: str | None = None  # where the patterns came from
    _scratch: str | None = None  # a private directory holding an unpacked archive

    def parse(self) -> Dockerfile:
        from dockyard.build.parser import parse_dockerfile
        return parse_dockerfile(self.dockerfile, self.dockerfile_path)

    def close(self) -> None:
        if self.tree is not None:
            self.tree.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_context(source: str, *, dockerfile: str | None = None, stdin: BinaryIO | None = None,
                 scratch_dir: str | None = None) -> BuildContext:
    """The context named on a `docker build` command line (see the module docstring)."""
    if dockerfile == "-" and source == "-":
        raise BuildContextError("invalid argument: can't use stdin for both build context and dockerfile")
    if source == "-":
        return _from_stdin(_stdin(stdin), dockerfile, scratch_dir)
    try:
        st = os.stat(source)
    except OSError:
        raise BuildContextError(f"unable to prepare context: path {source!r} not found") from None
    if stat.S_ISDIR(st.st_mode):
        return _from_directory(source, dockerfile, stdin)
    with open(source, "rb") as f:
        return _from_archive(f, dockerfile, scratch_dir)


def context_from_tar(stream: BinaryIO, *, dockerfile: str | None = None,
                     scratch_dir: str | None = None) -> BuildContext:
    """A context from a tar stream (the API server's build endpoint receives one)."""
    return _from_archive(stream, dockerfile, scratch_dir)


def _stdin(stdin: BinaryIO | None) -> BinaryIO:
    return stdin if stdin is not None else sys.stdin.buffer


def _from_stdin(stdin: BinaryIO, dockerfile: str | None, scratch_dir: str | None) -> BuildContext:
    head = stdin.read(SNIFF)
    while len(head) < SNIFF:
        more = stdin.read(SNIFF - len(head))
        if not more:
            break
        head += more
    if looks_like_archive(head):
        return _from_archive(PrefixedStream(head, stdin), dockerfile, scratch_dir)  # type: ignore[arg-type]
    data = head + _read_limited(stdin, MAX_DOCKERFILE - len(head))
    return BuildContext(None, data, DEFAULT_DOCKERFILE)


def _read_limited(stream: BinaryIO, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise BuildContextError(f"the Dockerfile is larger than {MAX_DOCKERFILE} bytes")
    return data


def _from_directory(root: str, dockerfile: str | None, stdin: BinaryIO | None) -> BuildContext:
    root = os.path.abspath(root)
    specific: str | None = None  # <Dockerfile>.dockerignore candidate
    if dockerfile == "-":
        data = _read_limited(_stdin(stdin), MAX_DOCKERFILE)
        shown = DEFAULT_DOCKERFILE
    else:
        if dockerfile is None:
            path = os.path.join(root, DEFAULT_DOCKERFILE)
            if not os.path.exists(path) and os.path.exists(os.path.join(root, ALT_DOCKERFILE)):
                path = os.path.join(root, ALT_DOCKERFILE)
            shown = os.path.basename(path)
        else:
            path = os.path.abspath(dockerfile)
            shown = dockerfile
        data = _read_file(path, shown)
        specific = path + IGNORE_FILE
    patterns, ignore_file = _ignore_rules_from_disk(root, specific)
    tree = SourceTree(root, ignore=PatternMatcher(patterns) if patterns else None)
    return BuildContext(tree, data, shown, patterns, ignore_file)


def _read_file(path: str, shown: str) -> bytes:
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise BuildContextError(f"the Dockerfile ({shown}) is not a regular file")
            return _read_limited(f, MAX_DOCKERFILE)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise BuildContextError(f"unable to prepare context: cannot find the Dockerfile {shown!r}") from None
    except IsADirectoryError:
        raise BuildContextError(f"the Dockerfile ({shown}) is a directory") from None


def _ignore_rules_from_disk(root: str, specific: str | None) -> tuple[list[str], str | None]:
    for candidate in ([specific] if specific else []) + [os.path.join(root, IGNORE_FILE)]:
        try:
            with open(candidate, "rb") as f:
                return read_patterns(f.read()), candidate
        except (FileNotFoundError, NotADirectoryError):
            continue
    return [], None


def _from_archive(stream: BinaryIO, dockerfile: str | None, scratch_dir: str | None) -> BuildContext:
    scratch = tempfile.mkdtemp(prefix="dockyard-context-", dir=scratch_dir)
    try:
        os.chmod(scratch, 0o700)
        root = os.path.join(scratch, "context")
        os.mkdir(root, 0o755)
        extract_tar(stream, root)
        plain = SourceTree(root)
        name = dockerfile or DEFAULT_DOCKERFILE
        if dockerfile is None and plain.lstat(DEFAULT_DOCKERFILE) is None and plain.lstat(ALT_DOCKERFILE):
            name = ALT_DOCKERFILE
        try:
            resolved = plain.resolve(name.lstrip("/"))
            data = plain.read_bytes(resolved, MAX_DOCKERFILE + 1)
        except SourceNotFound:
            raise BuildContextError(f"cannot find the Dockerfile {name!r} in the build context") from None
        except IsADirectoryError:
            raise BuildContextError(f"the Dockerfile ({name}) is a directory") from None
        if len(data) > MAX_DOCKERFILE:
            raise BuildContextError(f"the Dockerfile is larger than {MAX_DOCKERFILE} bytes")
        patterns, ignore_file = [], None
        for candidate in (resolved + IGNORE_FILE, IGNORE_FILE):
            try:
                found = plain.resolve(candidate)
            except (SourceNotFound, BuildContextError):
                continue
            patterns, ignore_file = read_patterns(plain.read_bytes(found)), candidate
            break
        plain.close()
        tree = SourceTree(root, ignore=PatternMatcher(patterns) if patterns else None)
        return BuildContext(tree, data, name, patterns, ignore_file, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise

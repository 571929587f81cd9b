"""`cp`: copy files between a container and the host, or a tar stream on stdin/stdout.

This is the client half of `docker cp` (the CLI's cp.go and pkg/archive/copy.go): it looks at both ends,
decides where the archive lands and under which name (Docker's path rules: `dir/.` copies a directory's
content, a directory never overwrites a file, a missing parent is an error), and streams a tar between the
local side and the engine's archive operations (engine/container_fs.py) through a pipe.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from dockyard.errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import ArgumentParser

T = TypeVar("T")
MAX_LOCAL_SYMLINKS = 10


class CopyError(Exception):
    """A client-side failure, printed as Docker's CLI prints it (no 'Error response from daemon')."""


@dataclass
class CopyInfo:
    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


def cp_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress progress output during copy. Progress output is automatically suppressed if no "
                        "terminal is attached")
    p.add_argument("source", metavar="SRC_PATH", help="CONTAINER:SRC_PATH, a local path, or - (a tar on stdin)")
    p.add_argument("dest", metavar="DEST_PATH", help="CONTAINER:DEST_PATH, a local path, or - (a tar on stdout)")


def split_cp_arg(arg: str) -> tuple[str, str]:
    """(container, path); container '' for a local path (absolute, or './x:y', or without ':')."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def cp(args, ctx) -> int:
    src_container, src_path = split_cp_arg(args.source)
    dst_container, dst_path = split_cp_arg(args.dest)
    try:
        if not args.source:
            raise CopyError("source can not be empty")
        if not args.dest:
            raise CopyError("destination can not be empty")
        if src_container and dst_container:
            raise CopyError("copying between containers is not supported")
        if src_container:
            size = _from_container(ctx, src_container, src_path, dst_path, args)
            where = dst_path
        elif dst_container:
            size = _to_container(ctx, args.source, dst_container, dst_path, args)
            where = args.dest
        else:
            raise CopyError("must specify at least one container source")
    except CopyError as e:
        sys.stdout.flush()
        sys.stderr.write(f"{e}\n")
        return 1
    if size is not None and not args.quiet and sys.stderr.isatty() and where != "-":
        from dockyard.cli.output import human_size

        sys.stderr.write(f"Successfully copied {human_size(size)} to {where}\n")
    return 0


def _no_such_path(container: str, path: str) -> CopyError:
    """Docker's client turns any 404 of the archive endpoints (no container, no path) into this message."""
    return CopyError(f"Error: No such container:path: {container}:{path}")


# --- container -> host ------------------------------------------------------------------------------------------

def _from_container(ctx, container: str, path: str, dst: str, args) -> int | None:
    from dockyard.engine import container_fs

    engine = ctx.engine
    try:
        record = engine.containers.get(container)
        if dst == "-":
            out = sys.stdout.buffer
            sys.stdout.flush()
            container_fs.get_archive(engine, record, path, out, follow=args.follow_link)
            out.flush()
            return None
        src = container_fs.stat_path(engine, record, path, follow=args.follow_link)
    except NotFound:
        raise _no_such_path(container, path) from None
    dst_info = local_destination(dst)
    dst_dir, rebase = prepare_archive_copy(src.name, src.is_dir, dst_info)
    options = _host_extract_options(args.archive, rebase)

    def produce(out: BinaryIO) -> None:
        container_fs.get_archive(engine, record, path, out, follow=args.follow_link)

    def consume(stream: BinaryIO) -> int:
        from dockyard.engine.fs_untar import extract

        root = os.open(dst_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            result = extract(stream, root, "", options)
        finally:
            os.close(root)
        for name in result.skipped:
            sys.stderr.write(f"skipping device node {name!r}: dockyard does not create device nodes on the host\n")
        return result.data_bytes
    return pipe_through(produce, consume)


def _host_extract_options(archive: bool, rebase: tuple[str, str] | None):
    from dockyard.engine.fs_untar import ExtractOptions

    # The files belong to whoever runs cp, unless -a asks for the owners the container had.
    owner = None if archive else (os.geteuid(), os.getegid())
    return ExtractOptions(owner=owner, no_overwrite_dir_non_dir=True, devices=False, rebase=rebase)


def local_destination(path: str) -> CopyInfo:
    """Docker's CopyInfoDestinationPath: a symlink at the destination is followed; the parent must exist."""
    original = path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    hops = 0
    while st is not None and os.path.islink(path):
        hops += 1
        if hops > MAX_LOCAL_SYMLINKS:
            raise CopyError(f"too many symlinks in {original}")
        target = os.readlink(path)
        path = target if target.startswith("/") else os.path.join(_split_dir_entry(path)[0], target)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is not None:
        return CopyInfo(path, True, os.path.isdir(path) and not os.path.islink(path))
    parent = _split_dir_entry(path)[0]
    try:
        if not os.path.isdir(parent):
            os.stat(parent)
            raise CopyError("not a directory")
    except FileNotFoundError:
        raise CopyError(f"stat {parent}: no such file or directory") from None
    return CopyInfo(path)


def _split_dir_entry(path: str) -> tuple[str, str]:
    """Docker's SplitPathDirEntry: (directory, last element), where 'x/.' keeps '.' as its last element."""
    cleaned = os.path.normpath(path)
    if path.endswith("/.") or path == ".":
        cleaned = cleaned + "/." if cleaned != "." else "."
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned)


def _asserts_directory(path: str) -> bool:
    return path.endswith(("/", "/.")) or path == "."


def prepare_archive_copy(src_base: str, src_is_dir: bool, dst: CopyInfo) -> tuple[str, tuple[str, str] | None]:
    """Docker's PrepareArchiveCopy: (directory to extract into, (old, new) first-component rename or None)."""
    dst_dir, dst_base = _split_dir_entry(dst.path)
    if dst.exists and dst.is_dir:
        return dst.path, None  # into the directory, under the source's own name
    if dst.exists and src_is_dir:
        raise CopyError("cannot copy directory")
    if not dst.exists and not src_is_dir and _asserts_directory(dst.path):
        raise CopyError("no such directory")
    # A new name (or an existing file replaced): extract next to it, renamed after it.
    return dst_dir, (src_base, dst_base)


# --- host -> container ------------------------------------------------------------------------------------------

def _to_container(ctx, source: str, container: str, path: str, args) -> int:
    from dockyard.engine import container_fs

    engine = ctx.engine
    dst = CopyInfo(path)
    try:
        record = engine.containers.get(container)
    except NotFound:
        raise _no_such_path(container, path) from None
    try:
        st = container_fs.stat_path(engine, record, path)
        if st.is_symlink:  # a symlink at the destination is followed (once, then resolved in the container)
            dst.path = st.link_target
            st = container_fs.stat_path(engine, record, st.link_target)
    except NotFound:
        st = None
    if st is not None:
        if not (st.is_dir or st.is_regular):
            raise CopyError(f'destination "{container}:{path}" must be a directory or a regular file')
        dst.exists, dst.is_dir = True, st.is_dir
    if source == "-":
        if not dst.is_dir:
            raise CopyError(f'destination "{container}:{path}" must be a directory')
        return _put(engine, record, container, dst.path, ctx.stdin, args.archive)
    src = local_source(source, args.follow_link)
    _, src_base = _split_dir_entry(src.path)
    src_base = src.rebase_name or src_base
    dst_dir, rebase = prepare_archive_copy(src_base, src.is_dir, dst)
    arcname = rebase[1] if rebase else src_base

    def produce(out: BinaryIO) -> None:
        from dockyard.engine.fs_tar import TreeArchiver

        fd = _open_local(src.path)
        try:
            with TreeArchiver(out) as archiver:
                archiver.add_tree(fd, arcname)
        finally:
            os.close(fd)

    def consume(stream: BinaryIO) -> int:
        return _put(engine, record, container, dst_dir, stream, args.archive)
    return pipe_through(produce, consume)


def _put(engine, record, container: str, path: str, stream: BinaryIO, archive: bool) -> int:
    from dockyard.engine import container_fs

    try:
        return container_fs.put_archive(engine, record, path, stream, copy_uid_gid=archive)
    except NotFound:
        raise _no_such_path(container, path) from None


def local_source(path: str, follow: bool) -> CopyInfo:
    """Docker's CopyInfoSourcePath: the directory part resolved, the last element followed only with -L."""
    if follow:
        resolved = os.path.realpath(path)
        if _split_dir_entry(path)[1] == "." and not resolved.endswith("/."):
            resolved += "/."
        rebase = os.path.basename(path.rstrip("/")) if os.path.basename(path.rstrip("/")) != \
            os.path.basename(resolved.rstrip("/")) else ""
    else:
        directory, base = _split_dir_entry(path)
        resolved = os.path.join(os.path.realpath(directory), base)
        rebase = ""
    try:
        os.lstat(resolved if not path.endswith("/") else resolved + "/")
    except OSError as e:
        raise CopyError(f"lstat {path}: {os.strerror(e.errno or 0).lower()}") from None
    is_dir = os.path.isdir(resolved) and (follow or not os.path.islink(resolved))
    return CopyInfo(resolved, True, is_dir, rebase)


def _open_local(path: str) -> int:
    """O_PATH fd on the local source: its directory followed, the last element itself (a symlink stays one)."""
    directory, base = _split_dir_entry(path)
    dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if base in (".", ""):
        return dir_fd
    try:
        return os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


# --- plumbing -----------------------------------------------------------------------------------------------------

def pipe_through(produce: Callable[[BinaryIO], None], consume: Callable[[BinaryIO], T]) -> T:
    """Run `produce(writer)` in a thread and `consume(reader)` here, joined by a pipe (bounded memory).

    The producer's error wins: a consumer failing on a cut stream is only its echo.
    """
    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            produce(writer)
        except BrokenPipeError:
            pass  # the consumer stopped reading; its own error says why
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            failure.append(e)
        finally:
            try:
                writer.close()
            except BrokenPipeError:
                pass

    thread = threading.Thread(target=run, name="cp-producer", daemon=True)
    thread.start()
    try:
        result = consume(reader)
        while reader.read(1 << 16):  # let the producer finish (trailing padding)
            pass
    except BaseException:
        reader.close()
        thread.join()
        if failure:
            raise failure[0] from None
        raise
    reader.close()
    thread.join()
    if failure:
        raise failure[0]
    return result


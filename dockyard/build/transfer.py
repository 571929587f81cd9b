"""COPY and ADD: gathering the sources of a step, their digest (the cache input), and writing them.

A step's sources form groups, each a source tree with a copy plan (`sources.plan_copy`): the build context, a
stage's or an image's root filesystem (`--from`), a downloaded file (ADD <url>), or a directory holding the
step's here-documents. A local archive given to ADD is a group of its own, unpacked at the destination; its
digest is the archive's, so a cache hit never unpacks it. `prepare` does everything that reads sources and
can fail on bad input; `write` runs only on a cache miss.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from dockyard.build.archives import is_archive, unpack
from dockyard.build.contentsum import Files, plan_digest
from dockyard.build.copier import Ownership, TreeWriter
from dockyard.build.errors import DockerfileError
from dockyard.build.hashing import DigestCache
from dockyard.build.instructions import Add, Copy
from dockyard.build.sandbox import Sandbox
from dockyard.build.sources import (
    CopyItem,
    CopyPlan,
    Destination,
    add_source_kind,
    check_copy_source,
    destination,
    parse_chmod,
    parse_chown,
    plan_copy,
)
from dockyard.build.tree import SourceTree


@dataclass
class Group:
    tree: SourceTree
    plan: CopyPlan
    unpack_to: str | None = None  # an archive unpacked into this directory
    owned: bool = False  # the tree was made here (downloads, heredocs): closed with the transfer


@dataclass
class Transfer:
    groups: list[Group]
    chown: tuple[str, str | None] | None
    chmod: int | str | None
    digest: str
    files: Files = field(default_factory=list)

    def close(self) -> None:
        for group in self.groups:
            if group.owned:
                group.tree.close()


def prepare(ins: Copy | Add, workdir: str, tree: SourceTree | None, sandbox: Sandbox,
            digests: DigestCache | None) -> Transfer:
    """The sources of an evaluated COPY/ADD, read from `tree` (the context or a --from root). `digests`
    memoizes file digests of `tree` (pass it for the context only: a --from view is a new mount, with new
    device numbers, every build)."""
    dest = destination(ins.dest, workdir)
    chown = parse_chown(ins.chown) if ins.chown else None
    chmod = parse_chmod(ins.chmod) if ins.chmod else None
    groups: list[Group] = []
    if isinstance(ins, Add):
        from dockyard.build.fetch import check_checksum

        checksum = check_checksum(ins.checksum)
        for src in ins.sources:
            groups += _add_source(src, dest, tree, ins, sandbox, checksum)
    else:
        for src in ins.sources:
            check_copy_source(src)
        if ins.sources:
            if tree is None:
                raise DockerfileError("COPY from the build context, but no context was given")
            groups.append(Group(tree, plan_copy(tree, ins.sources, dest, parents=ins.parents,
                                                excludes=ins.excludes, inline_count=len(ins.inline))))
    if ins.inline:
        groups.append(_inline_group(ins, dest, sandbox))
    count = sum(len(g.plan.items) for g in groups)
    if count > 1 and not dest.is_dir and not getattr(ins, "parents", False):
        raise DockerfileError(f"When using {ins.keyword} with more than one source file, the destination must "
                              "be a directory and end with a /")
    files: Files = []
    h = hashlib.sha256()
    for i, group in enumerate(groups):
        prefix = "" if group.tree is tree else f"#{i}:"
        memo = digests if group.tree is tree else None  # downloads and heredocs are new files every time
        h.update(plan_digest(group.tree, group.plan, memo, files, prefix).encode())
        h.update(f"\0unpack={group.unpack_to}\n".encode())
    return Transfer(groups, chown, chmod, "sha256:" + h.hexdigest(), files)


def _add_source(src: str, dest: Destination, tree: SourceTree | None, ins: Add, sandbox: Sandbox,
                checksum: str | None) -> list[Group]:
    kind = add_source_kind(src)
    if kind == "git":
        raise DockerfileError("ADD from a git repository is not supported by dockyard build")
    if kind == "url":
        from dockyard.build.fetch import download  # urllib costs start-up time: only when a URL is added

        directory = sandbox.new_dir("download", tmp=True)
        path, _ = download(src, directory, checksum)
        fetched = SourceTree(directory)
        name = os.path.basename(path)
        if ins.unpack:
            fd = fetched.open_file(name)
            try:
                archive = is_archive(fd)
            finally:
                os.close(fd)
            if archive:
                return [_archive_group(fetched, name, dest, owned=True)]
        return [Group(fetched, plan_copy(fetched, [name], dest, keyword="ADD"), owned=True)]
    if checksum is not None:
        raise DockerfileError("ADD --checksum is only supported for URL sources")
    if tree is None:
        raise DockerfileError("ADD from the build context, but no context was given")
    plan = plan_copy(tree, [src], dest, excludes=ins.excludes, keyword="ADD")
    if ins.unpack is False:
        return [Group(tree, plan)]
    groups: list[Group] = []
    plain: list[CopyItem] = []
    for item in plan.items:
        if item.kind == "file" and _is_archive_in(tree, item.source):
            if plain:
                groups.append(Group(tree, CopyPlan(plain)))
                plain = []
            groups.append(_archive_group(tree, item.source, dest))
        else:
            plain.append(item)
    if plain:
        groups.append(Group(tree, CopyPlan(plain)))
    return groups


def _is_archive_in(tree: SourceTree, path: str) -> bool:
    fd = tree.open_file(path)
    try:
        return is_archive(fd)
    finally:
        os.close(fd)


def _archive_group(tree: SourceTree, path: str, dest: Destination, owned: bool = False) -> Group:
    item = CopyItem(path, "file", dest.path, os.path.basename(path), True)
    return Group(tree, CopyPlan([item]), unpack_to=dest.path, owned=owned)


def _inline_group(ins: Copy | Add, dest: Destination, sandbox: Sandbox) -> Group:
    directory = sandbox.new_dir("heredoc", tmp=True)
    names = []
    for source in ins.inline:
        name = os.path.basename(source.name) or "heredoc"
        with open(os.path.join(directory, name), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(source.data)
        os.chmod(os.path.join(directory, name), 0o644)
        names.append(name)
    inline_tree = SourceTree(directory)
    plan = plan_copy(inline_tree, names, dest, keyword=ins.keyword)
    return Group(inline_tree, plan, owned=True)


def write(transfer: Transfer, root: str, owner: tuple[int, int] | None, sandbox: Sandbox) -> None:
    """Write every group into `root` (the step's writable tree); `owner`: --chown's ids, resolved."""
    uid, gid = owner if owner is not None else (None, None)
    for group in transfer.groups:
        if group.unpack_to is None:
            with TreeWriter(root, Ownership(uid, gid), transfer.chmod) as writer:
                writer.copy_plan(group.tree, group.plan)
            continue
        unpacked = sandbox.new_dir("unpack", tmp=True)
        fd = group.tree.open_file(group.plan.items[0].source)
        try:
            unpack(fd, unpacked)
        finally:
            os.close(fd)
        with SourceTree(unpacked, confine=False) as extracted, \
                TreeWriter(root, Ownership(uid, gid, preserve=True), transfer.chmod) as writer:
            writer.copy_plan(extracted, CopyPlan([CopyItem("", "dir", group.unpack_to, "", True)]))

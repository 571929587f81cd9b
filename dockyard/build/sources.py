"""COPY/ADD sources and destinations: which files a step copies, and where they land.

    dest = destination(step.instruction.dest, workdir="/app")
    plan = plan_copy(tree, step.instruction.sources, dest, parents=..., excludes=...)
    for item, entry, target in plan.entries(tree):   # entry: metadata + an fd to read; target: path in image
        ...

Rules (Docker's):

* source paths are relative to the context root (a leading `/` changes nothing, a trailing `/` neither);
  a path that leaves the context (`../x`, or a symlink pointing out) is refused;
* wildcards follow Go's filepath.Match per path component (`*.go`, `src/*/main.?`, `arr[[]0].txt`); a
  wildcard matching nothing copies nothing (BuildKit's behaviour); without wildcards a missing source is an
  error; a path without wildcards is used literally, backslashes included;
* a directory source copies its contents, not the directory itself; a file lands at the destination, or
  inside it when the destination is a directory;
* the destination is a directory when written with a trailing `/` (or as `.`/`..`), and must be one when
  several sources are copied; a relative destination is relative to WORKDIR;
* `--parents` keeps each source's path (below an optional `/./` pivot); `**` may be used there;
* `--exclude` patterns (.dockerignore syntax) apply to paths relative to each source (for a single file, its
  name).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dockyard.build.config_values import clean_path
from dockyard.build.dockerignore import PatternMatcher
from dockyard.build.errors import BuildContextError, DockerfileError, SourceNotFound
from dockyard.build.gomatch import has_wildcards, match
from dockyard.build.tree import Entry, SourceTree

_CHMOD_CLAUSE = r"[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+"
_CHMOD_SYMBOLIC = re.compile(rf"{_CHMOD_CLAUSE}(?:,{_CHMOD_CLAUSE})*")


@dataclass(frozen=True)
class Destination:
    path: str  # absolute and cleaned
    is_dir: bool  # written as a directory: sources go inside it


def destination(dest: str, workdir: str = "/") -> Destination:
    is_dir = dest in ("", ".", "..") or dest.endswith(("/", "/.", "/.."))
    path = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    return Destination(clean_path(path), is_dir)


@dataclass(frozen=True)
class CopyItem:
    source: str  # resolved path in the source tree ("" is its root)
    kind: str  # "dir" | "file" | "symlink" | "other", of the resolved source
    target: str  # absolute path in the image: the file itself, or the directory a dir's contents go to
    name: str  # the source's name as matched (for a file landing in an existing directory)
    dest_is_dir: bool  # the destination was written as a directory
    excludes: PatternMatcher | None = None  # what to leave out below a directory source

    @property
    def check_existing_dir(self) -> bool:
        """A file source whose destination was not written as a directory: if `target` already is one in
        the image, the file goes inside it as `target/name` (Docker's rule); the executor checks."""
        return self.kind != "dir" and not self.dest_is_dir


@dataclass
class CopyPlan:
    items: list[CopyItem]

    def entries(self, tree: SourceTree) -> Iterator[tuple[CopyItem, Entry, str]]:
        """Every (item, entry, target path) to copy, directories before their contents. The entry's fd is
        only valid until the next iteration."""
        for item in self.items:
            for entry in tree.walk(item.source, excludes=item.excludes):
                target = item.target if not entry.rel else posixpath.join(item.target, entry.rel)
                yield item, entry, target


def plan_copy(tree: SourceTree, sources: Sequence[str], dest: Destination, *, parents: bool = False,
              excludes: Sequence[str] = (), keyword: str = "COPY", inline_count: int = 0) -> CopyPlan:
    user_excludes = list(excludes)
    items: list[CopyItem] = []
    for src in sources:
        if parents:
            items.extend(_parents_items(tree, src, dest, user_excludes))
        else:
            items.extend(_plain_items(tree, src, dest, user_excludes))
    if not parents and len(items) + inline_count > 1 and not dest.is_dir:
        raise DockerfileError(f"When using {keyword} with more than one source file, the destination must "
                              "be a directory and end with a /")
    return CopyPlan(items)


def _relative_source(src: str) -> str:
    """Source as a cleaned path relative to the tree root. A `..` that climbs above the root is kept, so
    that resolving it is refused (in the context) rather than silently clamped."""
    parts: list[str] = []
    for part in src.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _excluded(matcher: PatternMatcher | None, rel: str) -> bool:
    return matcher is not None and matcher.matches(rel)


def _plain_items(tree: SourceTree, src: str, dest: Destination, excludes: list[str]) -> list[CopyItem]:
    rel = _relative_source(src)
    matcher = PatternMatcher(excludes) if excludes else None
    if has_wildcards(rel):
        matches = match_wildcards(tree, rel)
    else:
        matches = [(rel, posixpath.basename(rel))]
    items = []
    for path, rel_name in matches:
        resolved = tree.resolve(path)
        kind = _kind(tree, resolved)
        name = posixpath.basename(path) or posixpath.basename(resolved)
        if kind != "dir" and _excluded(matcher, rel_name or name):
            continue
        if kind == "dir":
            target = dest.path
        else:
            target = posixpath.join(dest.path, name) if dest.is_dir else dest.path
        items.append(CopyItem(resolved, kind, target, name, dest.is_dir, matcher))
    return items


def _parents_items(tree: SourceTree, src: str, dest: Destination, excludes: list[str]) -> list[CopyItem]:
    base, pivot, pattern = src.partition("/./")
    if not pivot:
        base, pattern = "", src
    base_rel, pattern_rel = _relative_source(base), _relative_source(pattern)
    if not has_wildcards(base_rel) and not has_wildcards(pattern_rel):
        tree.resolve("/".join(p for p in (base_rel, pattern_rel) if p))  # must exist
    resolved = tree.resolve(base_rel)
    if _kind(tree, resolved) != "dir":
        raise SourceNotFound(f"{base!r} is not a directory")
    # Keep exactly what the pattern matches (a matched directory brings its contents), then the excludes.
    matcher = PatternMatcher(["**", "!" + pattern_rel, *excludes]) if pattern_rel else (
        PatternMatcher(excludes) if excludes else None)
    return [CopyItem(resolved, "dir", dest.path, posixpath.basename(resolved), True, matcher)]


def _kind(tree: SourceTree, path: str) -> str:
    entry, fd = tree.entry(path)
    os.close(fd)
    return entry.kind


def match_wildcards(tree: SourceTree, pattern: str) -> list[tuple[str, str]]:
    """Paths matching a wildcard source, in walk order: (path in the tree, path below the wildcard base).

    The components before the first wildcard are resolved (symlinks followed, within the context); below
    that, each component is matched by name, directories being entered but never through a symlink, and a
    matching directory is not entered (Go's filepath.Walk with SkipDir, as BuildKit does).
    """
    parts = pattern.split("/")
    first = next(i for i, p in enumerate(parts) if has_wildcards(p))
    base = tree.resolve("/".join(parts[:first])) if first else ""
    globs = parts[first:]
    last = len(globs) - 1
    results: list[tuple[str, str]] = []
    stack = [(base, 0, "", iter(_list_dir(tree, base)))]
    while stack:
        directory, depth, below, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        if not match(globs[depth], name):
            continue
        path = f"{directory}/{name}" if directory else name
        rel = f"{below}/{name}" if below else name
        if depth == last:
            if not tree.is_ignored(path):
                results.append((path, rel))
            continue
        st = tree.lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            stack.append((path, depth + 1, rel, iter(_list_dir(tree, path))))
    return results


def _list_dir(tree: SourceTree, path: str) -> list[str]:
    fd = tree.open_dir(path)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


# -- ADD sources and flag values ---------------------------------------------------------------------------

def add_source_kind(src: str) -> str:
    """'git', 'url' or 'local' for an ADD source (a close approximation of BuildKit's detection)."""
    lowered = src.lower()
    if lowered.startswith(("git@", "git://")) or (
            lowered.startswith(("http://", "https://", "ssh://")) and
            (".git#" in lowered or lowered.split("#", 1)[0].rstrip("/").endswith(".git"))):
        return "git"
    if lowered.startswith(("http://", "https://")):
        return "url"
    return "local"


def check_copy_source(src: str) -> None:
    kind = add_source_kind(src)
    if kind == "url":
        raise DockerfileError("source can't be a URL for COPY")
    if kind == "git":
        raise DockerfileError("source can't be a git ref for COPY")


def parse_chmod(text: str) -> int | str:
    """An octal mode (<= 07777) or a symbolic one (`u=rwX,go=rX`, `+x`), as COPY/ADD --chmod accept."""
    if text.isascii() and text.isdigit():
        value = int(text, 8) if all(c in "01234567" for c in text) else -1
        if 0 <= value <= 0o7777:
            return value
        raise DockerfileError(f"invalid chmod parameter: '{text}'. it should be octal string and between 0 "
                              "and 07777")
    if _CHMOD_SYMBOLIC.fullmatch(text):
        return text
    raise DockerfileError(f"invalid chmod parameter: '{text}'")


def parse_chown(text: str) -> tuple[str, str | None]:
    """(user, group or None) of `--chown=user[:group]`; names are resolved in the image by the executor."""
    user, sep, group = text.partition(":")
    if not user or (sep and not group):
        raise DockerfileError(f"invalid --chown value {text!r}: expected user[:group]")
    return user, (group if sep else None)


__all__ = [
    "BuildContextError",
    "CopyItem",
    "CopyPlan",
    "Destination",
    "add_source_kind",
    "check_copy_source",
    "destination",
    "match_wildcards",
    "parse_chmod",
    "parse_chown",
    "plan_copy",
]

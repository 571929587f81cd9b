"""COPY/ADD sources: wildcards, context escapes, destinations, --parents, --exclude, and content digests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.dockerignore import PatternMatcher, read_patterns
from dockyard.build.errors import BuildContextError, DockerfileError, SourceNotFound
from dockyard.build.hashing import copy_digest
from dockyard.build.sources import (
    Destination,
    add_source_kind,
    check_copy_source,
    destination,
    parse_chmod,
    parse_chown,
    plan_copy,
)
from dockyard.build.tree import SourceTree

FILES = {
    "a.go": "a", "b.go": "b", "README.md": "r", "arr[0].txt": "0", "index.js": "j", "index.ts": "t",
    "src/main.go": "m", "src/x/y.go": "y", "src/util/main.go": "u", "x/a.txt": "xa", "y/a.txt": "ya",
    "x/y/a.txt": "xya", "x/y/b.txt": "xyb", "dir1/f.png": "p", "dir1/f.txt": "t", "dir2/g.pdf": "g",
    "home.txt": "h", "homework/notes.txt": "n", "homework/plan.md": "p",
}


@pytest.fixture
def ctx(tmp_path: Path) -> SourceTree:
    for name, content in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    os.symlink("src", tmp_path / "srclink")
    os.symlink("main.go", tmp_path / "src" / "alias.go")
    os.symlink("/etc/passwd", tmp_path / "abs-out")
    os.symlink("../../etc", tmp_path / "src" / "rel-out")
    os.symlink("../outside-sibling", tmp_path / "sibling")
    (tmp_path.parent / "outside-sibling").mkdir(exist_ok=True)
    with SourceTree(str(tmp_path)) as tree:
        yield tree


def targets(tree: SourceTree, sources: list[str], dest: str = "/dst/", workdir: str = "/", **kw) -> list[str]:
    plan = plan_copy(tree, sources, destination(dest, workdir), **kw)
    return [target for _, _, target in plan.entries(tree)]


# -- wildcards ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, expected", [
    ("*.go", ["/dst/a.go", "/dst/b.go"]),  # top level only: * stops at /
    ("index.?s", ["/dst/index.js", "/dst/index.ts"]),
    ("arr[[]0].txt", ["/dst/arr[0].txt"]),
    ("src/*/main.go", ["/dst/main.go"]),
    ("*/a.txt", ["/dst/a.txt", "/dst/a.txt"]),
    ("src/*.go", ["/dst/alias.go", "/dst/main.go"]),
    ("*.nothing", []),  # a wildcard matching nothing copies nothing
    ("x/y/[ab].txt", ["/dst/a.txt", "/dst/b.txt"]),
])
def test_wildcards(ctx: SourceTree, pattern: str, expected: list[str]) -> None:
    assert targets(ctx, [pattern]) == expected


def test_wildcard_directory_match_copies_contents(ctx: SourceTree) -> None:
    assert targets(ctx, ["dir*"]) == ["/dst", "/dst/f.png", "/dst/f.txt", "/dst", "/dst/g.pdf"]


def test_wildcard_symlink_match_is_followed_inside_the_context(ctx: SourceTree) -> None:
    plan = plan_copy(ctx, ["src/alias.*"], destination("/dst/"))
    (item,) = plan.items
    assert (item.source, item.name, item.target) == ("src/main.go", "alias.go", "/dst/alias.go")


def test_missing_plain_source(ctx: SourceTree) -> None:
    with pytest.raises(SourceNotFound, match="'nope.txt' not found"):
        targets(ctx, ["nope.txt"])
    with pytest.raises(SourceNotFound):
        targets(ctx, ["nope/*.txt"])


def test_escaped_wildcard_is_literal(ctx: SourceTree) -> None:
    with pytest.raises(SourceNotFound):  # Docker uses such a path literally, backslash included
        targets(ctx, ["arr\\[0].txt"])


# -- the context boundary -----------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["../x", "../../etc/passwd", "a/../../x", "/../etc/passwd", "src/../.."])
def test_sources_outside_the_context_are_refused(ctx: SourceTree, source: str) -> None:
    with pytest.raises(BuildContextError, match="outside the build context"):
        targets(ctx, [source])


@pytest.mark.parametrize("source, link", [
    ("abs-out", "/etc/passwd"), ("src/rel-out", "../../etc"), ("sibling", "../outside-sibling"),
    ("src/rel-out/passwd", "../../etc"),
])
def test_symlinks_out_of_the_context_are_refused_when_followed(ctx: SourceTree, source: str,
                                                               link: str) -> None:
    with pytest.raises(BuildContextError, match=f"-> {link} points outside the build context"):
        targets(ctx, [source])


def test_symlinks_out_are_copied_as_links_never_read(ctx: SourceTree) -> None:
    plan = plan_copy(ctx, ["src"], destination("/app"))
    entries = {target: entry for _, entry, target in plan.entries(ctx)}
    assert entries["/app/rel-out"].kind == "symlink" and entries["/app/rel-out"].link == "../../etc"
    assert "/app/rel-out/passwd" not in entries


def test_paths_are_relative_to_the_context_root(ctx: SourceTree) -> None:
    assert targets(ctx, ["/a.go"], "/x") == ["/x"]
    assert targets(ctx, ["./src/../a.go"], "/x") == ["/x"]
    assert targets(ctx, ["srclink/x"], "/x/") == ["/x", "/x/y.go"]  # a symlink inside the context is fine


def test_wildcard_matching_an_escaping_link_is_refused(ctx: SourceTree) -> None:
    with pytest.raises(BuildContextError, match="outside the build context"):
        targets(ctx, ["abs-*"])


# -- destinations -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dest, workdir, expected", [
    ("/abs/", "/w", Destination("/abs", True)), ("/abs", "/w", Destination("/abs", False)),
    ("rel/", "/usr/src/app", Destination("/usr/src/app/rel", True)), (".", "/app", Destination("/app", True)),
    ("./", "/app", Destination("/app", True)), ("..", "/app/x", Destination("/app", True)),
    ("a/..", "/w", Destination("/w", True)), ("//x//y/", "/", Destination("/x/y", True)),
    ("file", "", Destination("/file", False)),
])
def test_destination(dest: str, workdir: str, expected: Destination) -> None:
    assert destination(dest, workdir) == expected


def test_file_to_file_and_into_directory(ctx: SourceTree) -> None:
    assert targets(ctx, ["a.go"], "/abs") == ["/abs"]  # creates a file at /abs
    assert targets(ctx, ["a.go"], "/abs/") == ["/abs/a.go"]
    plan = plan_copy(ctx, ["a.go"], destination("/abs"))
    assert plan.items[0].check_existing_dir  # the executor puts it inside /abs if that is a directory


def test_directory_contents_not_the_directory(ctx: SourceTree) -> None:
    assert targets(ctx, ["homework"], "/hw") == ["/hw", "/hw/notes.txt", "/hw/plan.md"]
    assert targets(ctx, ["homework/"], "/hw/") == ["/hw", "/hw/notes.txt", "/hw/plan.md"]
    assert targets(ctx, ["x"], "rel", workdir="/w") == ["/w/rel", "/w/rel/a.txt", "/w/rel/y",
                                                       "/w/rel/y/a.txt", "/w/rel/y/b.txt"]


@pytest.mark.parametrize("sources", [["a.go", "b.go"], ["*.go"]])
def test_several_sources_need_a_directory(ctx: SourceTree, sources: list[str]) -> None:
    with pytest.raises(DockerfileError, match="destination must be a directory and end with a /"):
        targets(ctx, sources, "/dst")
    assert targets(ctx, sources, "/dst/") == ["/dst/a.go", "/dst/b.go"]


def test_one_wildcard_match_may_go_to_a_file(ctx: SourceTree) -> None:
    assert targets(ctx, ["a.g?"], "/one") == ["/one"]


# -- --parents ----------------------------------------------------------------------------------------------

def test_parents_keep_paths(ctx: SourceTree) -> None:
    # Reference: COPY --parents ./x/a.txt ./y/a.txt /parents/ -> /parents/x/a.txt, /parents/y/a.txt
    got = targets(ctx, ["./x/a.txt", "./y/a.txt"], "/parents/", parents=True)
    assert [t for t in got if t.endswith(".txt")] == ["/parents/x/a.txt", "/parents/y/a.txt"]
    flat = targets(ctx, ["./x/a.txt", "./y/a.txt"], "/no_parents/")
    assert flat == ["/no_parents/a.txt", "/no_parents/a.txt"]


def test_parents_pivot(ctx: SourceTree) -> None:
    # Reference: COPY --parents ./x/./y/*.txt /parents/ -> /parents/y/a.txt, /parents/y/b.txt
    got = targets(ctx, ["./x/./y/*.txt"], "/parents/", parents=True)
    assert got == ["/parents", "/parents/y", "/parents/y/a.txt", "/parents/y/b.txt"]


def test_parents_double_star(ctx: SourceTree) -> None:
    got = targets(ctx, ["./src/**/*.go"], "/parents/", parents=True)
    assert [t for t in got if t.endswith(".go")] == ["/parents/src/alias.go", "/parents/src/main.go",
                                                     "/parents/src/util/main.go", "/parents/src/x/y.go"]


def test_parents_missing_source(ctx: SourceTree) -> None:
    with pytest.raises(SourceNotFound):
        targets(ctx, ["x/missing.txt"], "/p/", parents=True)


# -- --exclude ----------------------------------------------------------------------------------------------

def test_exclude_reference_example(ctx: SourceTree) -> None:
    # Reference: COPY --exclude=*.txt hom* /mydir/ adds what starts with "hom" except .txt files.
    assert targets(ctx, ["hom*"], "/mydir/", excludes=["*.txt"]) == ["/mydir", "/mydir/plan.md"]
    assert targets(ctx, ["hom*"], "/mydir/", excludes=["*.txt", "*.md"]) == ["/mydir"]


def test_exclude_is_relative_to_each_source(ctx: SourceTree) -> None:
    got = targets(ctx, ["."], "/1/", excludes=["*/*.png", "*/*.txt"])
    assert "/1/dir1/f.png" not in got and "/1/dir1/f.txt" not in got and "/1/dir2/g.pdf" in got
    assert "/1/home.txt" in got  # */*.txt does not match at the top
    assert targets(ctx, ["dir1"], "/2/", excludes=["*.png"]) == ["/2", "/2/f.txt"]


def test_exclude_with_exception(ctx: SourceTree) -> None:
    assert targets(ctx, ["x"], "/e/", excludes=["**/*.txt", "!y/b.txt"]) == ["/e", "/e/y", "/e/y/b.txt"]


# -- .dockerignore ------------------------------------------------------------------------------------------

def test_ignored_sources(tmp_path: Path) -> None:
    for name in ["app/main.py", "app/main.pyc", "docs/a.md", "build/out", "build/keep.txt", "Dockerfile"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    ignore = PatternMatcher(read_patterns("**/*.pyc\ndocs\nbuild\n!build/keep.txt\n"))
    with SourceTree(str(tmp_path), ignore=ignore) as tree:
        assert targets(tree, ["."], "/all/") == ["/all", "/all/Dockerfile", "/all/app", "/all/app/main.py",
                                                  "/all/build", "/all/build/keep.txt"]
        with pytest.raises(SourceNotFound):
            targets(tree, ["docs/a.md"])
        assert targets(tree, ["build"], "/b/") == ["/b", "/b/keep.txt"]
        assert targets(tree, ["app/*.py*"]) == ["/dst/main.py"]


# -- digests ------------------------------------------------------------------------------------------------

def digest(tree: SourceTree, sources: list[str], dest: str = "/app/", **kw) -> str:
    return copy_digest(tree, plan_copy(tree, sources, destination(dest), **kw))


def test_digest_follows_content_mode_and_owner_not_mtime(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "f"
    f.write_text("one")
    with SourceTree(str(tmp_path)) as tree:
        first = digest(tree, ["d"])
        os.utime(f, (1, 1))
        assert digest(tree, ["d"]) == first
        f.write_text("two")
        changed = digest(tree, ["d"])
        assert changed != first
        os.chmod(f, 0o700)
        assert digest(tree, ["d"]) != changed
        moded = digest(tree, ["d"])
        os.chown(f, 1234, 5678)
        assert digest(tree, ["d"]) != moded
        owned = digest(tree, ["d"])
        os.symlink("f", tmp_path / "d" / "link")
        linked = digest(tree, ["d"])
        assert linked != owned
        os.remove(tmp_path / "d" / "link")
        os.symlink("elsewhere", tmp_path / "d" / "link")
        assert digest(tree, ["d"]) != linked
        assert digest(tree, ["d"], "/other/") != digest(tree, ["d"])  # where it goes counts too


def test_digest_ignores_excluded_and_ignored_files(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("k")
    (tmp_path / "skip.log").write_text("1")
    with SourceTree(str(tmp_path), ignore=PatternMatcher(["*.log"])) as tree:
        first = digest(tree, ["."])
        (tmp_path / "skip.log").write_text("2")
        assert digest(tree, ["."]) == first


def test_digest_cache(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("data")
    cache: dict = {}
    with SourceTree(str(tmp_path)) as tree:
        plan = plan_copy(tree, ["f"], destination("/f"))
        assert copy_digest(tree, plan, cache) == copy_digest(tree, plan, cache) == copy_digest(tree, plan)
        assert len(cache) == 1


# -- the rest -----------------------------------------------------------------------------------------------

def test_deep_trees_do_not_recurse(tmp_path: Path) -> None:
    path = tmp_path
    for _ in range(300):
        path = path / "d"
    path.mkdir(parents=True)
    (path / "leaf").write_text("x")
    with SourceTree(str(tmp_path)) as tree:
        entries = list(tree.walk(""))
        assert entries[-1].path.endswith("/leaf") and len(entries) == 302


def test_rootfs_trees_scope_symlinks(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "busybox").write_text("bb")
    os.symlink("/usr/bin/busybox", tmp_path / "sh")
    os.symlink("../../../../usr", tmp_path / "usr" / "bin" / "up")
    with SourceTree(str(tmp_path), confine=False) as tree:
        assert tree.resolve("sh") == "usr/bin/busybox"
        assert tree.resolve("usr/bin/up/bin") == "usr/bin"
        assert tree.resolve("../../sh") == "usr/bin/busybox"
        assert targets(tree, ["/sh"], "/bin/sh") == ["/bin/sh"]


@pytest.mark.parametrize("src, kind", [
    ("https://example.com/a.tar.gz", "url"), ("http://x/y", "url"),
    ("git@github.com:moby/buildkit.git", "git"),
    ("https://github.com/moby/buildkit.git#v0.10.1", "git"), ("git://host/repo", "git"),
    ("local/file.txt", "local"), ("./http:/x", "local"),
])
def test_add_source_kind(src: str, kind: str) -> None:
    assert add_source_kind(src) == kind


def test_copy_refuses_urls() -> None:
    with pytest.raises(DockerfileError, match="source can't be a URL for COPY"):
        check_copy_source("https://example.com/x")
    check_copy_source("file.txt")


@pytest.mark.parametrize("text, expected", [("755", 0o755), ("0644", 0o644), ("7777", 0o7777), ("+x", "+x"),
                                            ("u=rwX,go=rX", "u=rwX,go=rX"), ("g=u", "g=u")])
def test_parse_chmod(text: str, expected: int | str) -> None:
    assert parse_chmod(text) == expected


@pytest.mark.parametrize("text", ["10000", "888", "u=q", "rwx"])
def test_bad_chmod(text: str) -> None:
    with pytest.raises(DockerfileError, match="invalid chmod parameter"):
        parse_chmod(text)


def test_parse_chown() -> None:
    assert parse_chown("55:mygroup") == ("55", "mygroup")
    assert parse_chown("bin") == ("bin", None)
    with pytest.raises(DockerfileError):
        parse_chown(":x")


def test_symlink_loops(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with SourceTree(str(tmp_path)) as tree:
        with pytest.raises(BuildContextError, match="too many levels of symbolic links"):
            targets(tree, ["a"])
        assert sorted(e.path for e in tree.walk("")) == ["", "a", "b"]  # walks never follow links


def test_errors_at_an_instruction(ctx: SourceTree) -> None:
    from dockyard.build.errors import at_instruction
    with pytest.raises(DockerfileError) as e, at_instruction("Dockerfile", 7):
        targets(ctx, ["missing.txt"])
    assert str(e.value).startswith("Dockerfile:7: ") and "missing.txt" in str(e.value)
    assert isinstance(e.value.__cause__, SourceNotFound)

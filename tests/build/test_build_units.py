"""Small pieces of the executor, without a build: modes, the digest memo, cache keys, explanations, stubs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.cache import (
    BuildCache,
    CacheRecord,
    DigestMemo,
    pack_files,
    slot_key,
    step_key,
    unpack_files,
)
from dockyard.build.contentsum import plan_digest
from dockyard.build.copier import apply_symbolic_mode
from dockyard.build.explain import explain_miss
from dockyard.build.hashing import copy_digest
from dockyard.build.sources import destination, plan_copy
from dockyard.build.tree import SourceTree
from dockyard.store.metadata import Database
from tests.build.imagefs import write_tree


@pytest.mark.parametrize(("mode", "spec", "is_dir", "expected"), [
    (0o644, "u+x", False, 0o744),
    (0o644, "+x", False, 0o755),
    (0o644, "go=rX", False, 0o644),
    (0o700, "go=rX", True, 0o755),
    (0o640, "g=u", False, 0o660),
    (0o755, "u+s,o-x", False, 0o4754),
    (0o777, "a-w", False, 0o555),
    (0o1777, "o=", True, 0o770),  # as GNU chmod: the sticky bit belongs to "o"
])
def test_symbolic_modes(mode, spec, is_dir, expected):
    assert apply_symbolic_mode(mode, spec, is_dir) == expected


def test_digest_memo_round_trip(tmp_path: Path):
    path = str(tmp_path / "memo")
    memo = DigestMemo(path)
    key = (1, 2, 3, 4_000_000_000_000_000_000, 5)
    memo[key] = "ab" * 32
    memo.save()
    again = DigestMemo(path)
    assert key in again and again[key] == "ab" * 32 and list(again) == [key]
    (tmp_path / "memo").write_bytes(b"garbage")
    assert len(DigestMemo(path)) == 0


def test_plan_digest_is_copy_digest_and_memo_skips_reads(tmp_path: Path):
    ctx = write_tree(tmp_path / "ctx", {"a.txt": "a", "d/b.txt": "b", "d/e/c.txt": "c"})
    tree = SourceTree(str(ctx))
    plan = plan_copy(tree, ["."], destination("/dst/"))
    memo = DigestMemo(str(tmp_path / "memo"))
    files: list[tuple[str, str]] = []
    assert plan_digest(tree, plan, memo, files) == copy_digest(tree, plan)
    assert {p for p, _ in files} == {".", "a.txt", "d", "d/b.txt", "d/e", "d/e/c.txt"}
    assert len(memo) == 3  # one digest per regular file
    memo.save()
    reloaded = DigestMemo(str(tmp_path / "memo"))
    for key in list(reloaded):
        reloaded[key] = "00" * 32  # a memo entry is believed: nothing is read again
    assert plan_digest(tree, plan, reloaded) != copy_digest(tree, plan)
    os.utime(ctx / "a.txt")  # a new ctime: that file is read again
    assert plan_digest(tree, plan, reloaded) != plan_digest(tree, plan, {})


def test_keys_depend_on_parent_and_inputs():
    inputs = {"op": "run", "argv": ["/bin/sh", "-c", "true"]}
    assert step_key("sha256:a", inputs) == step_key("sha256:a", dict(reversed(list(inputs.items()))))
    assert step_key("sha256:a", inputs) != step_key("sha256:b", inputs)
    assert step_key("sha256:a", inputs) != step_key("sha256:a", {**inputs, "env": ["A=1"]})
    assert slot_key("p", "RUN x") != slot_key("p", "RUN y")


def test_files_survive_any_name():
    files = [("new\nline", "1"), ("tab\tand\0nul", "2"), ("bad\udcffbyte", "3")]
    assert unpack_files(pack_files(files)) == dict(files)


def test_explanations(tmp_path: Path):
    cache = BuildCache(Database(tmp_path / "db"))
    slot = slot_key("parent", "COPY . /x")
    cache.put(CacheRecord("k1", slot, "parent", None, None, 0, None, None, "t", "COPY . /x",
                          {"op": "copy", "sources": "s1", "args": {"V": "1"}}),
              [("a.txt", "1"), ("b.txt", "2"), ("gone.txt", "3")])
    reasons = explain_miss(cache, slot, {"op": "copy", "sources": "s2", "args": {"V": "2"}},
                           [("a.txt", "1"), ("b.txt", "9"), ("new.txt", "4")], "COPY . /x", None, None)
    assert reasons == ["build arg V changed: '1' -> '2'", "file b.txt changed", "file new.txt added",
                       "file gone.txt removed"]
    other = slot_key("other-parent", "COPY . /x")
    assert explain_miss(cache, other, {}, None, "COPY . /x", 4, None) == [
        "its parent layer changed: step 4 was rebuilt"]
    assert explain_miss(cache, other, {}, None, "COPY . /x", None, "base:1") == [
        "its parent layer changed: the base image base:1 is not the one it was built on"]
    assert explain_miss(cache, other, {}, None, "RUN new", None, None) == ["no earlier build of this step"]

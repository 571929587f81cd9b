"""fsutil's file writing: a file written into place is either all there or not there at all."""

from __future__ import annotations

import os

import pytest

from dockyard.fsutil import WrittenIntoPlace


def test_written_into_place_replaces_only_when_the_block_ends_well(tmp_path):
    target = tmp_path / "out.tar"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with WrittenIntoPlace(str(target)) as f:
            f.write(b"half")
            raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.tar"]  # no temporary file left beside it
    with WrittenIntoPlace(str(target)) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.tar"]

"""Early writeback: big blobs go to disk while they are written, so the fsync that makes one visible is short."""

from __future__ import annotations

import errno
import hashlib
import os

from dockyard import linux
from dockyard.linux import SYNC_FILE_RANGE_WRITE, WRITEBACK_STEP, EarlyWriteback
from dockyard.store.store import Store

MiB = 1 << 20


def test_sync_file_range_reaches_the_kernel(tmp_path):
    # The arguments arrive as the kernel expects them: a file takes the hint, a pipe and bad flags are refused.
    with open(tmp_path / "f", "wb") as f:
        f.write(os.urandom(MiB))
        f.flush()
        assert linux._sync_file_range(f.fileno(), 0, MiB, SYNC_FILE_RANGE_WRITE) == 0
        assert linux._sync_file_range(f.fileno(), 5 << 30, MiB, SYNC_FILE_RANGE_WRITE) == 0  # past 4 GiB
        assert linux._sync_file_range(f.fileno(), 0, MiB, 0x80) == -1
        assert _errno() == errno.EINVAL
    read_end, write_end = os.pipe()
    try:
        assert linux._sync_file_range(write_end, 0, MiB, SYNC_FILE_RANGE_WRITE) == -1
        assert _errno() == errno.ESPIPE
    finally:
        os.close(read_end)
        os.close(write_end)


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def test_writeback_is_started_once_per_step(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        writeback = EarlyWriteback(fd)
        chunk = os.urandom(MiB)
        starts = []
        for n in range(1, 21):
            os.write(fd, chunk)
            writeback.wrote(n * MiB)
            starts.append(writeback.started)
        assert sorted(set(starts)) == [0, WRITEBACK_STEP, 2 * WRITEBACK_STEP]
        assert starts.index(WRITEBACK_STEP) == WRITEBACK_STEP // MiB - 1  # as soon as a step is complete
    finally:
        os.close(fd)


def test_blob_written_in_small_pieces_across_steps_is_intact(tmp_path):
    # The writer flushes its buffer before each writeback: a piece split over a step boundary must not be lost
    # or reordered.
    store = Store(tmp_path / "root")
    try:
        data = os.urandom(2 * WRITEBACK_STEP + 12345)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with store.lease() as lease:
            with store.blobs.writer(digest, len(data), on_verified=lease.claim_blob) as writer:
                view = memoryview(data)
                for start in range(0, len(data), 100_003):
                    writer.write(view[start:start + 100_003])
                assert writer.commit() == digest
            assert store.blobs.read(digest) == data
    finally:
        store.close()

"""The blob store, leases and garbage collection, including processes killed in the middle of their work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dockyard.errors import CorruptContent
from dockyard.store.blobs import digest_bytes
from dockyard.store.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "root")
    yield s
    s.close()


def test_blob_is_visible_only_when_verified(store):
    data = b"hello"
    digest = digest_bytes(data)
    with store.lease() as lease:
        with pytest.raises(CorruptContent, match="digest mismatch"):
            with store.blobs.writer("sha256:" + "0" * 64, on_verified=lease.claim_blob) as w:
                w.write(data)
                w.commit()
        with pytest.raises(CorruptContent, match="size mismatch"):
            with store.blobs.writer(digest, expected_size=4, on_verified=lease.claim_blob) as w:
                w.write(data[:3])
                w.commit()
        assert list(store.blobs.digests()) == []
        assert os.listdir(store.blobs.ingest_dir) == []
        assert store.blobs.put(data, on_verified=lease.claim_blob) == digest
        assert store.blobs.read(digest) == data


def test_digest_is_validated_before_becoming_a_path(store):
    with pytest.raises(Exception, match="digest"):
        store.blobs.path("sha256:../../etc/passwd")


def test_gc_keeps_leased_and_removes_unreferenced(store):
    with store.lease() as lease:
        digest = store.blobs.put(b"work in progress", on_verified=lease.claim_blob)
        assert store.collect_garbage().blobs == 0
        assert store.blobs.exists(digest)
    report = store.collect_garbage()
    assert report.blobs == 1 and not store.blobs.exists(digest)


def test_failed_operation_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.lease() as lease:
            store.blobs.put(b"half an import", on_verified=lease.claim_blob)
            raise RuntimeError("boom")
    assert list(store.blobs.digests()) == []
    assert store.db.query("SELECT * FROM leases") == []


def test_lease_of_a_killed_process_is_cleaned_by_the_next_one(tmp_path):
    root = tmp_path / "root"
    script = f"""
import os, sys, time
from pathlib import Path
from dockyard.store.store import Store
s = Store(Path({str(root)!r}))
with s.lease() as lease:
    d = s.blobs.put(b"orphan", on_verified=lease.claim_blob)
    snap = s.snapshots.prepare("extract/x", None)
    lease.claim_snapshot("extract/x")
    w = s.blobs.writer(on_verified=lease.claim_blob)
    w.write(b"partial")
    print("ready", flush=True)
    time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd())
    assert proc.stdout.readline().strip() == b"ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.listdir(root / "ingest")  # the partial upload is there
    store = Store(root)  # opening the store notices the dead lease and sweeps
    try:
        assert list(store.blobs.digests()) == []
        assert os.listdir(root / "ingest") == []
        assert store.db.query("SELECT * FROM snapshots") == []
        assert [e for e in os.listdir(root / "snapshots") if e.isdigit()] == []
        assert store.db.query("SELECT * FROM leases") == []
    finally:
        store.close()


def test_concurrent_writers_and_sweeps(tmp_path):
    """Writers claiming blobs while another process sweeps in a loop: no claimed blob is ever lost."""
    root = tmp_path / "root"
    Store(root).close()
    sweeper = subprocess.Popen([sys.executable, "-c", f"""
import time
from pathlib import Path
from dockyard.store.store import Store
s = Store(Path({str(root)!r}))
end = time.time() + 4
while time.time() < end:
    s.collect_garbage()
"""], cwd=os.getcwd())
    writer = f"""
import os
from pathlib import Path
from dockyard.store.store import Store
s = Store(Path({str(root)!r}))
for i in range(150):
    with s.lease() as lease:
        data = str(i % 7).encode() * 1000
        d = s.blobs.put(data, on_verified=lease.claim_blob)
        assert s.blobs.read(d) == data, "claimed blob vanished"
"""
    writers = [subprocess.Popen([sys.executable, "-c", writer], cwd=os.getcwd()) for _ in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    sweeper.wait(timeout=60)

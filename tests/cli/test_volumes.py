"""Volumes through the CLI: lifecycle, Docker's outputs and errors, and filling from the image."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.conftest import CLI


def test_volume_lifecycle(dy, busybox):
    assert dy.out("volume", "create", "v1") == "v1\n"
    assert dy.out("volume", "create", "--label", "team=a", "--label", "tier", "v2") == "v2\n"
    assert dy.out("volume", "create", "v1") == "v1\n"  # creating it again is fine
    anonymous = dy.out("volume", "create").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)
    assert dy.out("volume", "ls").splitlines() == [
        "DRIVER    VOLUME NAME", f"local     {anonymous}", "local     v1", "local     v2"]
    assert dy.out("volume", "ls", "-q", "-f", "name=v") == "v1\nv2\n"
    assert dy.out("volume", "ls", "-q", "-f", "label=team=a") == "v2\n"
    assert dy.out("volume", "ls", "-q", "-f", "label=tier", "-f", "label!=team=b") == "v2\n"
    assert dy.out("volume", "ls", "--format", "{{.Name}}:{{.Driver}}:{{.Labels}}", "-f", "name=v2") == \
        "v2:local:team=a,tier=\n"
    info = json.loads(dy.out("volume", "inspect", "v2"))
    assert info == [{"CreatedAt": info[0]["CreatedAt"], "Driver": "local", "Labels": {"team": "a", "tier": ""},
                     "Mountpoint": str(dy.root / "volumes" / "v2" / "_data"), "Name": "v2", "Options": {},
                     "Scope": "local"}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info[0]["CreatedAt"])
    assert dy.out("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "v1") == "v1 local\n"
    assert json.loads(dy.out("inspect", "--type", "volume", "v1"))[0]["Name"] == "v1"
    missing = dy("volume", "inspect", "nosuch", check=False)
    assert missing.returncode == 1 and b"get nosuch: no such volume" in missing.stderr

    dy("run", "-d", "--name", "user", "-v", "v1:/data", "busybox", "sleep", "1000")
    container = dy.out("inspect", "-f", "{{.Id}}", "user").strip()
    assert dy.out("volume", "ls", "-q", "-f", "dangling=true") == f"{anonymous}\nv2\n"
    assert dy.out("volume", "ls", "-q", "-f", "dangling=false") == "v1\n"
    in_use = dy("volume", "rm", "v1", check=False)
    assert in_use.returncode == 1
    assert in_use.stderr == f"Error response from daemon: remove v1: volume is in use - [{container}]\n".encode()
    assert dy.out("volume", "rm", "v2") == "v2\n"
    gone = dy("volume", "rm", "v2", check=False)
    assert gone.returncode == 1 and b"no such volume" in gone.stderr
    assert dy("volume", "rm", "-f", "v2").returncode == 0  # -f: a missing volume is fine

    bad_name = dy("volume", "create", "a/b", check=False)
    assert bad_name.returncode == 1 and b"includes invalid characters for a local volume name" in bad_name.stderr
    bad_driver = dy("volume", "create", "-d", "nfs", "x1", check=False)
    assert bad_driver.returncode == 1 and b'plugin "nfs" not found' in bad_driver.stderr
    bad_opt = dy("volume", "create", "-o", "foo=bar", "x2", check=False)
    assert bad_opt.returncode == 1 and b'invalid option: "foo"' in bad_opt.stderr


def test_volume_prune(dy, busybox):
    for name in ("keep", "drop"):
        dy("volume", "create", "--label", f"name={name}", name)
    anonymous = dy.out("volume", "create").strip()
    dy("run", "-d", "--name", "holder", "-v", "keep:/k", "busybox", "sleep", "1000")
    out = dy.out("volume", "prune", "-f")  # anonymous volumes only, by default
    assert out == f"Deleted Volumes:\n{anonymous}\n\nTotal reclaimed space: 0B\n"
    assert dy.out("volume", "prune", "-f", "-a", "--filter", "label=name=nothing") == "Total reclaimed space: 0B\n"
    (dy.root / "volumes" / "drop" / "_data" / "f").write_bytes(b"x" * 2000)
    out = dy.out("volume", "prune", "-f", "--all")
    assert out == "Deleted Volumes:\ndrop\n\nTotal reclaimed space: 2kB\n"  # "keep" is in use
    assert dy.out("volume", "ls", "-q") == "keep\n"
    declined = dy("volume", "prune", input=b"n\n")
    assert b"WARNING! This will remove anonymous local volumes not used by at least one container." in \
        declined.stdout


@pytest.fixture
def volume_image(dy: CLI, busybox, tmp_path: Path) -> str:
    """busybox plus /data/file, with VOLUME /data: made with `import -c 'VOLUME /data'`."""
    rootfs = tmp_path / "rootfs"
    dy("cp", dy.out("create", "busybox", "true").strip() + ":/.", str(rootfs))
    (rootfs / "data").mkdir()
    (rootfs / "data" / "file").write_text("from the image\n")
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    dy("import", "-c", "VOLUME /data", "-c", 'CMD ["sh"]', str(archive), "withvol:1")
    shutil.rmtree(rootfs)
    return "withvol:1"


def test_volumes_are_filled_from_the_image(dy, volume_image):
    # An anonymous volume for the image's VOLUME, filled with what the image has there.
    assert dy.out("run", "--name", "anon", volume_image, "cat", "/data/file") == "from the image\n"
    mounts = json.loads(dy.out("inspect", "-f", "{{json .Mounts}}", "anon"))
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/data"
    anonymous = mounts[0]["Name"]
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)
    assert (dy.root / "volumes" / anonymous / "_data" / "file").read_text() == "from the image\n"
    # A new named volume is filled too; once used, it keeps its own content.
    dy("run", "--rm", "-v", "named:/data", volume_image, "sh", "-c", "cat /data/file && echo mine > /data/file")
    assert (dy.root / "volumes" / "named" / "_data" / "file").read_text() == "mine\n"
    assert dy.out("run", "--rm", "-v", "named:/data", volume_image, "cat", "/data/file") == "mine\n"
    # An existing non-empty volume is not overwritten by the image.
    dy("volume", "create", "prefilled")
    (dy.root / "volumes" / "prefilled" / "_data" / "other").write_text("x")
    assert dy.out("run", "--rm", "-v", "prefilled:/data", volume_image, "ls", "/data") == "other\n"
    # rm -v takes the anonymous volume along; named ones stay.
    dy("rm", "-v", "anon")
    names = dy.out("volume", "ls", "-q").split()
    assert anonymous not in names and "named" in names

"""Templates make working base images from what the host has."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import CLI, have


def test_busybox_template(dy, tmp_path):
    out = dy.out("image", "bootstrap", "busybox")
    assert out.startswith("busybox:latest sha256:")
    image = json.loads(dy.out("image", "inspect", "busybox"))[0]
    assert image["Config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in image["Config"]["Env"])
    fs = image["GraphDriver"]["Data"].get("UpperDir") or image["GraphDriver"]["Data"]["Dir"]
    busybox = os.lstat(os.path.join(fs, "bin/busybox"))
    assert stat.S_IMODE(busybox.st_mode) == 0o755
    # Applets are hard links to the one binary, where busybox itself installs them.
    for applet in ("bin/sh", "bin/ls", "usr/bin/env", "sbin/ifconfig"):
        assert os.lstat(os.path.join(fs, applet)).st_ino == busybox.st_ino, applet
    with open(os.path.join(fs, "etc/passwd")) as f:
        users = [line.split(":")[0] for line in f]
    assert users == ["root", "nobody"]
    with open(os.path.join(fs, "etc/group")) as f:
        assert [line.split(":")[0] for line in f] == ["root", "nobody"]
    assert stat.S_IMODE(os.lstat(os.path.join(fs, "tmp")).st_mode) == 0o1777
    # The recipe is reproducible: the same binary gives the same image, on another root too.
    again = CLI(tmp_path / "again")
    assert again.out("image", "bootstrap", "busybox").split()[1] == image["Id"]


def test_busybox_template_custom_tag(dy):
    assert dy.out("image", "bootstrap", "busybox", "--tag", "tiny:1").startswith("tiny:1 ")


def test_unknown_template(dy):
    result = dy("image", "bootstrap", "gentoo", check=False)
    assert result.returncode == 125 and b"must be one of" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not have("debootstrap"), reason="debootstrap not installed (apt-get install debootstrap)")
def test_debian_template(dy):
    out = dy.out("image", "bootstrap", "debian", "--suite", "bookworm", timeout=1800)
    assert out.startswith("debian:bookworm sha256:")
    image = json.loads(dy.out("image", "inspect", "debian:bookworm"))[0]
    assert image["Config"]["Cmd"] == ["bash"]
    fs = image["GraphDriver"]["Data"].get("UpperDir") or image["GraphDriver"]["Data"]["Dir"]
    with open(os.path.join(fs, "etc/os-release")) as f:
        assert "bookworm" in f.read()
    assert os.path.exists(os.path.join(fs, "usr/bin/apt-get"))
    assert not os.path.exists(os.path.join(fs, "etc/hostname"))
    assert os.listdir(os.path.join(fs, "var/lib/apt/lists")) in ([], ["partial"], ["lock", "partial"],
                                                                  ["partial", "lock"], ["lock"])

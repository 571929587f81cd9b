"""The image commands as a user runs them: output shapes, flags, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dockyard.cli.main import COMMANDS


def test_images_table_and_quiet(dy, busybox):
    out = dy.out("images")
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[0].startswith("REPOSITORY   TAG       IMAGE ID       CREATED")
    assert lines[1].split()[:2] == ["busybox", "latest"]
    image_id = dy.out("image", "inspect", "--format", "{{.Id}}", "busybox").strip()
    assert lines[1].split()[2] == image_id[7:19]
    assert dy.out("images", "-q").split() == [image_id[7:19]]
    assert dy.out("images", "-q", "--no-trunc").split() == [image_id]


def test_images_format_and_filters(dy, busybox):
    dy("tag", "busybox", "example.com/team/app:v1")
    dy("tag", "busybox", "app:v2")
    assert dy.out("images", "--format", "{{.Repository}}:{{.Tag}}").split() == sorted(
        ["app:v2", "busybox:latest", "example.com/team/app:v1"])
    row = json.loads(dy.out("images", "--format", "{{json .}}", "busybox").strip())
    assert row["Repository"] == "busybox" and row["Tag"] == "latest" and row["Digest"] == "<none>"
    table = dy.out("images", "--format", "table {{.Repository}}\t{{.Tag}}").splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG"]
    assert dy.out("images", "-f", "reference=app*", "--format", "{{.Repository}}").split() == ["app"]
    assert dy.out("images", "example.com/team/app", "--format", "{{.Tag}}").split() == ["v1"]
    assert dy.out("images", "-f", "dangling=true", "-q") == ""
    bad = dy("images", "-f", "color=blue", check=False)
    assert bad.returncode == 1 and b"invalid filter 'color'" in bad.stderr


def test_images_digests_column(dy, busybox):
    assert dy.out("images", "--digests").splitlines()[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]


def test_dangling_after_retag(dy, busybox, tmp_path):
    rootfs = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(rootfs), "-C", str(tmp_path), "--files-from=/dev/null"], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["tar", "-cf", str(rootfs), "-C", str(tmp_path), "f"], check=True)
    first = dy.out("import", str(rootfs), "thing:1").strip()
    (tmp_path / "f").write_text("y")
    subprocess.run(["tar", "-cf", str(rootfs), "-C", str(tmp_path), "f"], check=True)
    dy("import", str(rootfs), "thing:1")
    assert dy.out("images", "-f", "dangling=true", "-q", "--no-trunc").split() == [first]
    rows = [line.split() for line in dy.out("images").splitlines()[1:]]
    assert ["<none>", "<none>", first[7:19]] in [r[:3] for r in rows]
    out = dy.out("image", "prune", "-f")
    assert f"deleted: {first}" in out and "Total reclaimed space:" in out
    assert dy.out("images", "-f", "dangling=true", "-q") == ""


def test_label_filters_on_images_and_prune(dy, tmp_path):
    (tmp_path / "f").write_text("x")
    rootfs = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(rootfs), "-C", str(tmp_path), "f"], check=True)
    keep = dy.out("import", "-c", "LABEL keep=yes", str(rootfs), "keep:1").strip()
    other = dy.out("import", "-c", "LABEL keep=no", "-m", "other", str(rootfs), "other:1").strip()
    plain = dy.out("import", "-m", "plain", str(rootfs), "plain:1").strip()
    listed = dy.out("images", "-q", "--no-trunc", "-f", "label=keep").split()
    assert sorted(listed) == sorted([keep, other])
    assert dy.out("images", "-q", "--no-trunc", "-f", "label=keep=yes").split() == [keep]
    # label!= spares what it names; label= takes only what it names; both must hold together
    out = dy.out("image", "prune", "-a", "-f", "--filter", "label=keep", "--filter", "label!=keep=yes")
    assert f"deleted: {other}" in out and keep not in out and plain not in out
    out = dy.out("image", "prune", "-a", "-f", "--filter", "label!=keep")
    assert f"deleted: {plain}" in out and keep not in out
    assert dy.out("images", "-q", "--no-trunc").split() == [keep]


def test_inspect_shape_and_format(dy, busybox):
    data = json.loads(dy.out("image", "inspect", "busybox"))
    assert isinstance(data, list) and len(data) == 1
    image = data[0]
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "ContainerConfig",
                "DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "GraphDriver",
                "RootFS", "Metadata"):
        assert key in image
    assert image["RepoTags"] == ["busybox:latest"]
    assert image["Config"]["Cmd"] == ["sh"] and image["Config"]["Hostname"] == ""
    assert image["RootFS"]["Type"] == "layers" and len(image["RootFS"]["Layers"]) == 1
    assert dy.out("inspect", "--format", "{{.Config.Cmd}}", "busybox").strip() == "[sh]"
    assert dy.out("inspect", "-f", "{{json .Config.Cmd}}", "busybox").strip() == '["sh"]'
    assert dy.out("inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox").strip().startswith("linux/")
    assert json.loads(dy.out("inspect", image["Id"][7:19]))[0]["Id"] == image["Id"]
    missing = dy("inspect", "nope", check=False)
    assert missing.returncode == 1 and b"No such object: nope" in missing.stderr
    missing = dy("image", "inspect", "busybox", "nope", check=False)
    assert missing.returncode == 1 and json.loads(missing.stdout)[0]["Id"] == image["Id"]


def test_history(dy, busybox):
    lines = dy.out("history", "busybox").splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert "dockyard image bootstrap busybox" in lines[1]
    assert dy.out("history", "-q", "--no-trunc", "busybox").strip().startswith("sha256:")


def test_tag_and_rmi_semantics(dy, busybox):
    image_id = dy.out("inspect", "-f", "{{.Id}}", "busybox").strip()
    dy("tag", "busybox", "other:1")
    # By id with two tags: refused without force.
    refused = dy("rmi", image_id[7:19], check=False)
    assert refused.returncode == 1 and b"must be forced" in refused.stderr
    # By name: only untagged while another name remains.
    assert dy.out("rmi", "other:1").strip() == "Untagged: other:1"
    assert dy.out("images", "-q") != ""
    out = dy.out("rmi", "busybox")
    assert out.splitlines() == ["Untagged: busybox:latest", f"Deleted: {image_id}"]
    assert dy.out("images", "-q") == ""
    gone = dy("rmi", "busybox", check=False)
    assert gone.returncode == 1 and b"No such image: busybox:latest" in gone.stderr


def test_rmi_force_by_id_removes_all_tags(dy, busybox):
    dy("tag", "busybox", "other:1")
    image_id = dy.out("inspect", "-f", "{{.Id}}", "busybox").strip()
    out = dy.out("rmi", "-f", image_id)
    assert "Untagged: busybox:latest" in out and "Untagged: other:1" in out and f"Deleted: {image_id}" in out
    assert dy.out("images", "-q") == ""
    assert list((dy.root / "blobs" / "sha256").iterdir()) == []


def test_bad_reference_names_the_rule(dy, busybox):
    result = dy("tag", "busybox", "Bad:tag", check=False)
    assert result.returncode == 1 and b"must be lowercase" in result.stderr
    result = dy("tag", "busybox", "ok:-bad", check=False)
    assert result.returncode == 1 and b"a tag must be" in result.stderr


def test_unknown_flag_and_command(dy):
    result = dy("images", "--bogus", check=False)
    assert result.returncode == 125 and b"unknown flag: --bogus" in result.stderr
    result = dy("frobnicate", check=False)
    assert result.returncode == 125 and b"is not a dockyard command" in result.stderr


@pytest.mark.parametrize("words", sorted({w for w in COMMANDS}))
def test_help_on_every_command(words):
    result = subprocess.run([sys.executable, "-m", "dockyard", *words, "--help"], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert f"usage: dockyard {' '.join(words)}".encode() in result.stdout
    assert b"SUPPRESS" not in result.stdout  # (a hidden flag such as pull's --disable-content-trust)


def test_top_level_help_and_version():
    result = subprocess.run([sys.executable, "-m", "dockyard", "--help"], capture_output=True, check=True)
    assert b"Commands:" in result.stdout and b"images" in result.stdout
    result = subprocess.run([sys.executable, "-m", "dockyard", "--version"], capture_output=True, check=True)
    assert result.stdout.startswith(b"dockyard version ")


def test_info_and_version(dy, busybox):
    out = dy.out("info")
    assert "Images: 1" in out and f"Docker Root Dir: {dy.root}" in out
    assert dy.out("info", "--format", "{{.Images}}").strip() == "1"
    assert dy.out("version", "--format", "{{.Server.ApiVersion}}").strip() == "1.41"


def test_state_root_from_environment(tmp_path, busybox_archive):
    root = tmp_path / "envroot"
    env = {"DOCKYARD_ROOT": str(root)}
    import os

    subprocess.run([sys.executable, "-m", "dockyard", "load", "-i", str(busybox_archive)], check=True,
                   env={**os.environ, **env}, capture_output=True)
    assert (root / "metadata.db").exists()


def test_concurrent_commands_on_one_root(dy, busybox_archive, tmp_path):
    """Loads, tags, removals and listings racing on one root leave a consistent store."""
    import os

    archives = []
    for n in range(3):
        (tmp_path / f"f{n}").write_text(f"image {n}\n" * 1000)
        tar = tmp_path / f"r{n}.tar"
        subprocess.run(["tar", "-cf", str(tar), "-C", str(tmp_path), f"f{n}"], check=True)
        archives.append(tar)
    dy("load", "-i", str(busybox_archive))
    base = [sys.executable, "-m", "dockyard", "--root", str(dy.root)]
    procs = []
    for round_ in range(3):
        for n, tar in enumerate(archives):
            procs.append(subprocess.Popen(base + ["import", str(tar), f"img{n}:{round_}"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE))
        procs.append(subprocess.Popen(base + ["images", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        procs.append(subprocess.Popen(base + ["tag", "busybox", f"bb:{round_}"], stderr=subprocess.PIPE))
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    # Remove half while loading the busybox archive again, concurrently.
    procs = [subprocess.Popen(base + ["rmi", f"img{n}:{r}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for n in range(3) for r in range(2)]
    procs.append(subprocess.Popen(base + ["load", "-i", str(busybox_archive)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE))
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    names = dy.out("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert sorted(n for n in names if n.startswith("img")) == ["img0:2", "img1:2", "img2:2"]
    # Every remaining image is whole: its blobs are there and it can be saved; nothing unreferenced remains.
    for name in names:
        dy("save", "-o", str(tmp_path / "check.tar"), name)
    from dockyard.engine.engine import Engine

    engine = Engine(dy.root)
    try:
        referenced = {d for image in engine.images.records.all() for d in engine.images.records.blobs_of(image.id)}
        present = set(engine.store.blobs.digests())
        assert referenced <= present
        assert engine.store.collect_garbage().blobs == 0  # the removals already swept
    finally:
        engine.close()
    assert os.listdir(dy.root / "ingest") == []

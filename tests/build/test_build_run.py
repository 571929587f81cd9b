"""RUN steps: the process (shell and exec forms, SHELL, here-documents), its user, directory and environment,
its network, and RUN --mount (cache, tmpfs, bind, secret) that never ends up in a layer."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

from tests.build.imagefs import image_files, layer_digests, layer_entries
from tests.conftest import cli_env
from tests.network.helpers import links, pins


def test_forms_shell_env_user_and_workdir(context, build, dy):
    ctx = context("""\
FROM busybox:latest
ENV GREETING=hello
ARG WHO=world
RUN echo "$GREETING $WHO" > /shell-form
RUN ["/bin/sh", "-c", "echo exec form > /exec-form"]
SHELL ["/bin/sh", "-c", "echo shell-prefix; eval \\"$1\\"", "sh"]
RUN id -u > /shell-changed
SHELL ["/bin/sh", "-c"]
WORKDIR /work/dir
RUN pwd > /cwd
USER nobody
RUN id -u > /tmp/uid && echo $HOME > /tmp/home
USER root
RUN mkdir /made-by-root
""")
    _, out, _ = build(ctx, "-t", "run:1")
    files = image_files(dy.root, "run:1")
    assert files["shell-form"].data == b"hello world\n"
    assert files["exec-form"].data == b"exec form\n"
    assert "shell-prefix" in out and files["shell-changed"].data == b"0\n"
    assert files["cwd"].data == b"/work/dir\n"
    assert files["tmp/uid"].data == b"65534\n" and files["tmp/uid"].uid == 65534
    assert files["tmp/home"].data == b"/home\n"


def test_heredoc_run_and_script_with_interpreter(context, build, dy):
    ctx = context("""\
FROM busybox:latest
RUN <<EOF
echo first > /h1
echo second >> /h1
EOF
RUN <<EOT
#!/bin/sh -e
echo "from script $0" > /h2
EOT
""")
    build(ctx, "-t", "run:2")
    files = image_files(dy.root, "run:2")
    assert files["h1"].data == b"first\nsecond\n"
    assert files["h2"].data.startswith(b"from script ")


def test_no_mount_stub_reaches_a_layer(context, build, dy):
    ctx = context("FROM busybox:latest\nRUN --mount=type=tmpfs,target=/scratch/space echo > /made\n")
    build(ctx, "-t", "run:3")
    names = layer_entries(dy.root, layer_digests(dy.root, "run:3")[-1])
    assert names == ["made"]  # not etc/, etc/hosts, etc/resolv.conf, scratch/


def test_cache_mounts_persist_and_stay_out_of_layers(context, build, dy):
    df = ("FROM busybox:latest\nARG N\n"
          "RUN --mount=type=cache,target=/cache sh -c 'echo $N >> /cache/log; cat /cache/log > /seen'\n")
    ctx = context(df)
    build(ctx, "-t", "run:4", "--build-arg", "N=1")
    build(ctx, "-t", "run:5", "--build-arg", "N=2")
    files = image_files(dy.root, "run:5")
    assert files["seen"].data == b"1\n2\n"
    assert "cache" not in files and "cache/log" not in files


def test_tmpfs_bind_and_secret_mounts(context, build, dy, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    ctx = context("""\
FROM busybox:latest AS tools
RUN echo from-stage > /tool.txt
FROM busybox:latest
RUN --mount=type=tmpfs,target=/t sh -c 'echo x > /t/x && df /t | grep -q tmpfs && echo ok > /tmpfs-ok'
RUN --mount=type=bind,source=conf,target=/conf cat /conf/app.conf > /bound
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/tool.txt cat /tool.txt > /from-stage
RUN --mount=type=bind,source=conf,target=/conf,rw sh -c 'echo scribble > /conf/app.conf'
RUN --mount=type=secret,id=token sh -c 'cat /run/secrets/token | wc -c > /secret-len'
RUN --mount=type=secret,id=token,env=TOKEN sh -c 'test "$TOKEN" = s3cr3t && echo yes > /secret-env'
""", {"conf/app.conf": "setting=1\n"})
    build(ctx, "-t", "run:6", "--secret", f"id=token,src={secret}")
    files = image_files(dy.root, "run:6")
    assert files["tmpfs-ok"].data == b"ok\n" and "t/x" not in files
    assert files["bound"].data == b"setting=1\n"
    assert files["from-stage"].data == b"from-stage\n"
    assert files["secret-len"].data.strip() == b"6" and files["secret-env"].data == b"yes\n"
    assert (ctx / "conf" / "app.conf").read_text() == "setting=1\n"  # rw binds write to a copy
    assert not any(name.startswith(("conf", "run/secrets")) for name in files)
    for digest in layer_digests(dy.root, "run:6")[1:]:
        assert not any("s3cr3t" in name for name in layer_entries(dy.root, digest))


def test_bind_mount_content_is_part_of_the_cache_key(context, build):
    ctx = context("FROM busybox:latest\nRUN --mount=type=bind,source=in.txt,target=/in.txt cat /in.txt\n",
                  {"in.txt": "v1"})
    build(ctx, "-t", "run:7")
    _, out, _ = build(ctx, "-t", "run:7")
    assert "CACHED" in out
    (ctx / "in.txt").write_text("v2")
    _, out, _ = build(ctx, "-t", "run:7")
    assert "Running in" in out and "v2" in out


def test_network_none_has_only_loopback(context, build, dy):
    ctx = context("FROM busybox:latest\nRUN --network=none sh -c 'ls /sys/class/net > /ifaces'\n"
                  "RUN ls /sys/class/net | wc -l > /host-ifaces\n")
    build(ctx, "-t", "run:8")
    files = image_files(dy.root, "run:8")
    assert files["ifaces"].data == b"lo\n"
    assert int(files["host-ifaces"].data) >= 1
    code, _, err = build(context("FROM busybox:latest\nRUN true\n"), "--network", "bridge2", check=False)
    assert code != 0 and "network" in err


def _eventually(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_default_network_is_a_bridge_namespace_lent_for_the_build(context, build, dy):
    """As dockerd's BuildKit does: RUN gets a namespace of its own on the default bridge (an address, the
    default route through the bridge), not the host's interfaces; it is given back when the build ends."""
    veths = links("vdy")
    ctx = context("FROM busybox:latest\n"
                  "RUN ls /sys/class/net > /ifaces && ip -4 route > /routes\n"
                  "RUN cat /etc/resolv.conf > /resolv\n"
                  "RUN --network=host ls /sys/class/net > /host-ifaces\n")
    build(ctx, "-t", "run:net")
    files = image_files(dy.root, "run:net")
    bridge = json.loads(dy.out("network", "inspect", "bridge"))[0]
    gateway = bridge["IPAM"]["Config"][0]["Gateway"]
    assert files["ifaces"].data.split() == [b"eth0", b"lo"]
    assert f"default via {gateway} dev eth0".encode() in files["routes"].data
    assert b"nameserver" in files["resolv"].data
    assert bridge["Options"]["com.docker.network.bridge.name"].encode() in files["host-ifaces"].data.split()
    assert _eventually(lambda: pins(dy) == [] and links("vdy") == veths)
    # the build started the monitor from its private mount namespace; the monitor went back to ours
    monitor = int((dy.root / "run" / "monitor.lock").read_text())
    assert os.readlink(f"/proc/{monitor}/ns/mnt") == os.readlink("/proc/self/ns/mnt")


def test_the_monitor_still_idles_out_after_lending_a_network(context, build, dy):
    """The build's connection is the monitor's only client while the build runs; once it is closed the
    monitor is idle again, and goes."""
    build(context("FROM busybox:latest\nRUN true\n"), "-t", "run:idle", env={"DOCKYARD_MONITOR_IDLE": "1"})
    monitor = int((dy.root / "run" / "monitor.lock").read_text())
    assert _eventually(lambda: not os.path.exists(f"/proc/{monitor}"), timeout=15)
    assert pins(dy) == []


def test_a_killed_build_gives_its_network_back(context, build, dy):
    """The monitor holds the build's namespace for as long as the build's connection is open."""
    ctx = context("FROM busybox:latest\nRUN sleep 60\n")
    cmd = [sys.executable, "-m", "dockyard", "--root", str(dy.root), "build", "-t", "killed:net", str(ctx)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
    try:
        assert _eventually(lambda: len(pins(dy)) == 1, timeout=30), "the build was never lent a namespace"
        lent = pins(dy)[0]
        assert any(link.startswith("vdy" + lent[:6]) for link in links("vdy"))
    finally:
        proc.kill()
        proc.wait()
    gone = f"vdy{lent[:6]}"
    assert _eventually(lambda: pins(dy) == [] and not any(link.startswith(gone) for link in links()))


def test_workdir_is_made_owned_by_the_user(context, build, dy):
    ctx = context("FROM busybox:latest\nUSER nobody\nWORKDIR /srv/app\nUSER root\nWORKDIR /\nWORKDIR relative\n")
    build(ctx, "-t", "run:9")
    files = image_files(dy.root, "run:9")
    assert files["srv/app"].uid == 65534 and files["srv/app"].kind == "dir"
    assert stat.S_IMODE(files["srv/app"].mode) == 0o755
    assert files["relative"].kind == "dir"

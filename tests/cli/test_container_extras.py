"""diff, commit, export, top, stats, port and container prune, on real containers through the CLI."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time

from tests.conftest import CLI


def wait_running(dy: CLI, name: str) -> None:
    deadline = time.monotonic() + 10
    while dy.out("inspect", "-f", "{{.State.Running}}", name).strip() != "true":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_diff(dy, busybox):
    dy("run", "--name", "d1", "busybox", "sh", "-c", "touch /tmp/x && rm /bin/ls && echo >> /etc/group")
    assert dy.out("diff", "d1") == "C /bin\nD /bin/ls\nC /etc\nC /etc/group\nC /tmp\nA /tmp/x\n"
    dy("run", "-d", "--name", "d2", "busybox", "sleep", "1000")
    assert dy.out("diff", "d2") == ""  # the files made for mounts (/etc/hosts...) are not changes
    dy("exec", "d2", "mkdir", "-p", "/srv/a")
    assert dy.out("diff", "d2") == "A /srv\nA /srv/a\n"
    missing = dy("diff", "nosuch", check=False)
    assert missing.returncode == 1 and b"No such container: nosuch" in missing.stderr


def test_commit_then_run(dy, busybox):
    dy("run", "--name", "base", "-e", "FROM_RUN=1", "busybox", "sh", "-c", "echo committed > /hello")
    image_id = dy.out("commit", "-a", "Ann <ann@example.com>", "-m", "add hello", "-c", 'CMD ["cat", "/hello"]',
                      "-c", "ENV GREETING=hi", "-c", "LABEL stage=two", "base", "mine/app:v1").strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    assert dy.out("run", "--rm", "mine/app:v1") == "committed\n"
    env = dy.out("run", "--rm", "mine/app:v1", "env")
    assert "GREETING=hi" in env and "FROM_RUN=1" in env
    info = json.loads(dy.out("image", "inspect", "mine/app:v1"))[0]
    base_id = dy.out("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    container_id = dy.out("inspect", "-f", "{{.Id}}", "base").strip()
    assert info["Id"] == image_id and info["Parent"] == base_id and info["Container"] == container_id
    assert info["Author"] == "Ann <ann@example.com>" and info["Comment"] == "add hello"
    assert info["Config"]["Cmd"] == ["cat", "/hello"] and info["Config"]["Labels"] == {"stage": "two"}
    assert len(info["RootFS"]["Layers"]) == 2
    history = json.loads(dy.out("image", "inspect", "-f", "{{json .}}", "mine/app:v1"))
    assert history["Id"] == image_id
    top = dy.out("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "mine/app:v1").splitlines()[0]
    assert top == "sh -c echo committed > /hello|add hello"
    # The base image now has a child: it cannot be removed from under it.
    refused = dy("rmi", "-f", base_id, check=False)
    assert refused.returncode != 0 and b"dependent child images" in refused.stderr
    # Nothing changed: no new layer, only a history entry.
    dy("run", "--name", "idle", "busybox", "true")
    idle = dy.out("commit", "idle").strip()
    assert json.loads(dy.out("image", "inspect", idle))[0]["RootFS"]["Layers"] == info["RootFS"]["Layers"][:1]
    bad = dy("commit", "-c", "RUN echo no", "base", check=False)
    assert bad.returncode != 0 and b"not a valid change command" in bad.stderr


def test_commit_running_container_pauses_it(dy, busybox):
    dy("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo v1 > /state && exec sleep 1000")
    wait_running(dy, "live")
    dy("exec", "live", "sh", "-c", "echo v2 > /state")
    dy("commit", "live", "snap:1")
    assert dy.out("inspect", "-f", "{{.State.Status}}", "live").strip() == "running"  # unpaused again
    assert dy.out("run", "--rm", "snap:1", "cat", "/state") == "v2\n"
    dy("commit", "--pause=false", "live", "snap:2")
    assert dy.out("run", "--rm", "snap:2", "cat", "/state") == "v2\n"


def test_export_import_round_trip(dy, busybox, tmp_path):
    dy("run", "--name", "ex", "busybox", "sh", "-c", "echo exported > /data.txt && rm /bin/ls && "
                                                     "mkdir /empty && ln -s /data.txt /link")
    target = tmp_path / "ex.tar"
    dy("export", "-o", str(target), "ex")
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        assert tar.getmember("link").linkname == "/data.txt"
    assert {"data.txt", "empty", "bin/sh", "etc/passwd"} <= names and "bin/ls" not in names
    assert dy("export", "ex").stdout == target.read_bytes()  # stdout gives the same stream
    dy("import", str(target), "roundtrip:1")
    assert dy.out("run", "--rm", "roundtrip:1", "cat", "/link") == "exported\n"
    assert dy("run", "--rm", "roundtrip:1", "ls", "/", check=False).returncode == 127  # /bin/ls is gone


def test_export_running_container(dy, busybox):
    dy("run", "-d", "--name", "exr", "busybox", "sh", "-c", "echo live > /live && exec sleep 1000")
    deadline = time.monotonic() + 10
    while True:
        with tarfile.open(fileobj=io.BytesIO(dy("export", "exr").stdout)) as tar:
            names = tar.getnames()
            if "live" in names:
                break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "proc" in names and not any(n.startswith("proc/") for n in names)  # not the container's /proc


def test_top_lists_the_sleep(dy, busybox):
    marker = str(200000 + int.from_bytes(os.urandom(3), "big"))
    dy("run", "-d", "--name", "tp", "busybox", "sh", "-c", f"sleep {marker} & exec sleep {marker}1")
    wait_running(dy, "tp")
    pid = dy.out("inspect", "-f", "{{.State.Pid}}", "tp").strip()
    deadline = time.monotonic() + 10
    while True:
        out = dy.out("top", "tp")
        if f"sleep {marker}\n" in out and f"sleep {marker}1" in out:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lines = out.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert lines[0].startswith("UID" + " " * 17 + "PID")  # Docker's 20-column cells
    rows = [line.split(None, 7) for line in lines[1:]]
    assert len(rows) == 2
    main = next(r for r in rows if r[7] == f"sleep {marker}1")
    assert main[0] == "root" and main[1] == pid
    child = next(r for r in rows if r[7] == f"sleep {marker}")
    assert child[2] == pid  # its parent is the container's PID 1
    custom = dy.out("top", "tp", "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and len(custom) == 3
    dy("stop", "-t", "0", "tp")
    stopped = dy("top", "tp", check=False)
    assert stopped.returncode == 1 and b"is not running" in stopped.stderr


def test_stats_no_stream(dy, busybox):
    dy("run", "-d", "--name", "limited", "--memory", "64m", "busybox", "sleep", "1000")
    dy("run", "-d", "--name", "spinner", "busybox", "sh", "-c", "while :; do :; done")
    dy("create", "--name", "idle", "busybox", "true")
    wait_running(dy, "spinner")
    out = dy.out("stats", "--no-stream")
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                                            "NET I/O", "BLOCK I/O", "PIDS"]
    assert len(lines) == 3  # running containers only
    rows = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[1]] = cells
    limited, spinner = rows["limited"], rows["spinner"]
    usage, limit = limited[3].split(" / ")
    assert limit == "64MiB"
    assert re.fullmatch(r"[\d.]+(B|KiB|MiB)", usage)
    assert 0.0 <= float(limited[4].rstrip("%")) < 50.0
    assert float(spinner[2].rstrip("%")) > 10.0  # a busy loop shows up
    assert float(spinner[2].rstrip("%")) <= 100.0 * (os.cpu_count() or 1) + 1
    assert limited[5] == "0B / 0B" and int(limited[7]) == 1
    every = dy.out("stats", "--no-stream", "-a", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}")
    assert "idle 0.00% 0B / 0B 0" in every.splitlines()
    as_json = json.loads(dy.out("stats", "--no-stream", "--format", "{{json .}}", "limited"))
    assert as_json["Name"] == "limited" and as_json["MemUsage"].endswith("/ 64MiB")
    assert set(as_json) >= {"Container", "ID", "CPUPerc", "MemPerc", "NetIO", "BlockIO", "PIDs"}
    missing = dy("stats", "--no-stream", "nosuch", check=False)
    assert missing.returncode != 0 and b"No such container: nosuch" in missing.stderr


def test_port(dy, busybox, engine):
    dy("run", "-d", "--name", "web", "busybox", "sleep", "1000")
    assert dy.out("port", "web") == ""
    none = dy("port", "web", "80", check=False)
    assert none.returncode == 1 and none.stderr == b"Error: No public port '80/tcp' published for web\n"
    record = engine.containers.get("web")

    def publish(data: dict) -> None:  # what the networking code will record
        data["NetworkSettings"]["Ports"] = {
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}], "9000/tcp": None}
    engine.containers.records.update(record.id, publish)
    assert dy.out("port", "web").splitlines() == ["53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080",
                                                  "80/tcp -> [::]:8080"]
    assert dy.out("port", "web", "80").splitlines() == ["0.0.0.0:8080", "[::]:8080"]
    assert dy.out("port", "web", "53/udp") == "127.0.0.1:5353\n"
    assert dy("port", "web", "9000", check=False).returncode == 1


def test_container_prune(dy, busybox):
    dy("run", "-d", "--name", "up", "busybox", "sleep", "1000")
    exited = [dy.out("run", "-d", "--name", f"gone{i}", "busybox", "true").strip() for i in range(2)]
    created = dy.out("create", "--name", "fresh", "busybox", "true").strip()
    kept = dy.out("run", "-d", "--name", "labelled", "--label", "keep=yes", "busybox", "true").strip()
    for cid in exited + [kept]:
        dy("wait", cid)
    out = dy.out("container", "prune", "-f", "--filter", "label!=keep")
    head, _, tail = out.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "Deleted Containers:" and sorted(lines[1:]) == sorted(exited + [created])
    assert re.fullmatch(r"Total reclaimed space: [\d.]+[kMG]?B\n", tail)
    assert sorted(dy.out("ps", "-a", "--format", "{{.Names}}").split()) == ["labelled", "up"]
    assert dy.out("container", "prune", "-f", "--filter", "until=1h") == "Total reclaimed space: 0B\n"
    assert dy.out("container", "prune", "-f").splitlines()[:2] == ["Deleted Containers:", kept]
    declined = dy("container", "prune", input=b"n\n")
    assert b"WARNING! This will remove all stopped containers." in declined.stdout


def test_stats_streams_until_interrupted(dy, busybox):
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    dy("run", "-d", "--name", "streamed", "busybox", "sleep", "1000")
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), "stats", "streamed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=cli_env())
    time.sleep(3.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    tables = out.decode().split("CONTAINER ID")
    assert len(tables) >= 3 and all("streamed" in t for t in tables[1:])  # a fresh table every second

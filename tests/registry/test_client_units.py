"""Client pieces on their own: credentials file, challenges, platform choice, insecure registries."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.errors import NotFound
from dockyard.image.model import Descriptor
from dockyard.registry.client.auth import parse_challenges
from dockyard.registry.client.credentials import Credentials, CredentialStore
from dockyard.registry.client.hosts import api_host, credential_key, is_insecure, normalize_server
from dockyard.registry.client.platforms import Platform, choose, parse_platform


def test_credentials_in_docker_config_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {}}))
    store = CredentialStore()
    assert store.path == tmp_path / "cfg" / "config.json"
    store.store("127.0.0.1:5000", Credentials("u", "p:with:colons"))
    store.store("docker.io", Credentials("hubuser", "hubpass"))
    value = json.loads(store.path.read_text())
    assert value["psFormat"] == "table {{.ID}}"  # other settings kept
    assert base64.b64decode(value["auths"]["127.0.0.1:5000"]["auth"]) == b"u:p:with:colons"
    assert "https://index.docker.io/v1/" in value["auths"]
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.get("127.0.0.1:5000") == Credentials("u", "p:with:colons")
    assert store.get("https://127.0.0.1:5000/v2/") == Credentials("u", "p:with:colons")
    assert store.get("index.docker.io") == Credentials("hubuser", "hubpass")
    assert store.get("other.example") is None
    assert store.erase("127.0.0.1:5000") is True
    assert store.erase("127.0.0.1:5000") is False
    assert store.get("127.0.0.1:5000") is None


def test_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text(f"""#!/bin/sh
read input
case "$1" in
  get) if [ "$input" = "reg.example" ]; then echo '{{"Username":"h","Secret":"s"}}'; \
else echo "credentials not found in native keychain"; exit 1; fi;;
  store) echo "$input" > {tmp_path}/stored;;
  erase) echo "$input" > {tmp_path}/erased;;
esac
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    store = CredentialStore(tmp_path)
    assert store.get("reg.example") == Credentials("h", "s")
    store.store("reg.example", Credentials("a", "b"))
    assert json.loads((tmp_path / "stored").read_text()) == {"ServerURL": "reg.example", "Username": "a",
                                                             "Secret": "b"}
    assert json.loads(store.path.read_text())["auths"]["reg.example"] == {}
    store.erase("reg.example")
    assert (tmp_path / "erased").read_text().strip() == "reg.example"


def test_parse_challenges() -> None:
    [c] = parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                           'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull"}
    [c] = parse_challenges('Basic realm="Registry Realm"')
    assert c.scheme == "basic" and c.params["realm"] == "Registry Realm"
    [c] = parse_challenges('Bearer realm="x",error="insufficient_scope",scope="a:b:c d:e:f"')
    assert c.params["error"] == "insufficient_scope" and c.params["scope"] == "a:b:c d:e:f"


def test_hosts_and_insecure() -> None:
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert credential_key("docker.io") == "https://index.docker.io/v1/"
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    for domain in ("127.0.0.1:5000", "127.1.2.3", "localhost:5000", "[::1]:5000"):
        assert is_insecure(domain, []), domain
    assert not is_insecure("registry.example:5000", [])
    assert is_insecure("registry.example:5000", ["registry.example:5000"])
    assert is_insecure("registry.example", ["registry.example"])
    assert is_insecure("10.1.2.3:5000", ["10.0.0.0/8"])
    assert not is_insecure("192.168.1.1:5000", ["10.0.0.0/8"])


def test_platform_choice() -> None:
    def entry(arch: str, variant: str | None = None, os_name: str = "linux") -> Descriptor:
        platform = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
        return Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + f"{arch}{variant}".ljust(64, "0")
                          [:64].encode().hex()[:64], 1, {}, platform)

    entries = [entry("amd64"), entry("arm", "v6"), entry("arm", "v7"), entry("arm64", "v8"),
               entry("unknown", None, "unknown")]
    assert parse_platform("linux/arm64") == Platform("linux", "arm64", None)
    assert parse_platform("aarch64") == Platform("linux", "arm64", None)
    assert choose(entries, parse_platform("linux/amd64")) is entries[0]
    assert choose(entries, parse_platform("linux/arm64")) is entries[3]
    assert choose(entries, parse_platform("linux/arm64/v8")) is entries[3]
    assert choose(entries, parse_platform("linux/arm/v6")) is entries[1]
    assert choose(entries, parse_platform("linux/arm")) is entries[2]  # arm means v7
    with pytest.raises(NotFound):
        choose(entries, parse_platform("windows/amd64"))
    assert parse_platform(None).os == "linux"


def test_progress_displays() -> None:
    import io

    from dockyard.registry.client.progress import JsonProgress, PlainProgress, TerminalProgress

    out = io.StringIO()
    plain = PlainProgress(out)
    plain.message("v1: Pulling from lib/bb")
    plain.layer("abc", "Pulling fs layer")
    plain.layer("abc", "Downloading", 10, 100)  # byte counts are not shown off a terminal
    plain.layer("abc", "Pull complete")
    assert out.getvalue() == "v1: Pulling from lib/bb\nabc: Pulling fs layer\nabc: Pull complete\n"
    tty = io.StringIO()
    terminal = TerminalProgress(tty)
    terminal.layer("abc", "Pulling fs layer")
    terminal.layer("def", "Pulling fs layer")
    terminal.layer("abc", "Downloading", 50, 100)
    terminal.close()
    text = tty.getvalue()
    assert "\x1b[2A" in text and "[" + "=" * 24 + ">" in text  # redrawn in place, with a bar
    messages: list[dict] = []
    JsonProgress(messages.append).layer("abc", "Downloading", 5, 10)
    assert messages[0]["progressDetail"] == {"current": 5, "total": 10} and messages[0]["id"] == "abc"


def test_run_all_ticks_as_soon_as_woken_or_a_task_ends(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    from dockyard.registry.client import parallel

    monkeypatch.setattr(parallel, "WAKE_TIMEOUT", 30.0)  # so a tick that waited for the timeout would show
    wake, first, second = threading.Event(), threading.Event(), threading.Event()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        (second if first.is_set() else first).set()

    def task(cancel: threading.Event) -> None:
        assert first.wait(5)
        wake.set()
        assert second.wait(5)  # a tick came because of the wake, the task still running

    start = time.monotonic()
    parallel.run_all([task], 1, tick, wake)
    assert time.monotonic() - start < 5  # and the end of the task was noticed at once too
    assert len(ticks) >= 3


def test_run_all_raises_the_first_failure_and_cancels_the_rest() -> None:
    import threading

    import pytest

    from dockyard.registry.client.parallel import run_all

    cancelled = threading.Event()

    def failing(cancel: threading.Event) -> None:
        raise ValueError("boom")

    def waiting(cancel: threading.Event) -> None:
        if cancel.wait(5):
            cancelled.set()

    with pytest.raises(ValueError, match="boom"):
        run_all([waiting, failing], 2)
    assert cancelled.is_set()


def test_run_all_runs_at_most_workers_tasks_at_once() -> None:
    import threading
    import time

    from dockyard.registry.client.parallel import run_all

    lock = threading.Lock()
    running, most, ran = 0, 0, []

    def task(cancel: threading.Event) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
            ran.append(threading.current_thread().name)

    ticks: list[int] = []
    run_all([task] * 8, 3, lambda: ticks.append(len(ran)))
    assert len(ran) == 8 and most == 3 and len(set(ran)) == 3
    assert ticks[-1] == 8  # the last tick comes after every task has ended
    run_all([], 3, lambda: ticks.append(-1))
    assert ticks[-1] == -1  # no tasks: one tick all the same


def test_run_all_on_ctrl_c_cancels_the_tasks_and_waits_for_them() -> None:
    import threading

    import pytest

    from dockyard.registry.client.parallel import run_all

    started, ended = threading.Event(), threading.Event()

    def task(cancel: threading.Event) -> None:
        started.set()
        if cancel.wait(5):
            ended.set()

    def tick() -> None:
        if started.is_set():
            raise KeyboardInterrupt  # as the signal handler raises it, on the calling thread

    with pytest.raises(KeyboardInterrupt):
        run_all([task], 2, tick)
    assert ended.is_set()


def test_spill_then_pipe_reads_the_spill_first(tmp_path: Path) -> None:
    import tempfile

    from dockyard.registry.client.unpack import _SpillThenPipe

    spill = tempfile.TemporaryFile(dir=tmp_path)
    spill.write(b"spilled")
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"+piped")
    os.close(write_fd)
    source = _SpillThenPipe(spill, 5, os.fdopen(read_fd, "rb", buffering=0))  # the spill holds 5 of its bytes
    out = b""
    buf = bytearray(3)
    while n := source.readinto(buf):
        out += buf[:n]
    assert out == b"spill+piped"
    source.pipe.close()
    spill.close()

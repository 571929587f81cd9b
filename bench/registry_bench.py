#!/usr/bin/env python3
"""Registry benchmark (the S5 scenario of ../shared/bench): push and pull of an image with one 200 MiB layer.

Two flavours: `rand` (seeded pseudo-random bytes, incompressible) and `text` (seeded synthetic log lines,
gzip ratio about 4). The layer is gzip-compressed once, up front, so every client sends the same blob and
the figures measure transfer, not compression. Over loopback, in one run:

    skopeo  -> docker-registry        the reference pair (what the issue's targets are measured against)
    skopeo  -> dockyard server        target: at least as fast as the line above
    dockyard -> dockyard server       target: at least as fast as skopeo against the same server
    dockyard -> docker-registry       for completeness

Push goes to a registry restarted with empty storage every run; pull goes into an empty destination (skopeo:
a fresh OCI directory; dockyard: after `rmi`, so the blobs are gone too). `dockyard pull` also unpacks the
layer into a snapshot, as docker does; "transfer" is the client's download alone (in-process, no unpack).
MiB/s = 200 MiB of payload / wall-clock seconds. docker and podman (S5's peers in ../shared/bench/anchors)
are measured the same way against docker-registry when they are installed and answer `info` (the image is
loaded into them with skopeo; their push recompresses, as S5's does); otherwise their rows print n/a.

Run as root: python3 bench/registry_bench.py [--runs 3] [--work /tmp/registry-bench] [--kinds rand,text]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from launcher import write_launcher  # (bench/ is sys.path[0] when a benchmark runs)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "registry"))
MiB = 1 << 20
PAYLOAD = 200 * MiB


# --- data ---------------------------------------------------------------------------------------------------------

def payload_rand(seed: int = 5) -> bytes:
    return random.Random(seed).randbytes(PAYLOAD)


def payload_text(seed: int = 5) -> bytes:
    rng = random.Random(seed)
    levels = ["INFO", "WARN", "DEBUG", "ERROR"]
    words = ["request", "served", "cache", "miss", "hit", "user", "session", "upstream", "latency", "bytes",
             "connection", "closed", "opened", "retry", "timeout", "ok", "failed", "queue", "worker", "job"]
    out = io.BytesIO()
    t = 1_700_000_000
    while out.tell() < PAYLOAD:
        t += rng.randint(0, 3)
        line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}Z {rng.choice(levels)} "
                f"pid={rng.randint(1, 65535)} " + " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
                + f" id={rng.getrandbits(48):012x} took={rng.random() * 1000:.3f}ms\n")
        out.write(line.encode())
    return out.getvalue()[:PAYLOAD]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layout(work: Path, kind: str) -> Path:
    """An OCI layout: a busybox layer and the 200 MiB payload layer, both gzipped. Cached in `work`."""
    layout = work / f"layout-{kind}"
    if (layout / "index.json").exists():
        return layout
    from conftest import busybox_layer, write_oci_layout  # the tests' OCI layout writer

    data = payload_rand() if kind == "rand" else payload_text()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
    tmp = work / f"layout-{kind}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_oci_layout(tmp, "1", [busybox_layer(), layer])
    tmp.rename(layout)
    return layout


# --- registries ---------------------------------------------------------------------------------------------------

class Registry:
    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        self.root = work / f"store-{kind}"
        self.server = None

    def start(self) -> "Registry":
        from conftest import start_distribution, start_dockyard_registry

        shutil.rmtree(self.root, ignore_errors=True)
        self.server = (start_dockyard_registry(self.root) if self.kind == "dockyard"
                       else start_distribution(self.root))
        return self

    @property
    def host(self) -> str:
        return self.server.host

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def remove_image(engine: str, ref: str) -> None:
    """Remove the image `ref` names, by id, so that no other tag keeps its layers (a pull would then skip
    them: an image left over by an earlier run made podman's pull here take 0.04 s)."""
    found = subprocess.run([engine, "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    if found.returncode == 0:
        subprocess.run([engine, "rmi", "-f", found.stdout.strip()], capture_output=True)
    if subprocess.run([engine, "image", "inspect", ref], capture_output=True).returncode == 0:
        raise RuntimeError(f"could not remove {ref} from {engine} before pulling it")


# --- clients ------------------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.results: dict[tuple[str, str, str, str], list[float]] = {}   # (kind, pair, op, what) -> seconds
        self.dy_root = self.work / "dockyard-root"
        self.env = dict(os.environ, DOCKER_CONFIG=str(self.work / "docker-config"))
        self.launcher = write_launcher(str(self.work / "bin" / "dockyard"))

    def record(self, kind: str, pair: str, op: str, seconds: float) -> None:
        self.results.setdefault((kind, pair, op), []).append(seconds)
        print(f"  {kind:4} {pair:28} {op:14} {seconds:6.2f} s  {PAYLOAD / MiB / seconds:7.1f} MiB/s", flush=True)

    def dockyard(self, *args: str) -> list[str]:
        return [self.launcher, "--root", str(self.dy_root), *args]

    def skopeo_push(self, layout: Path, host: str, repo: str) -> float:
        return timed(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:1",
                      f"docker://{host}/{repo}:1"])

    def skopeo_pull(self, host: str, repo: str) -> float:
        dest = self.work / "skopeo-pull"
        shutil.rmtree(dest, ignore_errors=True)
        t = timed(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false", f"docker://{host}/{repo}:1",
                   f"oci:{dest}:1"])
        shutil.rmtree(dest, ignore_errors=True)
        return t

    def dockyard_rmi_all(self) -> None:
        subprocess.run(self.dockyard("image", "prune", "-a", "-f"), capture_output=True, env=self.env)

    def dockyard_pull(self, host: str, repo: str) -> float:
        self.dockyard_rmi_all()
        return timed(self.dockyard("pull", "-q", f"{host}/{repo}:1"), self.env)

    def dockyard_push(self, host: str, repo: str, source: str) -> float:
        subprocess.run(self.dockyard("tag", source, f"{host}/{repo}:1"), check=True, capture_output=True,
                       env=self.env)
        return timed(self.dockyard("push", "-q", f"{host}/{repo}:1"), self.env)

    def transfer_only(self, host: str, repo: str) -> float:
        """The client's download of manifest, config and layers into a scratch blob store, in-process."""
        from dockyard.image.model import parse_manifest
        from dockyard.registry.client.parallel import run_all
        from dockyard.registry.client.session import ClientOptions, ClientSession
        from dockyard.store.blobs import BlobStore

        scratch = self.work / "transfer-store"
        shutil.rmtree(scratch, ignore_errors=True)
        blobs = BlobStore(scratch)

        start = time.perf_counter()
        with ClientSession(ClientOptions()) as session:
            client = session.registry(host)
            raw, media_type, _ = client.get_manifest(repo, "1")
            manifest = parse_manifest(raw, media_type)
            run_all([lambda cancel, d=d: client.fetch_blob(repo, d, lambda: blobs.writer(d.digest, d.size),
                                                           cancel=cancel)
                     for d in [manifest.config, *manifest.layers]], 3)
        elapsed = time.perf_counter() - start
        shutil.rmtree(scratch, ignore_errors=True)
        return elapsed

    # --- scenarios --------------------------------------------------------------------------------------------

    def run_kind(self, kind: str) -> None:
        layout = make_layout(self.work, kind)
        runs = self.args.runs
        repo = f"bench/{kind}"
        for server_kind in ("distribution", "dockyard"):
            label = "docker-registry" if server_kind == "distribution" else "dockyard server"
            reg = Registry(server_kind, self.work)
            try:
                for _ in range(runs):
                    reg.start()
                    self.record(kind, f"skopeo -> {label}", "push", self.skopeo_push(layout, reg.host, repo))
                    if _ < runs - 1:
                        reg.stop()
                for _ in range(runs):
                    self.record(kind, f"skopeo -> {label}", "pull", self.skopeo_pull(reg.host, repo))
                # dockyard client against the same server (which holds the image skopeo pushed).
                for _ in range(runs):
                    self.record(kind, f"dockyard -> {label}", "pull", self.dockyard_pull(reg.host, repo))
                for _ in range(runs):
                    self.record(kind, f"dockyard -> {label}", "pull transfer", self.transfer_only(reg.host, repo))
                source = f"{reg.host}/{repo}:1"
                if server_kind == "dockyard" and self.args.concurrent:
                    self.concurrent_pulls(reg.host, repo, self.args.concurrent)
                reg.stop()
                for _ in range(runs):
                    reg.start()
                    self.record(kind, f"dockyard -> {label}", "push", self.dockyard_push(reg.host, "pushed/x", source))
                    reg.stop()
            finally:
                reg.stop()
        self.dockyard_rmi_all()

    def concurrent_pulls(self, host: str, repo: str, count: int) -> None:
        errors: list[str] = []

        def one(i: int) -> None:
            dest = self.work / f"concurrent-{i}"
            shutil.rmtree(dest, ignore_errors=True)
            proc = subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                                   f"docker://{host}/{repo}:1", f"oci:{dest}:1"], capture_output=True, text=True)
            if proc.returncode != 0:
                errors.append(proc.stderr.strip()[-300:])
            shutil.rmtree(dest, ignore_errors=True)

        start = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        print(f"  {count} concurrent skopeo pulls from the dockyard server: {count - len(errors)} ok, "
              f"{len(errors)} failed, {elapsed:.1f} s", flush=True)
        self.concurrent = (count, len(errors), elapsed)
        for e in errors[:3]:
            print("    " + e)

    # --- docker and podman (S5's peers), against docker-registry ---------------------------------------------

    def run_peers(self, kind: str) -> None:
        layout = make_layout(self.work, kind)
        for engine in available_peers():
            local = f"dockyard-registry-bench/{engine}-{kind}:1"
            load_target = f"docker-daemon:{local}" if engine == "docker" else f"containers-storage:localhost/{local}"
            if engine == "podman":
                local = f"localhost/{local}"
            flags = ["--tls-verify=false"] if engine == "podman" else []
            try:
                timed(["skopeo", "--insecure-policy", "copy", "-q", f"oci:{layout}:1", load_target])
                reg = Registry("distribution", self.work)
                try:
                    ref = ""
                    for i in range(self.args.runs):
                        reg.start()
                        ref = f"{reg.host}/{engine}/{kind}:1"
                        timed([engine, "tag", local, ref])
                        self.record(kind, f"{engine} -> docker-registry", "push",
                                    timed([engine, "push", *flags, ref]))
                        if i < self.args.runs - 1:
                            subprocess.run([engine, "rmi", ref], capture_output=True)
                            reg.stop()
                    subprocess.run([engine, "rmi", "-f", local], capture_output=True)
                    for _ in range(self.args.runs):
                        remove_image(engine, ref)
                        self.record(kind, f"{engine} -> docker-registry", "pull",
                                    timed([engine, "pull", *flags, ref]))
                    remove_image(engine, ref)
                finally:
                    reg.stop()
            except RuntimeError as e:
                print(f"  {engine}: skipped ({str(e).strip().splitlines()[-1][:200]})", flush=True)
            finally:
                subprocess.run([engine, "rmi", "-f", local], capture_output=True)

    # --- report -----------------------------------------------------------------------------------------------

    def mibs(self, kind: str, pair: str, op: str) -> float | None:
        values = self.results.get((kind, pair, op))
        return PAYLOAD / MiB / statistics.median(values) if values else None

    def report(self, kinds: list[str]) -> None:
        print("\n## Registry benchmark (S5): MiB/s, medians of", self.args.runs, "runs\n")
        header = "| pair | " + " | ".join(f"{k} push | {k} pull" for k in kinds) + " |"
        print(header)
        print("|" + "---|" * (1 + 2 * len(kinds)))
        pairs = ["skopeo -> docker-registry", "skopeo -> dockyard server", "dockyard -> dockyard server",
                 "dockyard -> docker-registry"]
        for pair in pairs:
            cells = []
            for k in kinds:
                cells += [fmt(self.mibs(k, pair, "push")), fmt(self.mibs(k, pair, "pull"))]
            print(f"| {pair} | " + " | ".join(cells) + " |")
            if pair.startswith("dockyard"):
                cells = []
                for k in kinds:
                    cells += ["", fmt(self.mibs(k, pair, "pull transfer"))]
                print(f"| {pair} (pull: transfer only, no unpack) | " + " | ".join(cells) + " |")
        for name in ("docker", "podman"):
            pair = f"{name} -> docker-registry"
            cells = []
            for k in kinds:
                cells += [fmt(self.mibs(k, pair, "push")) if self.mibs(k, pair, "push") else "n/a",
                          fmt(self.mibs(k, pair, "pull")) if self.mibs(k, pair, "pull") else "n/a"]
            print(f"| {pair} | " + " | ".join(cells) + " |")
        print("\n### Ratios the issue targets (>= 1.00 meets the target)\n")
        for k in kinds:
            for op in ("push", "pull"):
                server = ratio(self.mibs(k, "skopeo -> dockyard server", op),
                               self.mibs(k, "skopeo -> docker-registry", op))
                client_op = op
                client = ratio(self.mibs(k, "dockyard -> dockyard server", client_op),
                               self.mibs(k, "skopeo -> dockyard server", op))
                transfer = ratio(self.mibs(k, "dockyard -> dockyard server", "pull transfer"),
                                 self.mibs(k, "skopeo -> dockyard server", op)) if op == "pull" else None
                line = (f"- {k} {op}: our server / docker-registry (skopeo client) = {fmt2(server)}; "
                        f"our client / skopeo (dockyard server) = {fmt2(client)}")
                if transfer is not None:
                    line += f" (transfer only: {fmt2(transfer)})"
                print(line)
        if getattr(self, "concurrent", None):
            count, failed, elapsed = self.concurrent
            print(f"- {count} concurrent pulls from the dockyard server: {count - failed} ok, {failed} errors "
                  f"({elapsed:.1f} s)")


def fmt(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "-"


def fmt2(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def available_peers() -> list[str]:
    """docker and podman, when installed and answering (their push/pull is S5 of ../shared/bench/anchors)."""
    found = []
    for engine in ("docker", "podman"):
        if shutil.which(engine) and subprocess.run([engine, "info"], capture_output=True, timeout=60).returncode == 0:
            found.append(engine)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", default="/tmp/registry-bench")
    parser.add_argument("--kinds", default="rand,text")
    parser.add_argument("--no-peers", action="store_true", help="skip docker and podman")
    parser.add_argument("--concurrent", type=int, default=20, help="concurrent skopeo pulls to check (0: skip)")
    args = parser.parse_args()
    for tool in ("skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            print(f"{tool} is required", file=sys.stderr)
            return 2
    kinds = args.kinds.split(",")
    bench = Bench(args)
    for kind in kinds:
        print(f"# {kind}", flush=True)
        bench.run_kind(kind)
        if not args.no_peers:
            bench.run_peers(kind)
    bench.report(kinds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

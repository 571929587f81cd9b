#!/usr/bin/env python3
"""Issue 2's speed figures, side by side with docker and podman in one run.

    bench/images_bench.py [--runs 3] [--images 200] [--engines dockyard,docker,podman]

Measures, per engine (interleaved, so background load hits them alike):
  import  `E import ROOTFS.tar bench/imported:1`, ROOTFS = busybox + a 200 MiB random file (the image is removed
          before each run)
  save    `E save -o FILE bench/imported:1`
  load    `E load -i FILE` after `E rmi bench/imported:1`
  images  `E images` with N extra small images present (hyperfine, 10 runs)
and prints medians and the issue's ratios: load/save/import against the faster of docker and podman (target:
dockyard at least 1.5x as fast), `images` against docker (target: at most 2x docker's time).

dockyard runs with its own root (/var/tmp/dockyard-bench); docker needs a running dockerd; podman runs with
--runtime runc. Missing engines are reported as n/a.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time

WORK = "/var/tmp/dockyard-bench-work"
DOCKYARD_ROOT = "/var/tmp/dockyard-bench"
ENGINES = {
    "dockyard": f"dockyard --root {DOCKYARD_ROOT}",
    "docker": "docker",
    "podman": "podman --runtime runc",
}
IMAGE = "bench/imported:1"


def sh(cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True)


def timed(cmd: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {result.stderr.strip()[-500:]}")
    return elapsed


def available(name: str) -> bool:
    binary = ENGINES[name].split()[0]
    if shutil.which(binary) is None:
        return False
    if name == "docker":
        return sh("docker info", check=False).returncode == 0
    return True


def make_rootfs(path: str) -> None:
    """busybox (from the host's busybox-static) plus a 200 MiB incompressible file, seeded."""
    if os.path.exists(path):
        return
    import random

    rng = random.Random(20261128)
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        for d in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "ls", "cat", "true"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.LNKTYPE, "bin/busybox"
            tar.addfile(info)
        payload = os.path.join(WORK, "payload")
        with open(payload, "wb") as f:
            for _ in range(200):
                f.write(rng.randbytes(1 << 20))
        tar.add(payload, "payload")
        os.unlink(payload)
    os.rename(tmp, path)


def make_small_images(engine: str, count: int) -> None:
    """`count` distinct tiny images named bench/small:N (skips the ones that exist)."""
    existing = set(sh(f"{engine} images --format '{{{{.Repository}}}}:{{{{.Tag}}}}'", check=False).stdout.split())
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        for i in range(count):
            name = f"bench/small:{i}"
            if name in existing or f"localhost/{name}" in existing or f"docker.io/{name}" in existing:
                continue
            with open(os.path.join(tmp, "f"), "w") as f:
                f.write(f"image {i}\n")
            archive = os.path.join(tmp, "small.tar")
            with tarfile.open(archive, "w") as tar:
                tar.add(os.path.join(tmp, "f"), "f")
            sh(f"{engine} import {archive} {name}")


def hyperfine(cmd: str, runs: int = 10) -> float:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", out.name, cmd],
                       check=True, capture_output=True)
        return json.load(open(out.name))["results"][0]["median"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--engines", default="dockyard,docker,podman")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    engines = {n: ENGINES[n] for n in args.engines.split(",") if available(n)}
    skipped = [n for n in args.engines.split(",") if n not in engines]
    rootfs = os.path.join(WORK, "rootfs.tar")
    make_rootfs(rootfs)
    results: dict[str, dict[str, list[float]]] = {n: {"import": [], "save": [], "load": []} for n in engines}
    for _ in range(args.runs):
        for name, engine in engines.items():
            sh(f"{engine} rmi -f {IMAGE}", check=False)
            results[name]["import"].append(timed(f"{engine} import {rootfs} {IMAGE}"))
        for name, engine in engines.items():
            archive = os.path.join(WORK, f"{name}.tar")
            if os.path.exists(archive):
                os.unlink(archive)  # podman refuses to overwrite an archive
            results[name]["save"].append(timed(f"{engine} save -o {archive} {IMAGE}"))
        for name, engine in engines.items():
            archive = os.path.join(WORK, f"{name}.tar")
            sh(f"{engine} rmi -f {IMAGE}")
            results[name]["load"].append(timed(f"{engine} load -i {archive}"))
    images_time = {}
    for name, engine in engines.items():
        make_small_images(engine, args.images)
        images_time[name] = hyperfine(f"{engine} images")
    medians = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    print(f"\nmedians over {args.runs} runs (s); `images` with {args.images}+ images (hyperfine median)")
    print(f"{'engine':10} {'import':>8} {'save':>8} {'load':>8} {'images':>8}")
    for name in engines:
        m = medians[name]
        print(f"{name:10} {m['import']:8.3f} {m['save']:8.3f} {m['load']:8.3f} {images_time[name]:8.3f}")
    for name in skipped:
        print(f"{name:10} {'n/a':>8} {'n/a':>8} {'n/a':>8} {'n/a':>8}")
    if "dockyard" in medians:
        peers = [n for n in ("docker", "podman") if n in medians]
        for op in ("import", "save", "load"):
            if peers:
                best = min(medians[p][op] for p in peers)
                ratio = best / medians["dockyard"][op]
                print(f"{op}: dockyard is {ratio:.2f}x as fast as the faster peer (target >= 1.5x)")
        if "docker" in images_time:
            ratio = images_time["dockyard"] / images_time["docker"]
            print(f"images: dockyard takes {ratio:.2f}x docker's time (target <= 2x)")
    print("\ncommands:", json.dumps({n: shlex.split(e) for n, e in engines.items()}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Issue 5's speed figures: `dockyard build` side by side with BuildKit, legacy `docker build` and podman.

    bench/build_bench.py [--scale 1] [--engines dockyard,docker,podman] [--skip-apt] [--out DIR]

Runs the shared harness's S4 scenarios (`../shared/bench/anchors ENGINE... -s S4`, interleaved per scenario
so that background load hits every engine alike) and prints medians and dockyard's ratio to BuildKit (Docker's
daemon BuildKit through the Engine API, which the harness measures in its `.bkapi` pass):

  S4a cold 10-step busybox build, 50 MiB / 6,400-file context (--no-cache)
  S4b the same build fully cached
  S4c rebuild after one late-copied file changed
  S4d Debian build whose RUN writes 200 MiB (--no-cache)
  S4e Debian build with apt-get install (network; noisy)

Targets (issue 5): S4a-S4d each no slower than BuildKit in the same run. dockyard runs from this checkout
with its own root (/var/tmp/dockyard-build-bench/root); docker needs a running dockerd; podman runs with
--runtime runc. Missing engines are left out. Nothing is written under ../shared.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

from launcher import write_launcher  # (bench/ is sys.path[0] when a benchmark runs)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ANCHORS = os.path.join(os.path.dirname(REPO), "shared", "bench", "anchors")
WORK = "/var/tmp/dockyard-build-bench"
KEYS = [("S4a.cold", "cold, 10 steps, 50 MiB context"), ("S4b.warm", "fully cached"),
        ("S4c.partial", "one late COPY source changed"), ("S4d.debian200", "Debian RUN writes 200 MiB"),
        ("S4e.debian-apt", "Debian apt-get install")]
TARGETS = ("S4a.cold", "S4b.warm", "S4c.partial", "S4d.debian200")


def dockyard_wrapper(work: str) -> str:
    """A `dockyard` command running a copy of this checkout's code (taken now, so that editing the checkout
    during a run changes nothing) on the bench's own root."""
    code = os.path.join(work, "code")
    shutil.rmtree(code, ignore_errors=True)
    shutil.copytree(os.path.join(REPO, "dockyard"), os.path.join(code, "dockyard"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-compiled, as an installed package is (PYTHONDONTWRITEBYTECODE would otherwise make every command
    # compile its modules again).
    subprocess.run([sys.executable, "-m", "compileall", "-q", code], check=True)
    return write_launcher(os.path.join(work, "bin", "dockyard"), code, root=os.path.join(work, "root"))


def engines(names: list[str], work: str) -> dict[str, str]:
    found = {}
    for name in names:
        if name == "dockyard":
            found[name] = dockyard_wrapper(work)
        elif name == "docker" and shutil.which("docker"):
            if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
                found[name] = "docker"
        elif name == "podman" and shutil.which("podman"):
            found[name] = "podman --runtime runc"
    return found


def medians(result_files: list[str], engine_strings: dict[str, str]) -> dict[str, dict[str, float]]:
    """{engine name (docker-buildkit for the .bkapi pass): {metric prefix: median seconds}}."""
    table: dict[str, dict[str, float]] = {}
    by_string = {v: k for k, v in engine_strings.items()}
    for path in result_files:
        with open(path) as f:
            data = json.load(f)
        name = by_string.get(data.get("engine", ""), data.get("label", "?"))
        for m in data.get("metrics", []):
            if "median" not in m:
                continue
            key = m["key"]
            engine = name + ("-buildkit" if key.endswith(".bkapi") else "")
            if name == "docker" and not key.endswith(".bkapi"):
                engine = "docker-legacy"
            table.setdefault(engine, {})[key.removesuffix(".bkapi")] = m["median"]
    return table


def report(table: dict[str, dict[str, float]]) -> str:
    order = [e for e in ("dockyard", "docker-buildkit", "docker-legacy", "podman") if e in table]
    lines = ["| scenario | " + " | ".join(order) + " | dockyard / BuildKit |", "|---" * (len(order) + 2) + "|"]
    for key, desc in KEYS:
        cells = [f"{table[e][key]:.2f} s" if key in table[e] else "—" for e in order]
        ratio = "—"
        ours, theirs = table.get("dockyard", {}).get(key), table.get("docker-buildkit", {}).get(key)
        if ours is not None and theirs:
            ratio = f"{ours / theirs:.2f}" + (" ✓" if key in TARGETS and ours <= theirs else "")
        lines.append(f"| {key} {desc} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="dockyard,docker,podman")
    ap.add_argument("--scale", type=float, default=1.0, help="fewer runs (passed to anchors)")
    ap.add_argument("--skip-apt", action="store_true", help="leave out S4e (needs deb.debian.org)")
    ap.add_argument("--work", default=WORK, help="scratch space and dockyard's root")
    ap.add_argument("--out", default=os.path.join(WORK, "results"))
    ap.add_argument("--report", nargs="*", help="only print the table of these anchors result files")
    args = ap.parse_args()
    found = engines([e.strip() for e in args.engines.split(",") if e.strip()], args.work)
    if args.report is not None:
        print(report(medians(args.report, found)))
        return 0
    if not os.path.exists(ANCHORS):
        print(f"build_bench: the shared harness is missing: {ANCHORS}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    anchors_work = os.path.join(args.work, "anchors")
    common = ["--workdir", anchors_work, "--out", args.out]
    for engine in found.values():
        subprocess.run([sys.executable, ANCHORS, "prepare", engine, *common], check=True)
    before = set(glob.glob(os.path.join(args.out, "*.json")))
    cmd = [sys.executable, ANCHORS, *found.values(), "-s", "S4", "--scale", str(args.scale), *common]
    if args.skip_apt:
        cmd.append("--skip-apt")
    subprocess.run(cmd, check=True)
    new = sorted(set(glob.glob(os.path.join(args.out, "*.json"))) - before)
    print()
    print(report(medians(new, found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Issue 3's speed and memory figures, side by side with docker and podman (--runtime runc) in one run.

    bench/containers_bench.py [--scale 1.0] [--engines dockyard,docker,podman]

Drives the shared anchors harness (../shared/bench/anchors) over scenarios S1, S3, S7 and S8 with every
available engine interleaved, then prints the issue's ratios:

  run --rm --network none busybox true   dockyard <= 1/4 of podman's median
  exec C true                            dockyard <= 1/2 of docker's
  memory added per idle container        dockyard <= podman's (all told: helpers' PSS, containers, kernel)
  ps -a with 50 containers               dockyard <= 1.5x docker's

Results (raw JSON per engine) go to bench/results/. docker needs a running dockerd; podman is run with
--runtime runc. dockyard uses its default root unless DOCKYARD_ROOT is set.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's dockyard package
ANCHORS = os.environ.get("ANCHORS", os.path.join(HERE, "..", "..", "shared", "bench", "anchors"))
ENGINES = {"dockyard": "dockyard", "docker": "docker", "podman": "podman --runtime runc"}
RESULTS = os.path.join(HERE, "results")


def available(name: str) -> bool:
    if shutil.which(ENGINES[name].split()[0]) is None:
        return False
    if name == "docker":
        return subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    return True


def stop_idle_monitor() -> None:
    """Ask the default root's monitor to exit, when it has no running container (it exits; nothing is lost)."""

    from dockyard.config import DEFAULT_ROOT, run_root
    from dockyard.engine.monitor.endpoint import socket_path

    if subprocess.run(["dockyard", "ps", "-q"], capture_output=True, text=True).stdout.strip():
        print("note: containers are running in the default root; the monitor stays and S7 will not count it")
        return
    from dockyard.engine.monitor import protocol

    try:
        protocol.request(socket_path(run_root(os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT)), {"op": "shutdown"})
    except OSError:
        pass


def medians(path: str) -> dict[str, float]:
    with open(path) as f:
        data = json.load(f)
    return {m["key"]: m["median"] for m in data["metrics"] if m.get("median") is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="1.0", help="anchors --scale (fewer runs below 1)")
    parser.add_argument("--engines", default="dockyard,docker,podman")
    parser.add_argument("--scenarios", default="S1,S3,S7,S8")
    args = parser.parse_args()
    if not os.path.exists(ANCHORS):
        sys.exit(f"anchors harness not found at {ANCHORS} (set ANCHORS=...)")
    engines = [ENGINES[n] for n in args.engines.split(",") if available(n)]
    os.makedirs(RESULTS, exist_ok=True)
    before = set(glob.glob(os.path.join(RESULTS, "*.json")))
    for engine in engines:
        subprocess.run([ANCHORS, "prepare", engine], check=True)
    scenarios = args.scenarios.split(",")
    first = [s for s in scenarios if s not in ("S7", "S8")]
    if first:
        subprocess.run([ANCHORS, *engines, "-s", ",".join(first), "--scale", args.scale, "--out", RESULTS],
                       check=True)
    later = [s for s in scenarios if s in ("S7", "S8")]
    if later:
        # S7 counts the helper processes that appear while it starts containers. dockyard's one helper, the
        # monitor, would still be running from the scenarios before, so it is stopped first to be counted; and
        # it is told to exit one second after its last container is gone, so that every round (each starts
        # after a 3 s settle) counts a fresh one rather than passing it over as already there.
        stop_idle_monitor()
        subprocess.run([ANCHORS, *engines, "-s", ",".join(later), "--scale", args.scale, "--out", RESULTS],
                       check=True, env=dict(os.environ, DOCKYARD_MONITOR_IDLE="1"))
    runs = {}
    for path in sorted(set(glob.glob(os.path.join(RESULTS, "*.json"))) - before):
        label = os.path.basename(path).split("-")[0]
        runs.setdefault(label, {}).update(medians(path))
    mem_per_container = {k: v.get("S7.mem_attributable", 0) / 50 for k, v in runs.items()}
    print("\nmedians:")
    keys = ["S1.run_rm", "S1.run_rm_netnone", "S3.exec", "S7.start50", "S8.ps_a"]
    print(f"{'engine':10}" + "".join(f"{k:>20}" for k in keys) + f"{'MiB/idle ctr':>16}")
    for label, values in runs.items():
        print(f"{label:10}" + "".join(f"{values.get(k, float('nan')):20.3f}" for k in keys)
              + f"{mem_per_container[label]:16.2f}")
    ours = runs.get("dockyard", {})
    targets = [  # (what, peer, metric, target ratio of ours to the peer's)
        ("run --rm --network none", "podman", "S1.run_rm_netnone", 0.25),
        ("exec", "docker", "S3.exec", 0.5),
        ("ps -a with 50", "docker", "S8.ps_a", 1.5),
    ]
    for what, peer, key, target in targets:
        if key in ours and key in runs.get(peer, {}):
            print(f"{what}: {ours[key] / runs[peer][key]:.2f} of {peer}'s time (target <= {target})")
    if "S7.mem_attributable" in ours and "podman" in runs:
        print(f"memory per idle container: {mem_per_container['dockyard']:.2f} MiB vs podman "
              f"{mem_per_container['podman']:.2f} MiB (target: no more)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

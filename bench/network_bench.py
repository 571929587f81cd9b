#!/usr/bin/env python3
"""Networking benchmark: dockyard side by side with docker and podman, in one run.

1. S1 (`run --rm busybox:local true`, default network and --network none) and S2 (`run -d -p PORT:80` httpd
   to the first HTTP answer) through the shared harness (../shared/bench/anchors), all engines interleaved.
2. Throughput through a published port on 127.0.0.1 against a direct connection to the container's
   address: a busybox httpd serves a 100 MB file, fetched with curl (medians of samples of 500 MB, the two
   ways alternated).

Then the ratios: dockyard / podman for S1 and S2 (targets: at most 1/4), published / direct throughput
(target: at least 80%).

    bench/network_bench.py [--engines dockyard,docker,podman] [--out DIR] [--scale 1] [--skip-anchors]

dockyard runs from this checkout, started as the installed command starts it (see launcher.py), with a
private root (--root, default /tmp/dockyard-netbench), so the benchmark neither uses nor disturbs
/var/lib/dockyard. Results go to --out (default /tmp/netbench-<time>),
never into the shared directory. Traffic stays on this machine (127.0.0.1 and the containers' bridges).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import time

from launcher import write_launcher  # (bench/ is sys.path[0] when a benchmark runs)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANCHORS = os.environ.get("ANCHORS", os.path.join(os.path.dirname(REPO), "shared", "bench", "anchors"))
FILE_MB = 100
FETCHES = 5  # downloads per sample: 500 MB
WORKDIR = "/tmp/anchors-work-network"  # our own: a harness run of someone else's must not share scratch space


def engine_commands(names: list[str], root: str, out: str) -> dict[str, str]:
    dockyard = f"{write_launcher(os.path.join(out, 'dockyard'))} --root {root}" if "dockyard" in names else ""
    known = {"dockyard": dockyard, "docker": "docker", "podman": "podman --runtime runc"}
    return {name: known[name] for name in names}


def sh(cmd: list[str], check: bool = True, timeout: float = 600) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed: {result.stderr[-2000:]}")
    return result.stdout


def free_port() -> int:
    for _ in range(200):
        port = random.randint(20000, 29000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue
    raise SystemExit("no free port")


# --- 1. the shared harness ----------------------------------------------------------------------------------

def run_anchors(engines: dict[str, str], out: str, scale: float) -> dict[str, dict[str, float]]:
    port = free_port()
    # (rm -f: podman's waits 10 s for busybox httpd, which ignores SIGTERM as PID 1; only S2.rm_f shows it.)
    cmd = [ANCHORS, *engines.values(), "-s", "S1,S2", "--out", out, "--port", str(port),
           "--scale", str(scale), "--workdir", WORKDIR]
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=False)
    medians: dict[str, dict[str, float]] = {}
    for name in os.listdir(out):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(out, name)) as f:
            result = json.load(f)
        label = next((k for k, v in engines.items() if v == result.get("engine")), result.get("label"))
        for metric in result.get("metrics", []):
            if metric.get("median") is not None:
                medians.setdefault(label, {})[metric["key"]] = metric["median"]
    return medians


# --- 2. throughput ------------------------------------------------------------------------------------------

def fetch_rate(url: str) -> float:
    """Bytes per second of one sample: one curl process fetching the file FETCHES times (to /dev/null).

    A single 100 MB download lasts ~50 ms here, too short to rise above the noise of a shared 2-core machine.
    """
    started = time.perf_counter()
    out = sh(["curl", "-s", "--max-time", "120", "-w", "%{size_download}\n"]
             + [arg for _ in range(FETCHES) for arg in ("-o", "/dev/null", url)])
    elapsed = time.perf_counter() - started
    sizes = [int(float(x)) for x in out.split()]
    if len(sizes) != FETCHES or min(sizes) < FILE_MB * 1_000_000:
        raise SystemExit(f"short download from {url}: {sizes}")
    return sum(sizes) / elapsed


def throughput(engine: str, runs: int) -> dict[str, float]:
    e = shlex.split(engine)
    name = f"netbench-{os.getpid()}"
    port = free_port()
    subprocess.run(e + ["rm", "-f", name], capture_output=True)
    sh(e + ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "busybox:local", "sh", "-c",
            f"mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count={FILE_MB} 2>/dev/null && "
            "exec httpd -f -p 80 -h /www"])
    try:
        address = sh(e + ["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                          name]).strip()
        deadline = time.monotonic() + 60
        while subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "2", "-r", "0-0",
                              f"http://127.0.0.1:{port}/big"]).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"{engine}: the published port never answered")
            time.sleep(0.1)
        published, direct = [], []
        for _ in range(runs):  # alternate, so drifting background load hits both alike
            published.append(fetch_rate(f"http://127.0.0.1:{port}/big"))
            direct.append(fetch_rate(f"http://{address}:80/big"))
        return {"published_MBps": statistics.median(published) / 1e6,
                "direct_MBps": statistics.median(direct) / 1e6,
                "published_all_MBps": [round(r / 1e6) for r in published],
                "direct_all_MBps": [round(r / 1e6) for r in direct]}
    finally:
        subprocess.run(e + ["rm", "-f", name], capture_output=True)


# --- report -------------------------------------------------------------------------------------------------

def report(medians: dict[str, dict[str, float]], rates: dict[str, dict[str, float]]) -> str:
    lines = ["| metric | " + " | ".join(sorted(set(medians) | set(rates))) + " |"]
    engines = sorted(set(medians) | set(rates))
    lines.append("|---|" + "---|" * len(engines))
    for key, text in (("S1.run_rm", "S1 run --rm true (s)"), ("S1.run_rm_netnone", "S1 --network none (s)"),
                      ("S2.http_ready", "S2 run -d -p to first HTTP (s)"),
                      ("S2.run_d_cli", "S2 run -d CLI (s)"),
                      ("S2.rm_f", "S2 rm -f (s)")):
        lines.append(f"| {text} | " + " | ".join(f"{medians.get(e, {}).get(key, float('nan')):.3f}"
                                                  for e in engines) + " |")
    for key, text in (("published_MBps", "published port 127.0.0.1 (MB/s, median)"),
                      ("direct_MBps", "direct to container (MB/s, median)")):
        lines.append(f"| {text} | " + " | ".join(f"{rates.get(e, {}).get(key, float('nan')):.0f}"
                                                  for e in engines) + " |")
    lines.append("")
    dy, pm = medians.get("dockyard", {}), medians.get("podman", {})
    for key, text in (("S1.run_rm", "S1 dockyard/podman"), ("S2.http_ready", "S2 dockyard/podman")):
        if key in dy and key in pm:
            lines.append(f"{text}: {dy[key] / pm[key]:.2f} (target <= 0.25)")
    for engine, r in sorted(rates.items()):
        lines.append(f"{engine} published/direct throughput: {r['published_MBps'] / r['direct_MBps']:.2f}"
                     + (" (target >= 0.80)" if engine == "dockyard" else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="dockyard,docker,podman")
    parser.add_argument("--root", default="/tmp/dockyard-netbench", help="dockyard's state root")
    parser.add_argument("--out", default=f"/tmp/netbench-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--scale", type=float, default=1.0, help="anchors --scale (fewer runs below 1)")
    parser.add_argument("--runs", type=int, default=7, help="samples each way for the throughput figure")
    parser.add_argument("--skip-anchors", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if os.path.realpath(args.out).startswith(os.path.realpath(os.path.join(REPO, "..", "shared"))):
        raise SystemExit("results never go into the shared directory")
    os.makedirs(args.out, exist_ok=True)
    engines = engine_commands([e for e in args.engines.split(",") if e], args.root, args.out)
    if "dockyard" in engines:  # busybox:local (and debian:local) in dockyard's private root
        sh([ANCHORS, "prepare", engines["dockyard"], "--workdir", WORKDIR], timeout=1200)
    medians = {} if args.skip_anchors else run_anchors(engines, args.out, args.scale)
    rates = {}
    if not args.skip_throughput:
        for name, engine in engines.items():
            rates[name] = throughput(engine, args.runs)
            print(name, json.dumps(rates[name]), flush=True)
    text = report(medians, rates)
    with open(os.path.join(args.out, "network-bench.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "network-bench.json"), "w") as f:
        json.dump({"anchors_medians": medians, "throughput": rates, "engines": engines}, f, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Time create+start+wait+delete of /bin/true in a busybox bundle: our runtime (library API and CLI) vs runc,
then `exec /bin/true` into a running container the same three ways.

    python3 bench/runtime_start.py [-n RUNS]

The bundle uses the spec Docker would generate (default caps, masked paths, the default seccomp profile,
new pid/net/ipc/uts/mount namespaces). Prints the median of each, and ratios against runc.
"""

from __future__ import annotations

import argparse
import compileall
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dockyard.runtime import container
from dockyard.runtime.spec import SpecOptions, generate_spec, write_bundle


def build_bundle(base: Path, args: list[str] | None = None) -> Path:
    rootfs = base / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/bin/busybox", rootfs / "bin" / "busybox")
    for name in ("true", "sh", "sleep"):
        os.symlink("busybox", rootfs / "bin" / name)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    write_bundle(str(base), generate_spec(SpecOptions(args=args or ["/bin/true"], rootfs=str(rootfs))))
    return base


def time_api(bundle: Path, state: str) -> float:
    cid = "dyb-" + secrets.token_hex(6)
    t0 = time.perf_counter()
    pid = container.create(cid, str(bundle), state, stdio=(0, 1, 2))
    container.start(cid, state)
    _, status = os.waitpid(pid, 0)
    container.delete(cid, state)
    elapsed = time.perf_counter() - t0
    assert status == 0, status
    return elapsed


def time_exec_api(cid: str, state: str) -> float:
    t0 = time.perf_counter()
    proc = container.exec_defaults(cid, state, ["/bin/true"])
    pid = container.exec_process(cid, state, proc, stdio=(0, 1, 2))
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - t0
    assert status == 0, status
    return elapsed


def time_cmd(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - t0


def median_ms(fn, n: int) -> float:
    fn()  # warm-up (fills the seccomp cache, page cache)
    return statistics.median(fn() for _ in range(n)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args()
    compileall.compile_dir(str(REPO / "dockyard"), quiet=1)  # PYTHONDONTWRITEBYTECODE may be set here
    with tempfile.TemporaryDirectory(prefix="dyb-") as tmp:
        bundle = build_bundle(Path(tmp) / "bundle")
        state = str(Path(tmp) / "state")
        runc_root = str(Path(tmp) / "runc")
        results = {
            "dockyard runtime, in-process API": median_ms(lambda: time_api(bundle, state), args.n),
            "dockyard-runtime run (CLI)": median_ms(lambda: time_cmd(
                [sys.executable, "-m", "dockyard.runtime", "--root", state, "run", "-b", str(bundle),
                 "dyb-" + secrets.token_hex(6)]), args.n),
            "python3 -c pass (interpreter start-up)": median_ms(lambda: time_cmd([sys.executable, "-c", "pass"]), args.n),
        }
        runc = shutil.which("runc")
        if runc:
            results["runc run"] = median_ms(lambda: time_cmd(
                [runc, "--root", runc_root, "run", "-b", str(bundle), "dyb-" + secrets.token_hex(6)]), args.n)
        execs = bench_exec(Path(tmp), state, runc_root, runc, args.n)
    report(f"median of {args.n} runs, create+start+wait+delete of /bin/true (Docker-default spec)", results,
           results.get("runc run"))
    report(f"median of {args.n} runs, exec /bin/true into a running container", execs, execs.get("runc exec"))
    return 0


def bench_exec(tmp: Path, state: str, runc_root: str, runc: str | None, n: int) -> dict[str, float]:
    bundle = build_bundle(tmp / "sleeper", ["sleep", "1000"])
    cid = "dyb-" + secrets.token_hex(6)
    devnull = os.open(os.devnull, os.O_RDWR)
    pid = container.create(cid, str(bundle), state, stdio=(devnull, devnull, devnull))
    container.start(cid, state)
    results: dict[str, float] = {}
    try:
        results["dockyard runtime exec, in-process API"] = median_ms(lambda: time_exec_api(cid, state), n)
        results["dockyard-runtime exec (CLI)"] = median_ms(lambda: time_cmd(
            [sys.executable, "-m", "dockyard.runtime", "--root", state, "exec", cid, "/bin/true"]), n)
    finally:
        container.delete(cid, state, force=True)
        os.waitpid(pid, 0)
    if runc:
        rid = "dyb-" + secrets.token_hex(6)
        subprocess.run([runc, "--root", runc_root, "run", "-d", "-b", str(bundle), rid], check=True,
                       stdin=devnull, stdout=devnull, stderr=devnull)
        try:
            results["runc exec"] = median_ms(lambda: time_cmd([runc, "--root", runc_root, "exec", rid, "/bin/true"]), n)
        finally:
            subprocess.run([runc, "--root", runc_root, "delete", "-f", rid], check=False)
    os.close(devnull)
    return results


def report(title: str, results: dict[str, float], base: float | None) -> None:
    print(title)
    for name, ms in results.items():
        ratio = f"  {ms / base:.2f}x runc" if base else ""
        print(f"  {name:<42} {ms:7.1f} ms{ratio}")


if __name__ == "__main__":
    sys.exit(main())

"""The `dockyard` command the benchmarks time: this checkout, started the way the installed command starts.

scripts/install.sh installs a small launcher: the virtualenv's interpreter with -S (no `site`) and the two
directories put on sys.path; no `-m` (runpy's imports), no `env` or shell in front. The benchmarks write the
same launcher for this checkout, rather than running `sys.executable -m dockyard`: which interpreter runs a
benchmark script is an accident of the shell, and a base interpreter's site-packages .pth files (on this
machine one imports certifi, ~20 ms) would be timed as if they were dockyard's start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_launcher(path: str, code: str = REPO, root: str | None = None) -> str:
    """Write an executable `dockyard` at `path` running the package under `code` (with `--root root` first
    when given); returns `path`."""
    venv = os.environ.get("DOCKYARD_VENV", "/opt/dockyard")
    python = os.path.join(venv, "bin", "python3")
    if not os.access(python, os.X_OK):
        python = sys.executable
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    args = f"['--root', {root!r}, *sys.argv[1:]]" if root else "sys.argv[1:]"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"#!{python} -S\nimport sys\nsys.path[1:1] = [{code!r}, {site!r}]\n"
                f"from dockyard.cli.main import main\nsys.exit(main({args}))\n")
    os.chmod(path, 0o755)
    return path

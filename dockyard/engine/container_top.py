"""`top`: the processes of a container, as the host's `ps` shows them (what Docker's daemon does).

The container's processes are the pids in its cgroup; `ps` runs on the host (never a binary from the
container) with the user's options, asked for just those pids with `-q` when the options allow it, and its
table is kept to the rows of those pids.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from dockyard.engine.container_store import ContainerRecord
from dockyard.errors import Conflict, HostError, InvalidArgument

_PID_OVERRIDE = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def _validate(ps_args: str) -> None:
    """Docker refuses options that rename another column to PID (it finds the pids by that title)."""
    for key, value in _PID_OVERRIDE.findall(ps_args):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')


def _run_ps(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["ps", *args], capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        raise HostError("ps: executable file not found in $PATH") from None


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    """Docker's parsePSOutput: titles from the first line, rows of the container's pids (and their threads)."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes: list[list[str]] = []
    previous_matched = False
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if fields[pid_index] == "-":  # a thread line (ps -m) belongs to the process above it
            if previous_matched:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise HostError(f"Unexpected pid '{fields[pid_index]}'") from None
        previous_matched = pid in pids
        if previous_matched:
            processes.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": processes}


def _row(fields: list[str], columns: int) -> list[str]:
    """As many cells as titles: the last (the command) takes the rest of the line."""
    return fields[: columns - 1] + [" ".join(fields[columns - 1:])]


def container_top(engine, record: ContainerRecord, ps_args: str = "") -> dict[str, Any]:
    from dockyard.engine.container_stats import cgroups_of

    ps_args = ps_args or "-ef"
    _validate(ps_args)
    if not record.running:
        raise Conflict(f"Container {record.id} is not running")
    if record.state.get("Restarting"):
        raise Conflict(f"Container {record.id} is restarting, wait until the container is running")
    found = cgroups_of(record)
    pids = found[0].pids() if found is not None else []
    args = ps_args.split(" ")
    result = _run_ps([*args, "-q" + ",".join(map(str, pids))]) if pids else None
    if result is None or result.returncode != 0:
        # Some options (forest listings) cannot be combined with -q: list everything and filter.
        result = _run_ps(args)
        if result.returncode != 0:
            first = (result.stderr.splitlines() or [f"exit status {result.returncode}"])[0]
            raise HostError(f"ps: {first}")
    return parse_ps(result.stdout, set(pids))

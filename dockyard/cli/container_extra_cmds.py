"""Container commands around the lifecycle: diff, commit, export, top, stats, port, container prune."""

from __future__ import annotations

import sys
import time

from dockyard.cli.flags import REMAINDER, ArgumentParser

STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
STATS_DEFAULT_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
                        "{{.BlockIO}}\t{{.PIDs}}")
STATS_INTERVAL = 1.0  # seconds between the two samples CPU % is computed from (Docker's daemon: 1 s)


def _confirm(question: str) -> bool:
    sys.stdout.write(f"{question}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


# --- diff -------------------------------------------------------------------------------------------------------

def diff_parser(p: ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")


def diff(args, ctx) -> int:
    from dockyard.engine.container_changes import container_changes

    record = ctx.engine.containers.get(args.container)
    letters = {0: "C", 1: "A", 2: "D"}
    for change in container_changes(ctx.engine, record):
        ctx.stdout.write(f"{letters[change['Kind']]} {change['Path']}\n")
    return 0


# --- commit -----------------------------------------------------------------------------------------------------

def commit_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the "
                                                                        "created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", action="store_true", default=True,
                   help="Pause container during commit (default true; --pause=false to not)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")


def commit(args, ctx) -> int:
    from dockyard.engine.commit import commit_container

    record = ctx.engine.containers.get(args.container)
    image = commit_container(ctx.engine, record, args.repository, author=args.author, comment=args.message,
                             changes=args.change, pause=args.pause)
    ctx.stdout.write(image.id + "\n")
    return 0


# --- export -----------------------------------------------------------------------------------------------------

def export_parser(p: ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")


def export(args, ctx) -> int:
    from dockyard.engine.container_fs import export as export_fs

    record = ctx.engine.containers.get(args.container)
    if not args.output:
        if sys.stdout.isatty():
            sys.stderr.write("cowardly refusing to save to a terminal. Use the -o flag or redirect\n")
            return 1
        sys.stdout.flush()
        export_fs(ctx.engine, record, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    from dockyard.fsutil import WrittenIntoPlace

    with WrittenIntoPlace(args.output) as out:  # a failed export leaves no half-written tar behind
        export_fs(ctx.engine, record, out)
    return 0


# --- top --------------------------------------------------------------------------------------------------------

def top_parser(p: ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=REMAINDER, metavar="[ps OPTIONS]")


def top(args, ctx) -> int:
    from dockyard.cli.output import tabwrite
    from dockyard.engine.container_top import container_top

    record = ctx.engine.containers.get(args.container)
    result = container_top(ctx.engine, record, " ".join(args.ps_args))
    lines = ["\t".join(result["Titles"])] + ["\t".join(row) for row in result["Processes"]]
    # Docker's top uses a tabwriter with cells of at least 20 columns.
    ctx.stdout.write("".join(line + "\n" for line in tabwrite(lines, minwidth=20, padding=3)))
    return 0


# --- stats ------------------------------------------------------------------------------------------------------

def stats_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def stats_row(record, doc: dict, given: str, no_trunc: bool) -> dict[str, str]:
    """One line of `docker stats`, computed from the stats document exactly as Docker's CLI does."""
    from dockyard.cli.output import bytes_size, human_size

    cpu, pre = doc["cpu_stats"], doc["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    cpu_percent = cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0
    memory = doc.get("memory_stats") or {}
    usage, stats = memory.get("usage", 0), memory.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:  # cgroup v1: without page cache
        usage -= stats["total_inactive_file"]
    elif stats.get("inactive_file", usage) < usage:  # cgroup v2
        usage -= stats["inactive_file"]
    limit = memory.get("limit", 0)
    read = write = 0
    for entry in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = entry["op"].lower()
        read += entry["value"] if op == "read" else 0
        write += entry["value"] if op == "write" else 0
    rx = sum(n["rx_bytes"] for n in (doc.get("networks") or {}).values())
    tx = sum(n["tx_bytes"] for n in (doc.get("networks") or {}).values())
    return {
        "Container": given,
        "ID": record.id if no_trunc else record.short_id,
        "Name": record.name,
        "CPUPerc": f"{cpu_percent:.2f}%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": f"{(usage / limit * 100.0) if limit else 0.0:.2f}%",
        "NetIO": f"{human_size(rx, 3)} / {human_size(tx, 3)}",
        "BlockIO": f"{human_size(read, 3)} / {human_size(write, 3)}",
        "PIDs": str((doc.get("pids_stats") or {}).get("current", 0)),
    }


def _stats_targets(ctx, args) -> list[tuple[str, object]]:
    """(name as given, record): the named containers, else the running ones (all with -a)."""
    containers = ctx.engine.containers
    if args.containers:
        return [(name, containers.get(name)) for name in args.containers]
    records = containers.all()
    return [(r.short_id, r) for r in records if args.all or r.running]


def _stats_rows(ctx, args, previous: dict) -> list[dict[str, str]]:
    """A row per container; the previous samples (by id) are updated for the next round."""
    from dockyard.engine.container_stats import document, sample

    targets = _stats_targets(ctx, args)
    current = {record.id: sample(ctx.engine, record) for _, record in targets}  # type: ignore[attr-defined]
    rows = []
    for given, record in targets:
        doc = document(record, current[record.id], previous.get(record.id))  # type: ignore[attr-defined]
        rows.append(stats_row(record, doc, given, args.no_trunc))
    previous.clear()
    previous.update(current)
    return rows


def _print_stats(rows: list[dict[str, str]], fmt: str | None, out) -> None:
    from dockyard.cli.output import print_formatted

    print_formatted(rows, fmt if fmt and fmt != "table" else STATS_DEFAULT_FORMAT, STATS_HEADERS, out)


def stats(args, ctx) -> int:
    from dockyard.engine.container_stats import sample

    previous: dict = {}
    for _, record in _stats_targets(ctx, args):
        previous[record.id] = sample(ctx.engine, record)  # type: ignore[attr-defined]
    time.sleep(STATS_INTERVAL)  # one pause for all: CPU % is a rate over it
    if args.no_stream:
        _print_stats(_stats_rows(ctx, args, previous), args.format, ctx.stdout)
        return 0
    tty = sys.stdout.isatty()
    try:
        while True:
            rows = _stats_rows(ctx, args, previous)
            if tty:
                ctx.stdout.write("\033[2J\033[H")  # clear the screen and go home, as docker stats does
            _print_stats(rows, args.format, ctx.stdout)
            ctx.stdout.flush()
            time.sleep(STATS_INTERVAL)
    except KeyboardInterrupt:
        return 0


# --- port -------------------------------------------------------------------------------------------------------

def port_parser(p: ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def _host_port(binding: dict) -> str:
    """Go's net.JoinHostPort: an IPv6 address goes in brackets."""
    host = binding.get("HostIp") or ""
    return f"[{host}]:{binding.get('HostPort', '')}" if ":" in host else f"{host}:{binding.get('HostPort', '')}"


def _natural_key(text: str) -> list:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def port(args, ctx) -> int:
    record = ctx.engine.containers.get(args.container)
    ports = (record.data.get("NetworkSettings") or {}).get("Ports") or {}
    lines: list[str] = []
    if args.port:
        number, _, proto = args.port.partition("/")
        if not number.isdigit() or int(number) > 65535:
            sys.stderr.write(f'Error: invalid port ({number}): strconv.ParseUint: parsing "{number}": invalid '
                             f"syntax\n")
            return 1
        key = f"{number}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            sys.stderr.write(f"Error: No public port '{key}' published for {args.container}\n")
            return 1
        lines = [_host_port(b) for b in bindings]
    else:
        lines = [f"{key} -> {_host_port(b)}" for key, bindings in ports.items() for b in bindings or []]
    for line in sorted(lines, key=_natural_key):
        ctx.stdout.write(line + "\n")
    return 0


# --- container prune --------------------------------------------------------------------------------------------

def container_prune_parser(p: ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", help="Provide filter values (e.g. \"until=<timestamp>\")")


def container_prune(args, ctx) -> int:
    from dockyard.cli.duration import parse_time
    from dockyard.cli.filters import parse_filters
    from dockyard.cli.output import human_size
    from dockyard.engine.container_prune import prune_containers

    filters = parse_filters(args.filter, ("until", "label", "label!"))
    until = parse_time(filters["until"][-1]) if "until" in filters else None
    if not args.force and not _confirm("WARNING! This will remove all stopped containers."):
        return 0
    removed, reclaimed = prune_containers(ctx.engine, until, filters.get("label"), filters.get("label!"))
    if removed:
        ctx.stdout.write("Deleted Containers:\n" + "".join(f"{cid}\n" for cid in removed) + "\n")
    ctx.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


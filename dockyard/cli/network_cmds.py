"""`network create|ls|inspect|rm|connect|disconnect|prune`, with Docker's outputs and errors."""

from __future__ import annotations

import sys

from dockyard.cli.flags import ArgumentParser
from dockyard.cli.output import for_each, print_error, print_formatted, print_table
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.label_filters import label_holds

HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
           "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, _, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid argument {value!r} for \"{flag}\" flag")
        out[key] = val
    return out


# --- create -------------------------------------------------------------------------------------------------

def create_parser(p: ArgumentParser) -> None:
    p.add_argument("name", metavar="NETWORK")
    p.add_argument("-d", "--driver", default="bridge", help="Driver to manage the Network")
    p.add_argument("--subnet", action="append", default=[], help="Subnet in CIDR format that represents a "
                                                                  "network segment")
    p.add_argument("--gateway", action="append", default=[],
                   help="IPv4 or IPv6 Gateway for the master subnet")
    p.add_argument("--ip-range", action="append", default=[], help="Allocate container ip from a sub-range")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--ipv6", action="store_true", help="Enable IPv6 networking")


def create(args, ctx) -> int:
    if args.ipv6:
        raise InvalidArgument("IPv6 networks are not supported")
    if len(args.subnet) > 1:
        raise InvalidArgument("only one IPv4 subnet per network is supported")
    if len(args.gateway) > len(args.subnet) or len(args.ip_range) > len(args.subnet):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    record = ctx.engine.networks.create(
        args.name, driver=args.driver, subnet=args.subnet[0] if args.subnet else None,
        gateway=args.gateway[0] if args.gateway else None,
        ip_range=args.ip_range[0] if args.ip_range else None,
        internal=args.internal, attachable=args.attachable, labels=_pairs(args.label, "--label"),
        options=_pairs(args.opt, "--opt"))
    ctx.stdout.write(record.id + "\n")
    return 0


# --- ls -----------------------------------------------------------------------------------------------------

def ls_parser(p: ArgumentParser) -> None:
    p.add_argument("-f", "--filter", action="append", help="Provide filter values (e.g. 'driver=bridge')")
    p.add_argument("--format", help="Pretty-print networks using a Go template")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")


def _matches(record, filters: dict[str, list[str]]) -> bool:
    from dockyard.network.store import PREDEFINED

    checks = {
        "driver": lambda v: record.driver == v,
        "id": lambda v: record.id.startswith(v),
        "name": lambda v: v in record.name,
        "scope": lambda v: v == "local",
        "type": lambda v: (record.name in PREDEFINED) == (v == "builtin"),
        "label": lambda v: label_holds(record.data.get("Labels") or {}, v),
    }
    return all(any(checks[key](v) for v in values) for key, values in filters.items())


def ls(args, ctx) -> int:
    from dockyard.cli.filters import parse_filters

    filters = parse_filters(args.filter, ("driver", "id", "label", "name", "scope", "type", "dangling"))
    filters.pop("dangling", None)
    records = sorted((r for r in ctx.engine.networks.all() if _matches(r, filters)), key=lambda r: r.name)
    rows = [{"ID": r.id if args.no_trunc else r.id[:12], "Name": r.name, "Driver": r.driver, "Scope": "local",
             "IPv6": "false", "Internal": str(r.internal).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in sorted((r.data.get("Labels") or {}).items())),
             "CreatedAt": r.data.get("Created", "")} for r in records]
    if args.quiet:
        ctx.stdout.write("".join(row["ID"] + "\n" for row in rows))
    elif args.format:
        print_formatted(rows, args.format, HEADERS, ctx.stdout)
    else:
        print_table(rows, ["ID", "Name", "Driver", "Scope"], HEADERS, ctx.stdout)
    return 0


# --- inspect / rm / prune -----------------------------------------------------------------------------------

def inspect_parser(p: ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")


def inspect(args, ctx) -> int:
    from dockyard.cli.image_cmds import print_inspect

    service = ctx.engine.networks
    found, status = [], 0
    for name in args.names:
        try:
            found.append(service.inspect(service.get(name)))
        except DockyardError as e:
            status = 1
            print_error(f"Error response from daemon: {e}")
    print_inspect(found, args.format, ctx)
    return status


def rm_parser(p: ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")


def rm(args, ctx) -> int:
    from dockyard.errors import NotFound

    def rm_one(name: str) -> None:
        try:
            ctx.engine.networks.remove(name)
        except NotFound:
            if args.force:
                return
            raise
        ctx.stdout.write(name + "\n")
    return for_each(args.names, rm_one)


def prune_parser(p: ArgumentParser) -> None:
    p.add_argument("--filter", action="append", help="Provide filter values (e.g. 'until=<timestamp>')")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")


def prune(args, ctx) -> int:
    from dockyard.cli.filters import parse_filters

    filters = parse_filters(args.filter, ("label", "label!", "until"))
    if not args.force:
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    until = None
    if "until" in filters:
        from dockyard.cli.duration import parse_time

        until = parse_time(filters["until"][-1])
    removed = ctx.engine.networks.prune(filters.get("label"), until, filters.get("label!"))
    if removed:
        ctx.stdout.write("Deleted Networks:\n" + "".join(name + "\n" for name in removed))
    return 0


# --- connect / disconnect -----------------------------------------------------------------------------------

def connect_parser(p: ArgumentParser) -> None:
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--alias", action="append", default=[], help="Add network-scoped alias for the container")
    p.add_argument("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("--ip6", help="IPv6 address (e.g., 2001:db8::33)")
    p.add_argument("--link", action="append", default=[], help="Add link to another container")
    p.add_argument("--driver-opt", action="append", default=[], help="driver options for the network")


def connect(args, ctx) -> int:
    if args.ip6:
        raise InvalidArgument("IPv6 addresses are not supported")
    ctx.engine.networks.connect(args.network, args.container, args.alias, args.ip)
    return 0


def disconnect_parser(p: ArgumentParser) -> None:
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force the container to disconnect from a network")


def disconnect(args, ctx) -> int:
    ctx.engine.networks.disconnect(args.network, args.container, args.force)
    return 0

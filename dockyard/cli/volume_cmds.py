"""Volume commands: volume create, ls, inspect, rm, prune."""

from __future__ import annotations

import sys

from dockyard.cli.output import print_error
from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.label_filters import labels_match

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import ArgumentParser

VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                  "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED AT"}
VOLUME_FILTERS = ("dangling", "name", "label", "label!", "driver")


def _pairs(values: list[str], what: str) -> dict[str, str]:
    result = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what} {value!r}: expected key=value")
        result[key] = val
    return result


# --- create -------------------------------------------------------------------------------------------------------

def volume_create_parser(p: ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="VOLUME")
    p.add_argument("-d", "--driver", default="local", help='Specify volume driver name (default "local")')
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")


def volume_create(args, ctx) -> int:
    volume = ctx.engine.volumes.create(args.name, args.driver, _pairs(args.label, "label"), _pairs(args.opt, "option"))
    ctx.stdout.write(volume["Name"] + "\n")
    return 0


# --- ls -----------------------------------------------------------------------------------------------------------

def volume_ls_parser(p: ArgumentParser) -> None:
    p.add_argument("-f", "--filter", action="append", help="Provide filter values (e.g. \"dangling=true\")")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")


def volume_matches(volume: dict, filters: dict[str, list[str]], in_use: bool) -> bool:
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")
        if (value.lower() in ("true", "1")) == in_use:
            return False
    if "name" in filters and not any(v in volume["Name"] for v in filters["name"]):
        return False
    if "driver" in filters and volume["Driver"] not in filters["driver"]:
        return False
    return labels_match(volume.get("Labels") or {}, filters.get("label", ()), filters.get("label!", ()))


def volume_row(volume: dict, links: int) -> dict:
    return {**volume, "Labels": ",".join(f"{k}={v}" for k, v in sorted((volume.get("Labels") or {}).items())),
            "Links": str(links), "Size": "N/A"}


def volume_ls(args, ctx) -> int:
    from dockyard.cli.filters import parse_filters
    from dockyard.cli.output import print_formatted, print_table

    filters = parse_filters(args.filter, VOLUME_FILTERS)
    engine = ctx.engine
    users = {}
    for record in engine.containers.records.all():
        for mount in record.data.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                users[mount["Name"]] = users.get(mount["Name"], 0) + 1
    volumes = [v for v in engine.volumes.all() if volume_matches(v, filters, users.get(v["Name"], 0) > 0)]
    if args.quiet:
        ctx.stdout.write("".join(v["Name"] + "\n" for v in volumes))
        return 0
    rows = [volume_row(v, users.get(v["Name"], 0)) for v in volumes]
    if args.format and args.format != "table":
        print_formatted(rows, args.format, VOLUME_HEADERS, ctx.stdout)
    else:
        print_table(rows, ["Driver", "Name"], VOLUME_HEADERS, ctx.stdout)
    return 0


# --- inspect ------------------------------------------------------------------------------------------------------

def volume_inspect_parser(p: ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--format", help="Format output using a custom template")


def volume_inspect(args, ctx) -> int:
    from dockyard.cli.image_cmds import print_inspect

    found, status = [], 0
    for name in args.names:
        try:
            found.append(ctx.engine.volumes.get(name))
        except NotFound as e:
            status = 1
            print_error(f"Error response from daemon: {e}")
    if found or not args.format:
        print_inspect(found, args.format, ctx)
    return status


# --- rm -----------------------------------------------------------------------------------------------------------

def volume_rm_parser(p: ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")


def volume_rm(args, ctx) -> int:
    status = 0
    for name in args.names:
        try:
            ctx.engine.volumes.remove(name, force=args.force)
        except NotFound as e:
            if args.force:
                continue  # docker volume rm -f: a missing volume is not an error
            print_error(f"Error response from daemon: {e}")
            status = 1
            continue
        except DockyardError as e:
            print_error(f"Error response from daemon: {e}")
            status = 1
            continue
        ctx.stdout.write(name + "\n")
    return status


# --- prune --------------------------------------------------------------------------------------------------------

def volume_prune_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")
    p.add_argument("--filter", action="append", help="Provide filter values (e.g. \"label=<label>\")")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")


def volume_prune(args, ctx) -> int:
    from dockyard.cli.filters import parse_filters
    from dockyard.cli.output import human_size

    filters = parse_filters(args.filter, ("label", "label!", "all"))
    everything = args.all or any(v.lower() in ("true", "1") for v in filters.get("all", []))
    if not args.force:
        what = "all local volumes" if everything else "anonymous local volumes"
        sys.stdout.write(f"WARNING! This will remove {what} not used by at least one container.\n"
                         f"Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed, reclaimed = ctx.engine.volumes.prune(all_volumes=everything, label_filters=filters.get("label"),
                                                  not_label_filters=filters.get("label!"))
    if removed:
        ctx.stdout.write("Deleted Volumes:\n" + "".join(f"{name}\n" for name in removed) + "\n")
    ctx.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0

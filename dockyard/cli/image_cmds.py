"""Image commands: images, tag, rmi, history, import, save, load, image inspect/prune/bootstrap."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from dockyard.cli.duration import parse_time
from dockyard.cli.filters import parse_filters
from dockyard.cli.flags import REMAINDER, ArgumentParser
from dockyard.cli.output import (
    go_time,
    human_size,
    print_error,
    print_formatted,
    print_json,
    print_table,
    since,
)
from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.image import reference
from dockyard.label_filters import labels_match
from dockyard.timeutil import parse_rfc3339

IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                 "Containers": "CONTAINERS"}
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
IMAGE_FILTERS = ("dangling", "reference", "label", "before", "since", "until")


# --- images -----------------------------------------------------------------------------------------------------

def images_parser(p: ArgumentParser) -> None:
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template ('table', 'table TEMPLATE', 'json', "
                                    "or a Go template)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")


def _reference_matches(patterns: list[str], repo: str, tag: str | None) -> bool:
    import fnmatch

    names = [repo] + ([f"{repo}:{tag}"] if tag else [])
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def _image_rows(ctx, args) -> list[dict[str, Any]]:
    service = ctx.engine.images
    filters = parse_filters(args.filter, IMAGE_FILTERS)
    if args.repository:
        filters.setdefault("reference", []).append(args.repository)
    records = service.records.all()
    tags = service.records.all_tags()
    digests = service.records.all_repo_digests()
    parents = {r.parent for r in records if r.parent}
    times = {r.id: parse_rfc3339(r.created) or r.added for r in records}

    def boundary(key: str) -> float | None:
        if key not in filters:
            return None
        return times[service.resolve(filters[key][0]).id]

    before, after = boundary("before"), boundary("since")
    until = parse_time(filters.get("until", [None])[0])
    rows = []
    for image in sorted(records, key=lambda r: times[r.id], reverse=True):
        names = tags.get(image.id, [])
        if not args.all and not names and image.id in parents and "dangling" not in filters:
            continue  # an intermediate image of a build
        if "dangling" in filters:
            want = filters["dangling"][0].lower()
            if want not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={want}'")
            if (not names) != (want in ("true", "1")):
                continue
        if before is not None and times[image.id] >= before:
            continue
        if after is not None and times[image.id] <= after:
            continue
        if until is not None and times[image.id] >= until:
            continue
        if "label" in filters:
            labels = service.config_of(image).config.get("Labels") or {}
            if not labels_match(labels, filters["label"]):
                continue
        for repo, tag, digest in _entries(names, digests.get(image.id, [])):
            if "reference" in filters and (repo == "<none>" or not _reference_matches(
                    filters["reference"], repo, tag if tag != "<none>" else None)):
                continue
            rows.append(_image_row(image, repo, tag, digest, times[image.id], args.no_trunc))
    return rows


def _entries(names: list[str], digest_refs: list[str]) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows of an image, as `docker images` lists them."""
    by_repo: dict[str, str] = {}
    for d in digest_refs:
        ref = reference.parse(d)
        by_repo.setdefault(ref.familiar_repository, ref.digest or "<none>")
    rows = []
    tagged_repos = set()
    for name in names:
        ref = reference.parse(name)
        tagged_repos.add(ref.familiar_repository)
        rows.append((ref.familiar_repository, ref.tag or "<none>", by_repo.get(ref.familiar_repository, "<none>")))
    for repo, digest in by_repo.items():
        if repo not in tagged_repos:
            rows.append((repo, "<none>", digest))
    return rows or [("<none>", "<none>", "<none>")]


def _image_row(image, repo: str, tag: str, digest: str, created: float, no_trunc: bool) -> dict[str, Any]:
    return {
        "Containers": "N/A",
        "CreatedAt": go_time(created),
        "CreatedSince": since(created),
        "Digest": digest,
        "ID": image.id if no_trunc else image.short_id,
        "Repository": repo,
        "SharedSize": "N/A",
        "Size": human_size(image.size),
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": human_size(image.size),
    }


def images(args, ctx) -> int:
    rows = _image_rows(ctx, args)
    if args.quiet:
        seen = []
        for row in rows:
            if row["ID"] not in seen:
                seen.append(row["ID"])
        ctx.stdout.write("".join(f"{i if args.no_trunc else i}\n" for i in seen))
        return 0
    if args.format and args.format != "table":
        print_formatted(rows, args.format, IMAGE_HEADERS, ctx.stdout)
        return 0
    columns = ["Repository", "Tag"] + (["Digest"] if args.digests else []) + ["ID", "CreatedSince", "Size"]
    print_table(rows, columns, IMAGE_HEADERS, ctx.stdout)
    return 0


# --- tag, rmi ---------------------------------------------------------------------------------------------------

def tag_parser(p: ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def tag(args, ctx) -> int:
    ctx.engine.images.tag(args.source, args.target)
    return 0


def rmi_parser(p: ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")


def rmi(args, ctx) -> int:
    status = 0
    for name in args.images:
        try:
            report = ctx.engine.images.remove(name, force=args.force, prune=not args.no_prune)
        except DockyardError as e:
            print_error(f"Error response from daemon: {_no_such_image(e, name)}")
            status = 1
            continue
        for item in report.items:
            for key, value in item.items():
                ctx.stdout.write(f"{key}: {value}\n")
    return status


def _no_such_image(error: DockyardError, name: str) -> str:
    if isinstance(error, NotFound):
        try:
            shown = reference.parse(name).familiar
        except DockyardError:
            shown = name
        return f"No such image: {shown}"
    return str(error)


# --- history ----------------------------------------------------------------------------------------------------

def history_parser(p: ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-H", "--human", default="true", nargs="?", const="true",
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def history(args, ctx) -> int:
    from dockyard.engine.image_views import history as history_rows

    service = ctx.engine.images
    image = service.resolve(args.image)
    human = args.human.lower() not in ("false", "0")
    rows = []
    for entry in history_rows(service, image):
        image_id = entry["Id"]
        if image_id != "<missing>" and not args.no_trunc:
            image_id = image_id[7:19]
        created_by = entry["CreatedBy"].replace("\t", " ")
        rows.append({
            "ID": image_id,
            "CreatedSince": since(entry["Created"]) if human else go_time(entry["Created"]),
            "CreatedAt": go_time(entry["Created"]),
            "CreatedBy": created_by if args.no_trunc else _ellipsis(created_by, 45),
            "Size": human_size(entry["Size"]) if human else str(entry["Size"]),
            "Comment": entry["Comment"],
        })
    if args.quiet:
        ctx.stdout.write("".join(f"{row['ID']}\n" for row in rows))
        return 0
    if args.format and args.format != "table":
        print_formatted(rows, args.format, HISTORY_HEADERS, ctx.stdout)
    else:
        print_table(rows, ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"], HISTORY_HEADERS, ctx.stdout)
    return 0


# --- inspect ----------------------------------------------------------------------------------------------------

def image_inspect_parser(p: ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="Format output using a custom template")


def image_inspect(args, ctx) -> int:
    from dockyard.engine.image_views import inspect

    service = ctx.engine.images
    found, status = [], 0
    for name in args.images:
        try:
            found.append(inspect(service, service.resolve(name)))
        except NotFound:
            status = 1
            print_error(f"Error: No such image: {name}")
    print_inspect(found, args.format, ctx)
    return status


def print_inspect(objects: list[dict[str, Any]], fmt: str | None, ctx) -> None:
    if fmt:
        from dockyard.cli.gotemplate import Template

        template = Template(fmt.replace("\\t", "\t").replace("\\n", "\n"))
        for obj in objects:
            ctx.stdout.write(template.render(obj) + "\n")
    else:
        print_json(objects, ctx.stdout)


# --- save, load, import ---------------------------------------------------------------------------------------

def save_parser(p: ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")


def save(args, ctx) -> int:
    from dockyard.engine.image_io import save as save_images

    service = ctx.engine.images
    if not args.output:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        out = sys.stdout.buffer
        save_images(service, args.images, out)
        return 0
    for name in args.images:  # fail before creating the file
        service.resolve(name)
    from dockyard.fsutil import WrittenIntoPlace

    with WrittenIntoPlace(args.output) as out:  # a failed save leaves no half-written archive behind
        save_images(service, args.images, out)
    return 0


def load_parser(p: ArgumentParser) -> None:
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


def load(args, ctx) -> int:
    from dockyard.engine.image_io import load as load_images

    if args.input:
        try:
            stream = open(args.input, "rb")
        except FileNotFoundError:
            raise NotFound(f"open {args.input}: no such file or directory") from None
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        stream = ctx.stdin
    with stream:
        result = load_images(ctx.engine.images, stream)
    for line in result.lines:
        ctx.stdout.write(line + "\n")
    return 0


def import__parser(p: ArgumentParser) -> None:
    p.add_argument("source", metavar="file|URL|-")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the "
                                                                        "created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")


def import_(args, ctx) -> int:
    from dockyard.engine.image_io import import_rootfs, open_source

    if args.platform:
        _check_platform(args.platform)
    if args.repository:
        reference.parse(args.repository)  # a bad name fails before anything is read
    stream, source_name = open_source(args.source, ctx.stdin)
    with stream:
        image = import_rootfs(ctx.engine.images, stream, source_name, args.repository, args.change, args.message)
    ctx.stdout.write(image.id + "\n")
    return 0


def _check_platform(value: str) -> None:
    from dockyard.image.model import host_platform

    os_name, arch, _ = host_platform()
    parts = value.split("/")
    if parts[0] != os_name or (len(parts) > 1 and parts[1] != arch):
        raise InvalidArgument(f"platform {value} is not supported here (this host is {os_name}/{arch})")


# --- prune, bootstrap -------------------------------------------------------------------------------------------

def prune_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("--filter", action="append", help="Provide filter values (e.g. 'until=<timestamp>')")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")


def prune(args, ctx) -> int:
    filters = parse_filters(args.filter, ("until", "label", "label!"))
    if not args.force:
        what = "all images without at least one container associated to them" if args.all else \
            "all dangling images"
        sys.stdout.write(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    until = parse_time(filters["until"][0]) if "until" in filters else None
    report = ctx.engine.images.prune(all_images=args.all, until=until, label_filters=filters.get("label"),
                                     not_label_filters=filters.get("label!"))
    if report.items:
        ctx.stdout.write("Deleted Images:\n")
        for item in report.items:
            for key, value in item.items():
                ctx.stdout.write(f"{key.lower()}: {value}\n")
        ctx.stdout.write("\n")
    ctx.stdout.write(f"Total reclaimed space: {human_size(report.reclaimed)}\n")
    return 0


def bootstrap_parser(p: ArgumentParser) -> None:
    from dockyard.templates import TEMPLATES

    p.add_argument("template", choices=sorted(TEMPLATES), help="the recipe to follow")
    p.add_argument("options", nargs=REMAINDER, help="the template's own options (see TEMPLATE --help)")


def bootstrap(args, ctx) -> int:
    from dockyard import templates
    from dockyard.engine.bootstrap import bootstrap as make

    template = templates.load(args.template)
    parser = ArgumentParser(prog=f"dockyard image bootstrap {args.template}",
                                     description=template.DESCRIPTION)
    template.add_arguments(parser)
    options = parser.parse_args(args.options)
    image = make(ctx.engine.images, template, options)
    ctx.stdout.write(f"{reference.parse(template.reference(options)).familiar} {image.id}\n")
    return 0

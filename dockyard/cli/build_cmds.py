"""`dockyard build` and `dockyard builder prune`."""

from __future__ import annotations

import os
import sys

from dockyard.cli.flags import ArgumentParser
from dockyard.errors import InvalidArgument

PROGRESS_MODES = ("auto", "plain", "tty", "quiet")


def build_parser(p: ArgumentParser) -> None:
    p.add_argument("context", metavar="PATH | -", help="the build context: a directory, a tar archive, "
                                                       "or - (a Dockerfile or a tar archive on stdin)")
    p.add_argument("-t", "--tag", action="append", default=[], help="Name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", help="Name of the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables (KEY=VALUE, or "
                                                                     "KEY to take it from the environment)")
    p.add_argument("--target", help="Set the target build stage to build")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on "
                                                              "success")
    p.add_argument("--network", default="default", help="Networking mode for the RUN instructions during "
                                                        "build (default, host, none)")
    p.add_argument("--iidfile", help="Write the image ID to the file")
    p.add_argument("--platform", help="Set platform (only the host's)")
    p.add_argument("--progress", default="auto", help="Type of progress output (auto, plain, tty, quiet)")
    p.add_argument("--secret", action="append", default=[], help="Secret to expose to the build "
                                                                 "(id=mysecret[,src=/local/secret|,env=VAR])")
    p.add_argument("--explain-cache", action="store_true", help="Say why each rebuilt step missed the cache")
    p.add_argument("--rm", default="true", nargs="?", const="true", help="Ignored: build containers are "
                                                                         "always removed")
    p.add_argument("--force-rm", action="store_true", help="Ignored: build containers are always removed")


def _key_values(items: list[str], what: str, from_env: bool = False) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what}: {item!r}")
        if not eq:
            if not from_env:
                raise InvalidArgument(f"invalid {what}: {item!r} (expected KEY=VALUE)")
            if key not in os.environ:
                continue  # docker: a KEY not set in the environment is left out
            value = os.environ[key]
        out[key] = value
    return out


def _secrets(items: list[str]):  # type: ignore[no-untyped-def]
    from dockyard.build.run_mounts import Secret

    secrets = {}
    for item in items:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        secret_id = fields.get("id")
        if not secret_id:
            raise InvalidArgument(f"invalid --secret {item!r}: id= is required")
        if fields.get("env"):
            if fields["env"] not in os.environ:
                raise InvalidArgument(f"--secret {secret_id}: environment variable {fields['env']} is not set")
            data = os.environ[fields["env"]].encode()
        else:
            path = fields.get("src") or fields.get("source")
            if not path:
                if secret_id in os.environ:
                    data = os.environ[secret_id].encode()
                else:
                    raise InvalidArgument(f"invalid --secret {item!r}: src= or env= is required")
            else:
                with open(path, "rb") as f:
                    data = f.read()
        secrets[secret_id] = Secret(data)
    return secrets


def _epoch(build_args: dict[str, str]) -> int | None:
    value = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    if not value.isdigit():
        raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH {value!r}: expected seconds since 1970")
    return int(value)


def build(args, ctx) -> int:
    from dockyard.build.executor import Builder, BuildOptions
    from dockyard.build.progress import Progress
    from dockyard.build.run_step import RunFailed
    from dockyard.build.sandbox import isolate_mounts

    if args.context.startswith(("http://", "https://", "git@", "git://", "ssh://")):
        raise InvalidArgument("remote build contexts (URLs, git) are not supported: give a directory, a tar "
                              "archive or -")
    if args.progress not in PROGRESS_MODES:
        raise InvalidArgument(f"invalid --progress {args.progress!r}: use one of {', '.join(PROGRESS_MODES)}")
    mode = "quiet" if args.quiet else args.progress
    if mode == "auto":
        mode = "tty" if sys.stdout.isatty() else "plain"
    build_args = _key_values(args.build_arg, "--build-arg", from_env=True)
    options = BuildOptions(
        context=args.context, dockerfile=args.file, tags=list(args.tag), build_args=build_args,
        target=args.target, no_cache=args.no_cache, pull=args.pull,
        labels=_key_values(args.label, "--label"), network=args.network, platform=args.platform,
        secrets=_secrets(args.secret), explain_cache=args.explain_cache, source_date_epoch=_epoch(build_args),
        stdin=ctx.stdin)
    isolate_mounts()
    sys.stdout.flush()
    progress = Progress(sys.stdout.buffer, mode)
    try:
        result = Builder(ctx.engine, options, progress).build()
    except RunFailed:
        if progress.quiet and progress.tail:
            sys.stderr.buffer.write(bytes(progress.tail))
            sys.stderr.flush()
        raise
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(result.image_id)
    return 0


def builder_prune_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused build cache, not just dangling "
                                                            "ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=24h')")


def builder_prune(args, ctx) -> int:
    from dockyard.build.prune import prune_build_cache
    from dockyard.cli.duration import parse_time
    from dockyard.cli.output import human_size

    until = None
    for item in args.filter:
        key, _, value = item.partition("=")
        if key != "until":
            raise InvalidArgument(f"invalid filter '{key}' (builder prune takes until=)")
        until = parse_time(value)
    report = prune_build_cache(ctx.engine, all_records=args.all, until=until)
    ctx.stdout.write(f"Deleted build cache objects: {report.records}\n")
    ctx.stdout.write(f"Total reclaimed space: {human_size(report.reclaimed)}\n")
    return 0

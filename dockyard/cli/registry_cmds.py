"""Registry commands: pull, push, login, logout, and `registry serve|gc` (our own registry server).

The registry client is imported inside the commands, so `--help` and the other commands never pay for it;
tests/cli/test_startup_imports.py keeps what the commands import before their first request in check.
"""

from __future__ import annotations

import sys

from dockyard.cli.flags import SUPPRESS, ArgumentParser, Namespace
from dockyard.errors import InvalidArgument


def _insecure_flag(p: ArgumentParser) -> None:
    p.add_argument("--insecure-registry", action="append", default=[], metavar="REGISTRY",
                   help="Allow plain HTTP (and unverified HTTPS) to this registry (also "
                        "DOCKYARD_INSECURE_REGISTRIES); 127.0.0.0/8 and localhost always are")


def _client_options(args: Namespace):  # type: ignore[no-untyped-def]
    from dockyard.registry.client.session import ClientOptions

    return ClientOptions(insecure_registries=list(args.insecure_registry))


# --- pull ---------------------------------------------------------------------------------------------------------

def pull_parser(p: ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images in the repository")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable (os/arch[/variant])")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", help=SUPPRESS)
    _insecure_flag(p)


def pull(args: Namespace, ctx) -> int:  # type: ignore[no-untyped-def]
    from dockyard.registry.client.progress import for_terminal
    from dockyard.registry.client.pull import PullOptions, pull_image

    progress = for_terminal(ctx.stdout, args.quiet)
    options = PullOptions(platform=args.platform, all_tags=args.all_tags, client=_client_options(args))
    try:
        results = pull_image(ctx.engine.images, args.name, options, progress)
    finally:
        progress.close()
    if args.all_tags:
        from dockyard.image import reference

        ctx.stdout.write(f"{reference.parse(args.name, default_tag=False).repository}\n")
    else:
        for result in results:
            ctx.stdout.write(f"{result.reference}\n")
    return 0


# --- push ---------------------------------------------------------------------------------------------------------

def push_parser(p: ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image to the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", help=SUPPRESS)
    _insecure_flag(p)


def push(args: Namespace, ctx) -> int:  # type: ignore[no-untyped-def]
    from dockyard.registry.client.progress import for_terminal
    from dockyard.registry.client.push import PushOptions, push_image

    progress = for_terminal(ctx.stdout, args.quiet)
    try:
        results = push_image(ctx.engine.images, args.name, PushOptions(args.all_tags, _client_options(args)),
                             progress)
    finally:
        progress.close()
    if args.quiet:
        for result in results:
            ctx.stdout.write(f"{result.reference}\n")
    return 0


# --- login / logout -----------------------------------------------------------------------------------------------

def login_parser(p: ArgumentParser) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    _insecure_flag(p)


def _read_credentials(args: Namespace, ctx):  # type: ignore[no-untyped-def]
    from dockyard.registry.client.credentials import Credentials

    if args.password_stdin:
        if args.password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        if not args.username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = ctx.stdin.read().decode().rstrip("\r\n")
    elif args.password is not None:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
        password = args.password
    else:
        password = None
    username = args.username
    if not username:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        username = input("Username: ").strip()
    if password is None:
        import getpass

        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        password = getpass.getpass("Password: ")
    if not username:
        raise InvalidArgument("Error: Non-null Username Required")
    if not password:
        raise InvalidArgument("Error: Password Required")
    return Credentials(username, password)


def login(args: Namespace, ctx) -> int:  # type: ignore[no-untyped-def]
    from dockyard.registry.client.login import login as do_login

    credentials = _read_credentials(args, ctx)
    do_login(args.server, credentials, _client_options(args))
    ctx.stdout.write("Login Succeeded\n")
    return 0


def logout_parser(p: ArgumentParser) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER")


def logout(args: Namespace, ctx) -> int:  # type: ignore[no-untyped-def]
    from dockyard.registry.client.hosts import credential_key
    from dockyard.registry.client.login import logout as do_logout

    name, found = do_logout(args.server)
    if found:
        ctx.stdout.write(f"Removing login credentials for {credential_key(name)}\n")
    else:
        ctx.stdout.write(f"Not logged in to {credential_key(name)}\n")
    return 0


# --- registry serve / gc ------------------------------------------------------------------------------------------

def registry_serve_parser(p: ArgumentParser) -> None:
    from dockyard.registry.server.cli import add_serve_arguments

    add_serve_arguments(p)


def registry_serve(args: Namespace, ctx) -> int:  # type: ignore[no-untyped-def]
    from dockyard.registry.server.cli import run_serve

    return run_serve(args)


def registry_gc_parser(p: ArgumentParser) -> None:
    from dockyard.registry.server.cli import add_gc_arguments

    add_gc_arguments(p)


def registry_gc(args: Namespace, ctx) -> int:  # type: ignore[no-untyped-def]
    from dockyard.registry.server.cli import run_gc

    return run_gc(args)

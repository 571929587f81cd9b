"""Arguments of `registry serve` and `registry gc`, shared by `dockyard registry` and `python3 -m ...server`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.registry.server.app import DEFAULT_ADDR, DEFAULT_ROOT


def _default_root() -> str:
    return os.environ.get("REGISTRY_ROOT", DEFAULT_ROOT)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--addr", default=os.environ.get("REGISTRY_ADDR", DEFAULT_ADDR),
                   help=f"HOST:PORT to listen on (default {DEFAULT_ADDR}; ':5000' for all addresses)")
    p.add_argument("--root", default=_default_root(), help=f"storage directory (default {DEFAULT_ROOT})")
    p.add_argument("--htpasswd", help="bcrypt htpasswd file; turns on Basic auth (or token auth, see --auth)")
    p.add_argument("--auth", choices=["none", "basic", "token"],
                   help="none, basic (default with --htpasswd) or token (Docker token flow; /token endpoint)")
    p.add_argument("--token-realm", help="URL clients fetch tokens from (default: this server's /token)")
    p.add_argument("--token-service", default="dockyard-registry", help="service name in token challenges")
    p.add_argument("--anonymous-pull", action="store_true", help="token auth: let anonymous users pull")
    p.add_argument("--tls-cert", help="TLS certificate (PEM)")
    p.add_argument("--tls-key", help="TLS private key (PEM)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def add_gc_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=_default_root(), help=f"storage directory (default {DEFAULT_ROOT})")
    p.add_argument("--grace", type=float, default=600.0,
                   help="keep unreferenced blobs younger than this many seconds: they may belong to a push "
                        "in progress (default 600; 0 when no server is running)")
    p.add_argument("--delete-untagged", action="store_true",
                   help="also remove manifests that no tag reaches (directly, via an index or as a referrer)")
    p.add_argument("--dry-run", action="store_true", help="only report what would be removed")


def run_serve(args: argparse.Namespace) -> int:
    from dockyard.registry.server.app import ServerConfig, parse_addr, serve

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(message)s")
    host, port = parse_addr(args.addr)
    config = ServerConfig(
        root=Path(args.root), host=host, port=port, htpasswd=Path(args.htpasswd) if args.htpasswd else None,
        auth_mode=args.auth, token_realm=args.token_realm, token_service=args.token_service,
        anonymous_pull=args.anonymous_pull, tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None, access_log=args.access_log)

    def ready(server: object) -> None:
        # One line on stdout, so whoever started us (with port 0) learns where we listen.
        print(f"listening on {server.url}", flush=True)  # type: ignore[attr-defined]

    serve(config, ready)
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from dockyard.registry.server.storage import Storage

    report = Storage(Path(args.root)).collect_garbage(args.grace, args.delete_untagged, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {report.blobs_removed} blobs ({report.bytes_removed} bytes), "
          f"{report.manifests_removed} manifests, {report.links_removed} dangling links, "
          f"{report.uploads_removed} stale uploads")
    if report.blobs_kept_recent:
        print(f"kept {report.blobs_kept_recent} unreferenced blobs younger than {args.grace:g}s (see --grace)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard registry", description="an OCI distribution registry")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(sub.add_parser("serve", help="run the registry server"))
    add_gc_arguments(sub.add_parser("gc", help="remove blobs that no manifest references"))
    args = parser.parse_args(argv)
    try:
        return run_serve(args) if args.command == "serve" else run_gc(args)
    except DockyardError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code

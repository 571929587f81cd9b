"""The `dockyard` command: Docker's command names and flags, run in-process against the engine.

Start-up stays lean: only the module of the command being run is imported, and only its parser is built.
"""

from __future__ import annotations

import os
import sys

# (command words) -> (module under dockyard.cli, function name, one-line help). The module defines
# `<function>_parser(parser)` to add its arguments and `<function>(args, ctx)` to run.
COMMANDS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("images",): ("image_cmds", "images", "List images"),
    ("tag",): ("image_cmds", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    ("rmi",): ("image_cmds", "rmi", "Remove one or more images"),
    ("history",): ("image_cmds", "history", "Show the history of an image"),
    ("import",): ("image_cmds", "import_", "Import the contents from a tarball to create a filesystem image"),
    ("save",): ("image_cmds", "save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    ("load",): ("image_cmds", "load", "Load an image from a tar archive or STDIN"),
    ("inspect",): ("system_cmds", "inspect", "Return low-level information on Docker objects"),
    ("info",): ("system_cmds", "info", "Display system-wide information"),
    ("version",): ("system_cmds", "version", "Show the Docker version information"),
    ("create",): ("container_cmds", "create", "Create a new container"),
    ("run",): ("container_cmds", "run", "Create and run a new container from an image"),
    ("start",): ("container_cmds", "start", "Start one or more stopped containers"),
    ("stop",): ("container_cmds", "stop", "Stop one or more running containers"),
    ("kill",): ("container_cmds", "kill", "Kill one or more running containers"),
    ("restart",): ("container_cmds", "restart", "Restart one or more containers"),
    ("rm",): ("container_cmds", "rm", "Remove one or more containers"),
    ("ps",): ("container_cmds", "ps", "List containers"),
    ("logs",): ("container_cmds", "logs", "Fetch the logs of a container"),
    ("wait",): ("container_cmds", "wait", "Block until one or more containers stop, then print their exit codes"),
    ("exec",): ("container_cmds", "exec_", "Execute a command in a running container"),
    ("attach",): ("container_cmds", "attach", "Attach local standard input, output, and error streams to a "
                                              "running container"),
    ("pause",): ("container_cmds", "pause", "Pause all processes within one or more containers"),
    ("unpause",): ("container_cmds", "unpause", "Unpause all processes within one or more containers"),
    ("rename",): ("container_cmds", "rename", "Rename a container"),
    ("cp",): ("cp_cmd", "cp", "Copy files/folders between a container and the local filesystem"),
    ("diff",): ("container_extra_cmds", "diff", "Inspect changes to files or directories on a container"),
    ("commit",): ("container_extra_cmds", "commit", "Create a new image from a container's changes"),
    ("export",): ("container_extra_cmds", "export", "Export a container's filesystem as a tar archive"),
    ("top",): ("container_extra_cmds", "top", "Display the running processes of a container"),
    ("stats",): ("container_extra_cmds", "stats", "Display a live stream of container(s) resource usage"),
    ("port",): ("container_extra_cmds", "port", "List port mappings or a specific mapping for the container"),
    ("container", "cp"): ("cp_cmd", "cp", "Copy files/folders between a container and the local filesystem"),
    ("container", "diff"): ("container_extra_cmds", "diff", "Inspect changes to files on a container"),
    ("container", "commit"): ("container_extra_cmds", "commit", "Create a new image from a container's changes"),
    ("container", "export"): ("container_extra_cmds", "export", "Export a container's filesystem as a tar"),
    ("container", "top"): ("container_extra_cmds", "top", "Display the running processes of a container"),
    ("container", "stats"): ("container_extra_cmds", "stats", "Display container(s) resource usage statistics"),
    ("container", "port"): ("container_extra_cmds", "port", "List port mappings for the container"),
    ("container", "prune"): ("container_extra_cmds", "container_prune", "Remove all stopped containers"),
    ("volume", "create"): ("volume_cmds", "volume_create", "Create a volume"),
    ("volume", "ls"): ("volume_cmds", "volume_ls", "List volumes"),
    ("volume", "list"): ("volume_cmds", "volume_ls", "List volumes"),
    ("volume", "inspect"): ("volume_cmds", "volume_inspect", "Display detailed information on volumes"),
    ("volume", "rm"): ("volume_cmds", "volume_rm", "Remove one or more volumes"),
    ("volume", "remove"): ("volume_cmds", "volume_rm", "Remove one or more volumes"),
    ("volume", "prune"): ("volume_cmds", "volume_prune", "Remove unused local volumes"),
    ("container", "create"): ("container_cmds", "create", "Create a new container"),
    ("container", "run"): ("container_cmds", "run", "Create and run a new container from an image"),
    ("container", "start"): ("container_cmds", "start", "Start one or more stopped containers"),
    ("container", "stop"): ("container_cmds", "stop", "Stop one or more running containers"),
    ("container", "kill"): ("container_cmds", "kill", "Kill one or more running containers"),
    ("container", "restart"): ("container_cmds", "restart", "Restart one or more containers"),
    ("container", "rm"): ("container_cmds", "rm", "Remove one or more containers"),
    ("container", "ls"): ("container_cmds", "ps", "List containers"),
    ("container", "list"): ("container_cmds", "ps", "List containers"),
    ("container", "ps"): ("container_cmds", "ps", "List containers"),
    ("container", "logs"): ("container_cmds", "logs", "Fetch the logs of a container"),
    ("container", "wait"): ("container_cmds", "wait", "Block until one or more containers stop"),
    ("container", "exec"): ("container_cmds", "exec_", "Execute a command in a running container"),
    ("container", "attach"): ("container_cmds", "attach", "Attach to a running container"),
    ("container", "pause"): ("container_cmds", "pause", "Pause all processes within one or more containers"),
    ("container", "unpause"): ("container_cmds", "unpause", "Unpause all processes within containers"),
    ("container", "rename"): ("container_cmds", "rename", "Rename a container"),
    ("container", "inspect"): ("system_cmds", "container_inspect", "Display detailed information on containers"),
    ("image", "ls"): ("image_cmds", "images", "List images"),
    ("image", "list"): ("image_cmds", "images", "List images"),
    ("image", "inspect"): ("image_cmds", "image_inspect", "Display detailed information on one or more images"),
    ("image", "tag"): ("image_cmds", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    ("image", "rm"): ("image_cmds", "rmi", "Remove one or more images"),
    ("image", "remove"): ("image_cmds", "rmi", "Remove one or more images"),
    ("image", "history"): ("image_cmds", "history", "Show the history of an image"),
    ("image", "import"): ("image_cmds", "import_", "Import the contents from a tarball to create an image"),
    ("image", "save"): ("image_cmds", "save", "Save one or more images to a tar archive"),
    ("image", "load"): ("image_cmds", "load", "Load an image from a tar archive or STDIN"),
    ("image", "prune"): ("image_cmds", "prune", "Remove unused images"),
    ("image", "bootstrap"): ("image_cmds", "bootstrap", "Make a base image from a template (busybox, debian)"),
    ("network", "create"): ("network_cmds", "create", "Create a network"),
    ("network", "ls"): ("network_cmds", "ls", "List networks"),
    ("network", "list"): ("network_cmds", "ls", "List networks"),
    ("network", "inspect"): ("network_cmds", "inspect", "Display detailed information on networks"),
    ("network", "rm"): ("network_cmds", "rm", "Remove one or more networks"),
    ("network", "remove"): ("network_cmds", "rm", "Remove one or more networks"),
    ("network", "prune"): ("network_cmds", "prune", "Remove all unused networks"),
    ("network", "connect"): ("network_cmds", "connect", "Connect a container to a network"),
    ("network", "disconnect"): ("network_cmds", "disconnect", "Disconnect a container from a network"),
    ("build",): ("build_cmds", "build", "Build an image from a Dockerfile"),
    ("image", "build"): ("build_cmds", "build", "Build an image from a Dockerfile"),
    ("builder", "build"): ("build_cmds", "build", "Build an image from a Dockerfile"),
    ("builder", "prune"): ("build_cmds", "builder_prune", "Remove build cache"),
    ("pull",): ("registry_cmds", "pull", "Download an image from a registry"),
    ("push",): ("registry_cmds", "push", "Upload an image to a registry"),
    ("login",): ("registry_cmds", "login", "Log in to a registry"),
    ("logout",): ("registry_cmds", "logout", "Log out from a registry"),
    ("image", "pull"): ("registry_cmds", "pull", "Download an image from a registry"),
    ("image", "push"): ("registry_cmds", "push", "Upload an image to a registry"),
    ("registry", "serve"): ("registry_cmds", "registry_serve", "Run an OCI distribution registry server"),
    ("registry", "gc"): ("registry_cmds", "registry_gc", "Remove registry blobs no manifest references"),
    ("system", "info"): ("system_cmds", "info", "Display system-wide information"),
    ("system", "prune"): ("system_cmds", "system_prune", "Remove unused data"),
}
GROUPS = {
    "builder": "Manage builds",
    "container": "Manage containers",
    "image": "Manage images",
    "network": "Manage networks",
    "registry": "Run a registry of your own",
    "system": "Manage Docker",
    "volume": "Manage volumes",
}
USAGE_EXIT = 125


class UsageError(Exception):
    pass


class Context:
    """What a command needs: the engine (built on first use) and the standard streams."""

    def __init__(self, root: str | None, debug: bool) -> None:
        self.root_option = root
        self.debug = debug
        self.stdin = sys.stdin.buffer
        self.stdout = sys.stdout
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:
            from dockyard.config import state_root
            from dockyard.engine.engine import Engine

            self._engine = Engine(state_root(self.root_option))
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def _top_help() -> str:
    lines = ["Usage:  dockyard [OPTIONS] COMMAND", "", "A Docker-compatible container engine", "",
             "Options:",
             "      --root string      State directory (default /var/lib/dockyard, or $DOCKYARD_ROOT)",
             "  -D, --debug            Enable debug mode (tracebacks on errors)",
             "  -v, --version          Print version information and quit",
             "", "Management Commands:"]
    for group, text in sorted(GROUPS.items()):
        lines.append(f"  {group:<12}{text}")
    lines += ["", "Commands:"]
    for words, (_, _, text) in sorted(COMMANDS.items()):
        if len(words) == 1:
            lines.append(f"  {words[0]:<12}{text}")
    lines += ["", "Run 'dockyard COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _group_help(group: str) -> str:
    lines = [f"Usage:  dockyard {group} COMMAND", "", GROUPS[group], "", "Commands:"]
    for words, (_, _, text) in sorted(COMMANDS.items()):
        if len(words) == 2 and words[0] == group:
            lines.append(f"  {words[1]:<12}{text}")
    lines += ["", f"Run 'dockyard {group} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _split_globals(argv: list[str]) -> tuple[dict, list[str]]:
    """Global options come before the command, as with docker."""
    options: dict = {"root": None, "debug": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--root" or arg in ("-H", "--host", "--log-level", "-l", "--config", "--context", "-c"):
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: {arg}")
            if arg == "--root":
                options["root"] = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--root="):
            options["root"] = arg.split("=", 1)[1]
        elif arg in ("-D", "--debug"):
            options["debug"] = True
        elif arg.startswith("-") and arg not in ("-h", "--help", "-v", "--version"):
            if arg.split("=", 1)[0] in ("--host", "--log-level", "--config", "--context"):
                pass
            else:
                raise UsageError(f"unknown flag: {arg}")
        else:
            break
        i += 1
    return options, argv[i:]


def _build_parser(words: tuple[str, ...], module, function: str, text: str):
    from dockyard.cli.flags import ArgumentParser

    class Parser(ArgumentParser):
        def error(self, message: str):  # docker: "unknown flag: --x / See 'docker images --help'." exit 125
            raise UsageError(f"{message}\nSee 'dockyard {' '.join(words)} --help'.")

    parser = Parser(prog=f"dockyard {' '.join(words)}", description=text, add_help=False)
    getattr(module, f"{function}_parser")(parser)
    # --help everywhere; -h too, except where docker gives -h another meaning (run -h is --hostname).
    flags = ["--help"] if "-h" in parser._option_string_actions else ["-h", "--help"]
    parser.add_argument(*flags, action="help", help="Print usage")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        options, rest = _split_globals(argv)
    except UsageError as e:
        sys.stderr.write(f"{e}\nSee 'dockyard --help'.\n")
        return USAGE_EXIT
    if not rest or rest[0] in ("-h", "--help", "help"):
        sys.stdout.write(_top_help())
        return 0
    if rest[0] in ("-v", "--version"):
        from dockyard import __version__

        sys.stdout.write(f"dockyard version {__version__}\n")
        return 0
    words: tuple[str, ...] = (rest[0],)
    if rest[0] in GROUPS:
        if len(rest) < 2 or rest[1] in ("-h", "--help"):
            sys.stdout.write(_group_help(rest[0]))
            return 0
        words = (rest[0], rest[1])
    entry = COMMANDS.get(words)
    if entry is None:
        sys.stderr.write(f"dockyard: '{' '.join(words)}' is not a dockyard command.\nSee 'dockyard --help'\n")
        return USAGE_EXIT
    module_name, function, text = entry
    # __import__ rather than importlib.import_module: the importlib package imports warnings (~0.3 ms).
    __import__(f"dockyard.cli.{module_name}")
    module = sys.modules[f"dockyard.cli.{module_name}"]
    ctx = Context(options["root"], options["debug"])
    try:
        args = _build_parser(words, module, function, text).parse_args(rest[len(words):])
        return getattr(module, function)(args, ctx) or 0
    except UsageError as e:
        sys.stderr.write(f"{e}\n")
        return USAGE_EXIT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:
        from dockyard.errors import DockyardError

        if options["debug"] or not isinstance(e, (DockyardError, OSError)):
            raise
        sys.stdout.flush()
        sys.stderr.write(f"Error response from daemon: {e}\n" if isinstance(e, DockyardError) else f"Error: {e}\n")
        return getattr(e, "exit_code", 1)
    finally:
        ctx.close()

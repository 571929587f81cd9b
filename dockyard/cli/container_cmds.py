"""Container commands: create, run, start, stop, kill, restart, rm, ps, logs, wait, exec, attach, pause..."""

from __future__ import annotations

import os
import sys
import time

from dockyard.cli.flags import REMAINDER, ArgumentParser
from dockyard.cli.output import for_each, human_size, print_error, print_formatted, print_table, since
from dockyard.errors import DockyardError, InvalidArgument, NotFound

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
              "CreatedAt": "CREATED AT", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE"}
PS_FILTERS = ("id", "name", "label", "exited", "status", "ancestor", "before", "since", "volume", "network",
              "health", "isolation", "is-task", "publish", "expose")
RUN_ERROR_EXIT = 125


# --- create / run ---------------------------------------------------------------------------------------------

def create_parser(p: ArgumentParser) -> None:
    from dockyard.cli.run_flags import add_run_flags

    add_run_flags(p)


def _check_pull(args) -> None:
    if args.pull == "always":
        raise InvalidArgument("--pull=always needs a registry; pull the image first, then run with --pull=missing")
    if args.cidfile and os.path.exists(args.cidfile):
        raise InvalidArgument(f"container ID file found, make sure the other container isn't running or "
                              f"delete {args.cidfile}")


def _write_cidfile(args, container_id: str) -> None:
    if args.cidfile:
        with open(args.cidfile, "w") as f:
            f.write(container_id)


def _body(args, command: str) -> dict | None:
    """The create body, or None after printing why the flags are wrong (docker's usage error)."""
    from dockyard.cli.run_flags import create_body

    try:
        return create_body(args)
    except InvalidArgument as e:
        print_error(f"dockyard: {e}\nSee 'dockyard {command} --help'.")
        return None


def create(args, ctx) -> int:
    body = _body(args, "create")
    if body is None:
        return RUN_ERROR_EXIT
    try:
        _check_pull(args)
        reply = ctx.engine.monitor().request({"op": "create", "body": body, "name": args.name})
    except DockyardError as e:
        print_error(f"Error response from daemon: {e}")
        return RUN_ERROR_EXIT
    _write_cidfile(args, reply["id"])
    ctx.stdout.write(reply["id"] + "\n")
    return 0


def run_parser(p: ArgumentParser) -> None:
    create_parser(p)


def run(args, ctx) -> int:
    """Docker's choreography: create, attach, start, wait; exit with the container's code.

    The monitor creates and starts in one round trip, attached before the start, so no output is missed.
    """
    from dockyard.cli.attach import parse_detach_keys, pump, terminal_size

    body = _body(args, "run")
    if body is None:
        return RUN_ERROR_EXIT
    request = {"op": "run", "body": body, "name": args.name, "attach": not args.detach,
               "stdin": args.interactive, "console": terminal_size() if args.tty else None}
    try:
        _check_pull(args)
        stream = ctx.engine.monitor().open(request)
    except DockyardError as e:
        return _run_failed(args, e)
    _write_cidfile(args, stream.reply["id"])
    if args.detach:
        stream.close()
        ctx.stdout.write(stream.reply["id"] + "\n")
        return 0
    try:
        code = pump(stream, args.tty, args.interactive, args.sig_proxy.lower() != "false",
                    parse_detach_keys(args.detach_keys))
    finally:
        stream.close()
    return 0 if code is None else code  # None: detached with the detach keys


def _run_failed(args, error: DockyardError) -> int:
    if getattr(error, "phase", "") == "start":
        code = getattr(error, "exit_code", 1)
        print_error(f"dockyard: Error response from daemon: failed to create task for container: {error}.")
        return code if code in (126, 127) else RUN_ERROR_EXIT
    if isinstance(error, NotFound) and "image" in str(error):
        print_error(f"Unable to find image '{args.image}' locally")
    print_error(f"dockyard: Error response from daemon: {error}.\nSee 'dockyard run --help'.")
    return RUN_ERROR_EXIT


# --- start / stop / kill / restart / rm ------------------------------------------------------------------------

def start_parser(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")


def start(args, ctx) -> int:
    from dockyard.cli.attach import parse_detach_keys, pump, terminal_size

    monitor = ctx.engine.monitor()
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        record = ctx.engine.containers.get(args.containers[0])
        tty = bool(record.data["Config"].get("Tty"))
        stream = monitor.open({"op": "start", "id": record.id, "attach": True, "stdin": args.interactive,
                               "console": terminal_size() if tty else None})
        try:
            code = pump(stream, tty, args.interactive, True, parse_detach_keys(args.detach_keys))
        finally:
            stream.close()
        return code or 0

    def start_one(name: str) -> None:
        record = ctx.engine.containers.get(name)
        monitor.request({"op": "start", "id": record.id})
        ctx.stdout.write(name + "\n")
    return for_each(args.containers, start_one)


def stop_parser(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, help="Seconds to wait before killing it")
    p.add_argument("-s", "--signal", help="Signal to send to the container")


def stop(args, ctx) -> int:
    monitor = ctx.engine.monitor()

    def stop_one(name: str) -> None:
        record = ctx.engine.containers.get(name)
        if record.running or record.state.get("Restarting"):
            monitor.request({"op": "stop", "id": record.id, "timeout": args.time, "signal": args.signal})
        ctx.stdout.write(name + "\n")
    return for_each(args.containers, stop_one)


def kill_parser(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container (default KILL)")


def kill(args, ctx) -> int:
    from dockyard.engine.monitor.server import signal_number

    signal_number(args.signal)  # a bad signal fails before anything is sent
    monitor = ctx.engine.monitor()

    def kill_one(name: str) -> None:
        record = ctx.engine.containers.get(name)
        if not record.running:
            from dockyard.errors import Conflict

            raise Conflict(f"Cannot kill container: {name}: Container {record.id} is not running")
        monitor.request({"op": "kill", "id": record.id, "signal": args.signal})
        ctx.stdout.write(name + "\n")
    return for_each(args.containers, kill_one)


def restart_parser(p: ArgumentParser) -> None:
    stop_parser(p)


def restart(args, ctx) -> int:
    monitor = ctx.engine.monitor()

    def restart_one(name: str) -> None:
        record = ctx.engine.containers.get(name)
        if record.running:
            monitor.request({"op": "stop", "id": record.id, "timeout": args.time, "signal": args.signal})
        monitor.request({"op": "start", "id": record.id})
        ctx.stdout.write(name + "\n")
    return for_each(args.containers, restart_one)


def rm_parser(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes of the container")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")


def rm(args, ctx) -> int:
    def rm_one(name: str) -> None:
        ctx.engine.containers.remove(name, force=args.force, volumes=args.volumes)
        ctx.stdout.write(name + "\n")
    return for_each(args.containers, rm_one)


def pause_parser(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def pause(args, ctx) -> int:
    return for_each(args.containers, lambda name: (ctx.engine.monitor().request(
        {"op": "pause", "id": ctx.engine.containers.get(name).id}), ctx.stdout.write(name + "\n")))


def unpause_parser(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def unpause(args, ctx) -> int:
    return for_each(args.containers, lambda name: (ctx.engine.monitor().request(
        {"op": "unpause", "id": ctx.engine.containers.get(name).id}), ctx.stdout.write(name + "\n")))


def rename_parser(p: ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")


def rename(args, ctx) -> int:
    from dockyard.engine.names import check_name

    record = ctx.engine.containers.get(args.container)
    ctx.engine.containers.records.rename(record.id, check_name(args.new_name))
    return 0


def wait_parser(p: ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def wait(args, ctx) -> int:
    def wait_one(name: str) -> None:
        record = ctx.engine.containers.get(name)
        if not record.running and not record.state.get("Restarting"):
            ctx.stdout.write(f"{record.state.get('ExitCode', 0)}\n")
            return
        reply = ctx.engine.monitor().request({"op": "wait", "id": record.id, "condition": "not-running"})
        ctx.stdout.write(f"{reply.get('exit', 0)}\n")
    return for_each(args.containers, wait_one)


# --- exec / attach ----------------------------------------------------------------------------------------------

def exec__parser(p: ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]")


def exec_(args, ctx) -> int:
    from dockyard.cli.run_flags import _env, _env_file

    if not args.command:
        raise InvalidArgument("exec requires at least 2 arguments")
    env = [e for path in args.env_file for e in _env_file(path)] + _env(args.env)
    # The monitor resolves the name and checks the state: this command never opens the store.
    request = {"op": "exec", "id": args.container, "args": args.command, "env": env, "workdir": args.workdir,
               "user": args.user, "tty": args.tty, "detach": args.detach, "privileged": args.privileged}
    monitor = ctx.engine.monitor()
    try:
        if args.detach:
            monitor.request(request)
            return 0
        if args.tty:
            return _exec_tty(monitor, request, args)
        return _exec_pipes(monitor, request, args)
    except DockyardError as e:
        code = getattr(e, "exit_code", 1)
        if code in (126, 127):
            text = str(e)
            if "unable to start container process" not in text:
                text = f"exec failed: unable to start container process: {text}"
            print_error(f"OCI runtime exec failed: {text}: unknown")
            return 126
        raise


def _exec_pipes(monitor, request: dict, args) -> int:
    """Hand our own stdio to the process (no copying), except a terminal, which goes through a pipe."""
    import threading

    fds, pumps, ours = [], [], []
    stdin = sys.stdin.fileno() if args.interactive else os.open(os.devnull, os.O_RDONLY)
    if stdin != sys.stdin.fileno():
        ours.append(stdin)
    for index, fd in enumerate((stdin, sys.stdout.fileno(), sys.stderr.fileno())):
        if os.isatty(fd):
            r, w = os.pipe()
            if index == 0:
                fds.append(r)
                pumps.append((fd, w))
                ours.append(r)
            else:
                fds.append(w)
                pumps.append((r, fd))
                ours.append(w)
        else:
            fds.append(fd)
    stream = monitor.open(request, fds)
    for fd in ours:
        os.close(fd)
    threads = [threading.Thread(target=_copy, args=pair, daemon=True) for pair in pumps]
    for t in threads:
        t.start()
    try:
        code = stream.wait_exit()
    finally:
        stream.close()
    for t, (src, dst) in zip(threads, pumps):
        if dst in (sys.stdout.fileno(), sys.stderr.fileno()):
            t.join(timeout=2)
    return code


def _copy(src: int, dst: int) -> None:
    try:
        while data := os.read(src, 65536):
            os.write(dst, data)
    except OSError:
        pass
    finally:
        if dst not in (0, 1, 2):
            os.close(dst)


def _exec_tty(monitor, request: dict, args) -> int:
    """The monitor hands us the pty master; we copy between it and our terminal."""
    import selectors
    import termios
    import tty as tty_module

    from dockyard.cli.attach import parse_detach_keys, terminal_size

    request["console"] = terminal_size()
    stream = monitor.open(request)
    master = stream.fds[0]
    saved = None
    if sys.stdin.isatty():
        saved = termios.tcgetattr(0)
        tty_module.setraw(0)
    detach = parse_detach_keys(args.detach_keys)
    matched = 0
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    if args.interactive:
        sel.register(0, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in sel.select():
                if key.fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        return stream.wait_exit()
                    os.write(1, data)
                else:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        continue
                    for byte in data:
                        matched = matched + 1 if byte == detach[matched] else (1 if byte == detach[0] else 0)
                        if matched == len(detach):
                            return 0
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
        stream.close()


def attach_parser(p: ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", default="true", help="Proxy all received signals to the process")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")


def attach(args, ctx) -> int:
    from dockyard.cli.attach import parse_detach_keys, pump

    record = ctx.engine.containers.get(args.container)
    config = record.data["Config"]
    stdin = bool(config.get("OpenStdin")) and not args.no_stdin
    stream = ctx.engine.monitor().open({"op": "attach", "id": record.id, "stdin": stdin})
    try:
        code = pump(stream, bool(config.get("Tty")), stdin, args.sig_proxy.lower() != "false",
                    parse_detach_keys(args.detach_keys))
    finally:
        stream.close()
    return code or 0


# --- ps ---------------------------------------------------------------------------------------------------------

def ps_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-f", "--filter", action="append", help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all "
                                                               "states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")


def _ps_matches(engine, record, filters: dict[str, list[str]], times: dict[str, float]) -> bool:
    state = record.state
    for key, values in filters.items():
        if key == "id" and not any(record.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v.lstrip("/") in record.name for v in values):
            return False
        if key == "status" and state.get("Status") not in values:
            return False
        if key == "exited" and (state.get("Running") or state.get("Status") != "exited"
                                or str(state.get("ExitCode")) not in values):
            return False
        if key == "label":
            labels = record.data["Config"].get("Labels") or {}
            for v in values:
                k, eq, val = v.partition("=")
                if k not in labels or (eq and labels[k] != val):
                    return False
        if key == "ancestor":
            ok = False
            for v in values:
                image = engine.images.records.lookup(v)
                if image is not None and image.id == record.image_id or record.data["Config"].get("Image") == v:
                    ok = True
            if not ok:
                return False
        if key in ("before", "since"):
            other = engine.containers.records.get(values[0])
            if key == "before" and not record.created < other.created:
                return False
            if key == "since" and not record.created > other.created:
                return False
        if key == "volume" and not any(any(m.get("Name") == v or m.get("Destination") == v or
                                           m.get("Source") == v for m in record.data.get("Mounts") or [])
                                       for v in values):
            return False
        if key == "network":
            mode = record.data["HostConfig"].get("NetworkMode") or "default"
            if mode not in values:
                return False
    return True


def ps(args, ctx) -> int:
    from dockyard.cli.filters import parse_filters
    from dockyard.engine.container_views import ports_text, status_text

    filters = parse_filters(args.filter, PS_FILTERS)
    engine = ctx.engine
    records = engine.containers.all()  # newest first
    show_all = args.all or args.last > 0 or args.latest or "status" in filters or "exited" in filters
    if not show_all:
        records = [r for r in records if r.running or r.state.get("Restarting")]
    records = [r for r in records if _ps_matches(engine, r, filters, {})]
    if args.latest:
        records = records[:1]
    elif args.last > 0:
        records = records[: args.last]
    if args.quiet:
        ctx.stdout.write("".join((r.id if args.no_trunc else r.short_id) + "\n" for r in records))
        return 0
    now = time.time()
    rows = []
    for r in records:
        data = r.data
        command = " ".join([data.get("Path") or ""] + list(data.get("Args") or [])).strip()
        command = f'"{command}"' if args.no_trunc else f'"{_ellipsis(command, 20)}"'
        row = {
            "ID": r.id if args.no_trunc else r.short_id,
            "Image": data["Config"].get("Image") or r.image_id[7:19],
            "Command": command,
            "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(r.created)),
            "RunningFor": since(r.created),
            "Status": status_text(r.state, now),
            "State": r.state.get("Status"),
            "Ports": ports_text(data),
            "Names": r.name,
            "Labels": ",".join(f"{k}={v}" for k, v in (data["Config"].get("Labels") or {}).items()),
            "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in data.get("Mounts") or []),
            "Networks": data["HostConfig"].get("NetworkMode") or "default",
        }
        if args.size:
            from dockyard.engine.container_views import inspect

            view = inspect(engine, r, size=True)
            row["Size"] = f"{human_size(view['SizeRw'])} (virtual {human_size(view['SizeRootFs'])})"
        rows.append(row)
    if args.format and args.format != "table":
        print_formatted(rows, args.format, PS_HEADERS, ctx.stdout)
        return 0
    columns = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"] + (["Size"] if args.size else [])
    print_table(rows, columns, PS_HEADERS, ctx.stdout)
    return 0


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- logs -------------------------------------------------------------------------------------------------------

def logs_parser(p: ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", default="all", help='Number of lines to show from the end of the logs '
                                                       '(default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
    p.add_argument("--until", help="Show logs before a timestamp or relative (e.g. 42m for 42 minutes)")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")


def logs(args, ctx) -> int:
    from dockyard.cli.duration import parse_time
    from dockyard.engine.logs_reader import follow_logs, read_logs

    record = ctx.engine.containers.get(args.container)
    tail = None if args.tail == "all" else int(args.tail)
    since_t, until_t = parse_time(args.since), parse_time(args.until)
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def emit(entry: dict) -> None:
        text = entry["log"].encode("utf-8", "surrogateescape")
        if args.timestamps:
            text = entry["time"].encode() + b" " + text
        (out if entry["stream"] == "stdout" else err).write(text)

    position = read_logs(record.data["LogPath"], emit, tail, since_t, until_t)
    out.flush()
    err.flush()
    if args.follow:
        def still_running() -> bool:
            try:
                return ctx.engine.containers.get(record.id).running
            except NotFound:
                return False
        follow_logs(record.data["LogPath"], position, emit, still_running, until_t,
                    flush=lambda: (out.flush(), err.flush()))
    return 0

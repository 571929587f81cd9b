"""`dockyard-runtime`: a runc-compatible command line over the runtime library.

    dockyard-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] [--systemd-cgroup]
                     COMMAND [OPTIONS] ID ...
Commands: create, start, state, kill, delete, run, exec, pause, resume, ps, list, features, spec.

Errors go to stderr and, with --log, to the log file (as JSON lines with --log-format json, which is what
conmon reads back). Start-up stays lean: a hand-rolled option parser, and the runtime modules are imported
only by the command that needs them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

DEFAULT_ROOT = "/run/dockyard-runtime"
VERSION = "0.1.0"
SPEC_VERSION = "1.0.2"


class UsageError(Exception):
    pass


class Args:
    """Options of one command: flags (name -> value or True) and positional arguments."""

    def __init__(self, argv: list[str], value_flags: dict[str, str], bool_flags: dict[str, str],
                 multi: frozenset[str] = frozenset(), stop_at_positional: int | None = None) -> None:
        self.opts: dict[str, Any] = {}
        self.pos: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if stop_at_positional is not None and len(self.pos) >= stop_at_positional:
                self.pos.extend(argv[i:])
                break
            if arg == "--":
                self.pos.extend(argv[i + 1:])
                break
            if arg.startswith("-") and arg != "-":
                name, eq, value = arg.partition("=")
                if name in value_flags:
                    key = value_flags[name]
                    if not eq:
                        i += 1
                        if i >= len(argv):
                            raise UsageError(f"flag needs an argument: {name}")
                        value = argv[i]
                    if key in multi:
                        self.opts.setdefault(key, []).append(value)
                    else:
                        self.opts[key] = value
                elif name in bool_flags:
                    self.opts[bool_flags[name]] = value.lower() not in ("false", "0") if eq else True
                else:
                    raise UsageError(f"flag provided but not defined: {arg}")
            else:
                self.pos.append(arg)
            i += 1

    def get(self, key: str, default: Any = None) -> Any:
        return self.opts.get(key, default)


class Context:
    def __init__(self, root: str, log: str | None, log_format: str) -> None:
        self.root, self.log, self.log_format = root, log, log_format

    def error(self, message: str) -> None:
        sys.stderr.write(f"dockyard-runtime: {message}\n")
        if self.log:
            try:
                with open(self.log, "a") as f:
                    if self.log_format == "json":
                        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                        f.write(json.dumps({"level": "error", "msg": message, "time": stamp}) + "\n")
                    else:
                        f.write(f"level=error msg={json.dumps(message)}\n")
            except OSError:
                pass


def _one_id(a: Args, command: str) -> str:
    if len(a.pos) != 1:
        raise UsageError(f'"{command}" requires exactly 1 argument (the container id)')
    return a.pos[0]


_CREATE_FLAGS = {"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file", "--console-socket": "console",
                 "--preserve-fds": "preserve_fds"}
_CREATE_BOOLS = {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"}


def cmd_create(ctx: Context, argv: list[str]) -> int:
    a = Args(argv, _CREATE_FLAGS, _CREATE_BOOLS)
    _create(ctx, a, _one_id(a, "create"))
    return 0


def _create(ctx: Context, a: Args, cid: str) -> int:
    from dockyard.runtime import container

    return container.create(cid, a.get("bundle") or os.getcwd(), ctx.root, console_socket=a.get("console"),
                            pid_file=a.get("pid_file"), preserve_fds=int(a.get("preserve_fds") or 0),
                            no_new_keyring=bool(a.get("no_new_keyring")))


def cmd_run(ctx: Context, argv: list[str]) -> int:
    a = Args(argv, _CREATE_FLAGS, {**_CREATE_BOOLS, "--detach": "detach", "-d": "detach", "--keep": "keep"})
    cid = _one_id(a, "run")
    from dockyard.runtime import container

    pid = _create(ctx, a, cid)
    try:
        container.start(cid, ctx.root)
    except BaseException:
        container.delete(cid, ctx.root, force=True)
        raise
    if a.get("detach"):
        return 0
    status = _wait_forwarding(pid)
    if not a.get("keep"):
        container.delete(cid, ctx.root, force=True)
    return status


def _wait_forwarding(pid: int) -> int:
    """Wait for our child, relaying the signals we receive to it (like `runc run` in the foreground)."""
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGWINCH):
        signal.signal(sig, forward)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def cmd_start(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    container.start(_one_id(Args(argv, {}, {}), "start"), ctx.root)
    return 0


def cmd_state(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    print(json.dumps(container.get_state(_one_id(Args(argv, {}, {}), "state"), ctx.root), indent=2))
    return 0


def parse_signal(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None


def cmd_kill(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    a = Args(argv, {}, {"--all": "all", "-a": "all"})
    if not 1 <= len(a.pos) <= 2:
        raise UsageError('"kill" requires 1 or 2 arguments: ID [SIGNAL]')
    sig = parse_signal(a.pos[1]) if len(a.pos) == 2 else signal.SIGTERM
    container.kill(a.pos[0], ctx.root, sig, all=bool(a.get("all")))
    return 0


def cmd_pause(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    container.pause(_one_id(Args(argv, {}, {}), "pause"), ctx.root)
    return 0


def cmd_resume(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    container.resume(_one_id(Args(argv, {}, {}), "resume"), ctx.root)
    return 0


def cmd_delete(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    a = Args(argv, {}, {"--force": "force", "-f": "force"})
    container.delete(_one_id(a, "delete"), ctx.root, force=bool(a.get("force")))
    return 0


_EXEC_FLAGS = {
    "--process": "process", "-p": "process", "--pid-file": "pid_file", "--console-socket": "console",
    "--cwd": "cwd", "--env": "env", "-e": "env", "--user": "user", "-u": "user", "--cap": "cap", "-c": "cap",
    "--additional-gids": "gids", "-g": "gids", "--preserve-fds": "preserve_fds", "--process-label": "label",
    "--apparmor": "apparmor", "--cgroup": "cgroup",
}
_EXEC_BOOLS = {"--detach": "detach", "-d": "detach", "--tty": "tty", "-t": "tty", "--no-new-privs": "nnp"}


def cmd_exec(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    a = Args(argv, _EXEC_FLAGS, _EXEC_BOOLS, multi=frozenset({"env", "cap", "gids"}), stop_at_positional=1)
    if not a.pos:
        raise UsageError('"exec" requires the container id')
    cid, command = a.pos[0], a.pos[1:]
    if a.get("process"):
        with open(a.get("process"), "rb") as f:
            proc = json.loads(f.read())
    else:
        if not command:
            raise UsageError("exec: no command given (use --process or give the command)")
        proc = container.exec_defaults(cid, ctx.root, command)
        _apply_exec_overrides(proc, a)
    pid = container.exec_process(cid, ctx.root, proc, console_socket=a.get("console"),
                                 pid_file=a.get("pid_file"), preserve_fds=int(a.get("preserve_fds") or 0))
    if a.get("detach"):
        return 0
    return _wait_forwarding(pid)


def _apply_exec_overrides(proc: dict[str, Any], a: Args) -> None:
    if a.get("env"):
        proc["env"] = list(proc.get("env") or []) + a.get("env")
    if a.get("cwd"):
        proc["cwd"] = a.get("cwd")
    if a.get("tty"):
        proc["terminal"] = True
    if a.get("nnp"):
        proc["noNewPrivileges"] = True
    if a.get("user"):
        uid, _, gid = a.get("user").partition(":")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if a.get("gids"):
        proc.setdefault("user", {})["additionalGids"] = [int(g) for g in a.get("gids")]
    if a.get("cap"):
        caps = dict(proc.get("capabilities") or {})
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = list(dict.fromkeys(list(caps.get(kind) or []) + a.get("cap")))
        proc["capabilities"] = caps


def cmd_ps(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import cgroups, state

    a = Args(argv, {"--format": "format", "-f": "format"}, {})
    record = state.read_record(ctx.root, _one_id(a, "ps"))
    pids = cgroups.pids(record.cgroups)
    if a.get("format") == "json":
        print(json.dumps(pids))
    else:
        print("PID")
        for p in pids:
            print(p)
    return 0


def cmd_list(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import container

    a = Args(argv, {"--format": "format", "-f": "format"}, {"--quiet": "quiet", "-q": "quiet"})
    items = container.list_containers(ctx.root)
    if a.get("quiet"):
        for item in items:
            print(item["id"])
    elif a.get("format") == "json":
        print(json.dumps(items))
    else:
        print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<30} CREATED")
        for item in items:
            print(f"{item['id']:<20} {item['pid']:<8} {item['status']:<10} {item['bundle']:<30} {item['created']}")
    return 0


def cmd_features(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import capabilities, mounts, namespaces

    print(json.dumps({
        "ociVersionMin": "1.0.0", "ociVersionMax": SPEC_VERSION,
        "hooks": [],
        "mountOptions": sorted({*mounts._SET, *mounts._CLEAR, *mounts._PROPAGATION}),
        "linux": {
            "namespaces": sorted(k for k in namespaces.FLAGS if k != "user"),
            "capabilities": list(capabilities.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                                                      "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                                      "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"]},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
        },
    }, indent=2))
    return 0


def cmd_spec(ctx: Context, argv: list[str]) -> int:
    from dockyard.runtime import spec

    a = Args(argv, {"--bundle": "bundle", "-b": "bundle"}, {})
    bundle = a.get("bundle") or os.getcwd()
    if os.path.exists(os.path.join(bundle, "config.json")):
        raise UsageError("File config.json exists. Remove it first.")
    spec.write_bundle(bundle, spec.generate_spec(spec.SpecOptions(args=["sh"], terminal=True)))
    return 0


COMMANDS: dict[str, Callable[[Context, list[str]], int]] = {
    "create": cmd_create, "start": cmd_start, "state": cmd_state, "kill": cmd_kill, "delete": cmd_delete,
    "run": cmd_run, "exec": cmd_exec, "pause": cmd_pause, "resume": cmd_resume, "ps": cmd_ps, "list": cmd_list, "features": cmd_features, "spec": cmd_spec,
}
_GLOBAL_VALUES = {"--root": "root", "--log": "log", "--log-format": "log_format", "--criu": "criu",
                  "--rootless": "rootless"}
_GLOBAL_BOOLS = {"--debug": "debug", "--systemd-cgroup": "systemd_cgroup", "--help": "help", "-h": "help",
                 "--version": "version", "-v": "version"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = next((i for i, x in enumerate(argv) if x in COMMANDS), len(argv))
    ctx = Context(DEFAULT_ROOT, None, "text")
    try:
        g = Args(argv[:split], _GLOBAL_VALUES, _GLOBAL_BOOLS)
        ctx = Context(g.get("root") or DEFAULT_ROOT, g.get("log"), g.get("log_format") or "text")
        if g.get("version"):
            print(f"dockyard-runtime version {VERSION}\nspec: {SPEC_VERSION}")
            return 0
        if split == len(argv) or g.get("help"):
            print(__doc__)
            return 0 if g.get("help") else 1
        return COMMANDS[argv[split]](ctx, argv[split + 1:])
    except UsageError as e:
        ctx.error(str(e))
        return 1
    except Exception as e:
        from dockyard.errors import DockyardError

        if not isinstance(e, (DockyardError, OSError, ValueError)):
            raise
        ctx.error(str(e))
        return 1


def run() -> None:
    """Console-script entry: main(), then exit at once, skipping the interpreter's teardown (milliseconds that
    every runc-style invocation would pay; there is nothing to clean up, files are closed by the kernel)."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    run()

"""The OCI runtimes the monitor can run a container with: dockyard's own (in-process) and the system's runc.

Both take the same bundle. Ours runs in the monitor's own process (no exec of a helper binary, which is what
keeps `run` fast) and makes the container's init our child. runc is driven through its command line; the
processes it starts are re-parented to the monitor, a child subreaper, when runc exits, so the monitor reaps
them just the same.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

from dockyard.errors import Conflict, DockyardError, HostError, NotFound

Stdio = tuple[int, int, int]


class BuiltinRuntime:
    name = "dockyard"

    def __init__(self, state_root: str) -> None:
        self.state_root = state_root
        self.seccomp_cache = os.path.join(state_root, ".seccomp")

    def create(self, cid: str, bundle: str, spec: dict, stdio: Stdio | None = None,
               console_socket: str | None = None, meanwhile: Callable[[], None] | None = None) -> int:
        """meanwhile: done while the init sets itself up (see runtime.create)."""
        from dockyard import runtime

        return runtime.create(cid, bundle, self.state_root, stdio=stdio, console_socket=console_socket,
                              config=spec, seccomp_cache=self.seccomp_cache, die_with_parent=True,
                              meanwhile=meanwhile)

    def start(self, cid: str) -> None:
        from dockyard import runtime

        runtime.start(cid, self.state_root)

    def kill(self, cid: str, sig: int, all_processes: bool) -> None:
        from dockyard import runtime

        runtime.kill(cid, self.state_root, sig, all=all_processes)

    def delete(self, cid: str) -> None:
        from dockyard import runtime

        try:
            runtime.delete(cid, self.state_root, force=True)
        except NotFound:
            pass

    def exec(self, cid: str, bundle: str, process: dict, stdio: Stdio | None = None,
             console_socket: str | None = None) -> int:
        from dockyard import runtime

        return runtime.exec_process(cid, self.state_root, process, stdio=stdio, console_socket=console_socket,
                                    seccomp_cache=self.seccomp_cache)

    def pause(self, cid: str, frozen: bool) -> None:
        from dockyard.engine.monitor.freezer import set_frozen

        set_frozen(cid, frozen, self.state_root)


class RuncRuntime:
    name = "runc"

    def __init__(self, state_root: str) -> None:
        self.root = os.path.join(state_root, "runc")

    def _run(self, args: list[str], stdio: Stdio | None = None, check: bool = True,
             log: str | None = None) -> subprocess.CompletedProcess:
        command = ["runc", "--root", self.root] + (["--log", log, "--log-format", "json"] if log else []) + args
        if stdio is not None:
            # The container's process inherits runc's stdio; runc's own errors go to its --log file.
            result = subprocess.run(command, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])
        else:
            result = subprocess.run(command, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise _runc_error(args[0], result, log)
        return result

    def create(self, cid: str, bundle: str, spec: dict, stdio: Stdio | None = None,
               console_socket: str | None = None, meanwhile: Callable[[], None] | None = None) -> int:
        if meanwhile is not None:
            meanwhile()  # before: runc's init runs in another process we do not wait on part-way
        pid_file = os.path.join(bundle, "runc.pid")
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        self._run(args + [cid], stdio if not console_socket else None, log=os.path.join(bundle, "runc.log"))
        with open(pid_file) as f:
            return int(f.read().strip())

    def start(self, cid: str) -> None:
        self._run(["start", cid])

    def kill(self, cid: str, sig: int, all_processes: bool) -> None:
        self._run(["kill"] + (["--all"] if all_processes else []) + [cid, str(sig)])

    def delete(self, cid: str) -> None:
        self._run(["delete", "--force", cid], check=False)

    def exec(self, cid: str, bundle: str, process: dict, stdio: Stdio | None = None,
             console_socket: str | None = None) -> int:
        name = f"exec-{os.urandom(4).hex()}"
        process_file = os.path.join(bundle, name + ".json")
        pid_file = os.path.join(bundle, name + ".pid")
        with open(process_file, "w") as f:
            json.dump(process, f)
        try:
            args = ["exec", "--detach", "--process", process_file, "--pid-file", pid_file]
            if console_socket:
                args += ["--console-socket", console_socket]
            self._run(args + [cid], stdio if not console_socket else None, log=os.path.join(bundle, "runc.log"))
            with open(pid_file) as f:
                return int(f.read().strip())
        finally:
            for path in (process_file, pid_file):
                if os.path.exists(path):
                    os.unlink(path)

    def pause(self, cid: str, frozen: bool) -> None:
        self._run(["pause" if frozen else "resume", cid])


def _runc_error(command: str, result: subprocess.CompletedProcess, log: str | None) -> DockyardError:
    text = (result.stderr or "").strip() if isinstance(result.stderr, str) else ""
    if log and os.path.exists(log):
        with open(log) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    text = entry.get("msg", text)
    if not text:
        text = f"runc {command} failed with exit code {result.returncode}"
    if "executable file not found" in text or "no such file or directory" in text:
        error = NotFound(text)
        error.exit_code = 127  # type: ignore[attr-defined]
        return error
    if "permission denied" in text:
        error = Conflict(text)
        error.exit_code = 126  # type: ignore[attr-defined]
        return error
    return HostError(text)


def runtime_for(name: str | None, state_root: str):
    if name in (None, "", "dockyard"):
        return BuiltinRuntime(state_root)
    if name == "runc":
        import shutil

        if shutil.which("runc") is None:
            raise NotFound("runtime runc is not installed: apt-get install runc")
        return RuncRuntime(state_root)
    raise NotFound(f"unknown or invalid runtime name: {name}")

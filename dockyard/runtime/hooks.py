"""OCI hooks (config.md "POSIX-platform Hooks"): programs run at points of the lifecycle with the state on stdin.

Where each kind runs in dockyard's runtime:
  prestart, createRuntime  the runtime (parent) during create, once the init has its namespaces and mounts,
                           before pivot_root; the init waits for them (state "creating")
  createContainer          the init, in the container's namespaces, before pivot_root (path from the host)
  startContainer           the init during start, just before exec (path inside the container)
  poststart                `start`, after the init was released
  poststop                 `delete`, after the container is gone (failures are ignored, as the spec says)

The runner uses fork/execve/waitpid only (no subprocess import), so the init can use it after pivot_root.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from dockyard.errors import HostError

PARENT_CREATE = ("prestart", "createRuntime")


def wanted(config: dict[str, Any], *kinds: str) -> bool:
    hooks = config.get("hooks") or {}
    return any(hooks.get(k) for k in kinds)


def run_all(config: dict[str, Any], kind: str, state: dict[str, Any], ignore_errors: bool = False) -> None:
    for hook in (config.get("hooks") or {}).get(kind) or ():
        try:
            run(hook, state)
        except HostError:
            if not ignore_errors:
                raise


def run(hook: dict[str, Any], state: dict[str, Any]) -> None:
    path = hook.get("path")
    if not path or not path.startswith("/"):
        raise HostError(f"hook path {path!r} must be absolute")
    args = list(hook.get("args") or [path])
    env = list(hook.get("env") or [])
    timeout = hook.get("timeout")
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(r, 0)
            from dockyard.runtime import syscalls

            syscalls.execve(path, args, env)
        finally:
            os._exit(127)
    os.close(r)
    try:
        os.write(w, json.dumps(state).encode())
    except BrokenPipeError:
        pass
    finally:
        os.close(w)
    status = _wait(pid, timeout)
    if status != 0:
        raise HostError(f"hook {path} failed with status {status}")


def _wait(pid: int, timeout: float | None) -> int:
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            return os.waitstatus_to_exitcode(status)
        if deadline and time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise HostError(f"hook timed out after {timeout}s")
        time.sleep(0.002)

"""dockyard's OCI runtime: runs an OCI bundle (config.json + rootfs) in-process, no helper binaries.

Operations (see container.py):
    create(id, bundle, state_root, *, stdio=None, console_socket=None, pid_file=None, preserve_fds=0) -> pid
    start(id, state_root)
    get_state(id, state_root) -> {"ociVersion", "id", "status", "pid", "bundle", "annotations"?}
    kill(id, state_root, sig=SIGTERM, all=False)
    pause(id, state_root) / resume(id, state_root)
    delete(id, state_root, force=False)
    exec_process(id, state_root, process, *, stdio=None, console_socket=None, pid_file=None) -> pid

Exit status: the caller of create/exec_process is the parent of the process they fork (the fork happens in
the calling thread, straight into the container's pid namespace) and reaps it with os.waitpid(). When the
caller exits first (the `dockyard-runtime create` command does), the process is reparented to the nearest
subreaper or init, which reaps it. state() reports "stopped" once the init has exited.

Spec generation with Docker's defaults lives in spec.py; the runc-compatible command in cli.py.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "create": "container", "start": "container", "get_state": "container", "kill": "container",
    "delete": "container", "exec_process": "container", "exec_defaults": "container",
    "list_containers": "container", "load_config": "container", "pause": "container", "resume": "container",
    "generate_spec": "spec", "SpecOptions": "spec",
}
__all__ = ["SpecOptions", "create", "delete", "exec_defaults", "exec_process", "generate_spec", "get_state",
           "kill", "list_containers", "load_config", "pause", "resume", "start"]


def __getattr__(name: str) -> Any:
    # Lazy: `import dockyard.runtime` must stay cheap for the engine's fast paths.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"dockyard.runtime.{module}"), name)

"""The monitor: one process per state root that is the parent of every container process.

Why one shared process rather than one per container: a container's parent must outlive the command that
started it (to reap PID 1, record its exit status, write its logs, keep attach possible and apply restart
policies), and a Python process costs far more memory than a container; one process for all containers of a
root costs a few hundred KiB per container instead. It is started on demand by the first command that needs
it and exits when it has had nothing to watch for a while (DOCKYARD_MONITOR_IDLE seconds, default 60).

Its containers die with it (their init has PR_SET_PDEATHSIG=SIGKILL), so a killed monitor never leaves
orphans: the next command sees their records say running while no monitor holds the root's lock, and marks
them exited (137).

    server.py    the event loop: requests from the CLI, container output, exits, timers
    supervise.py starting a container (rootfs mount, spec, runtime) and cleaning up after it
    client.py    what commands use: connect (starting the monitor if needed), request, stream
    protocol.py  the wire format
    logs.py      json-file logs
"""

"""What commands use to talk to the monitor; starts it when nobody serves the root yet."""

from __future__ import annotations

import os
import sys
import time

from dockyard.engine.monitor import protocol
from dockyard.engine.monitor.endpoint import monitor_alive, socket_path
from dockyard.errors import (
    Conflict,
    DockyardError,
    Forbidden,
    HostError,
    InvalidArgument,
    NotFound,
    NotModified,
)

START_TIMEOUT = 10.0
RESPAWN_AFTER = 0.5  # s between attempts to start a monitor while none answers
ERRORS = {404: NotFound, 409: Conflict, 400: InvalidArgument, 304: NotModified, 403: Forbidden}


def raise_for(reply: dict) -> dict:
    if "error" in reply:
        error = ERRORS.get(reply.get("status", 500), DockyardError)(reply["error"])
        error.exit_code = reply.get("code", 1)  # type: ignore[attr-defined]
        error.phase = reply.get("phase", "")  # type: ignore[attr-defined]
        raise error
    return reply


class Stream:
    """A connection after its first reply: frames from the monitor, frames to it."""

    def __init__(self, sock, buffer: bytearray, reply: dict, fds: list[int]) -> None:
        self.sock, self.buffer, self.reply, self.fds = sock, buffer, reply, fds

    def frames(self):
        """Yield (stream, payload) until the monitor closes the connection."""
        while True:
            for item in protocol.parse_frames(self.buffer):
                yield item
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return
            self.buffer += data

    def send(self, stream: int, payload: bytes) -> None:
        self.sock.sendall(protocol.frame(stream, payload))

    def wait_exit(self) -> int:
        """Read until the exit event; its code."""
        for stream, payload in self.frames():
            if stream == protocol.EVENT:
                value = protocol.decode(payload)
                if "exit" in value:
                    return int(value["exit"])
        raise HostError("the monitor closed the connection before the process exited")

    def close(self) -> None:
        self.sock.close()


class MonitorClient:
    def __init__(self, root: str, run_root: str) -> None:
        self.root = root
        self.run_root = run_root
        self.path = socket_path(run_root)

    def _connect(self):
        deadline = time.monotonic() + START_TIMEOUT
        last_spawn = None
        while True:
            try:
                return protocol.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            now = time.monotonic()
            if now > deadline:
                raise HostError(f"the monitor did not start (see {self.run_root}/monitor.log)")
            # Not again at once: a monitor just started takes a moment to take its lock. Again later, though:
            # _spawn does nothing while a monitor holds the lock, and that one may be on its way out.
            if last_spawn is None or now - last_spawn > RESPAWN_AFTER:
                self._spawn()
                last_spawn = now
            time.sleep(0.005)

    def _spawn(self) -> None:
        import subprocess

        os.makedirs(self.run_root, exist_ok=True)
        if monitor_alive(self.run_root):
            return  # starting up, or about to exit: the connect loop retries
        log = open(os.path.join(self.run_root, "monitor.log"), "ab")
        # The monitor runs the very code this command runs (another checkout or version may be installed):
        # it gets this command's module path, and no `site` (-S), which would only add start-up time and
        # resident memory to a process that lives for as long as containers run.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in sys.path if p and os.path.isdir(p))
        from dockyard import linux

        keep: tuple[int, ...] = ()
        if linux.original_mount_namespace is not None:  # a build's private mounts are not the monitor's
            keep = (linux.original_mount_namespace,)
            env["DOCKYARD_MOUNT_NAMESPACE_FD"] = str(linux.original_mount_namespace)
        subprocess.Popen([sys.executable, "-S", "-m", "dockyard.engine.monitor", "--root", self.root],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
                         pass_fds=keep, cwd="/", env=env)
        log.close()

    def open(self, message: dict, fds: list[int] | None = None) -> Stream:
        """Send a request and read its first reply; the connection stays open for frames."""
        for attempt in range(3):
            sock = self._connect()
            try:
                protocol.send_message(sock, message, fds)
                buffer = bytearray()
                reply, received = protocol.recv_message(sock, buffer)
            except (BrokenPipeError, ConnectionResetError):
                sock.close()
                time.sleep(0.05)
                continue  # the monitor was exiting as we connected: the next try starts a new one
            if reply is None:
                sock.close()
                time.sleep(0.05)
                continue
            try:
                raise_for(reply)
            except BaseException:
                sock.close()
                raise
            return Stream(sock, buffer, reply, received)
        raise HostError("could not reach the monitor")

    def request(self, message: dict, fds: list[int] | None = None) -> dict:
        """A request answered by one reply; when the reply says it is waiting, wait for the event too."""
        stream = self.open(message, fds)
        try:
            if stream.reply.get("waiting"):
                code = stream.wait_exit()
                return {**stream.reply, "exit": code}
            return stream.reply
        finally:
            stream.close()

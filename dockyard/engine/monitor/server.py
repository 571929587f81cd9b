"""The monitor's event loop (see the package docstring for why there is one monitor per root).

Single-threaded, on `selectors`: the listening socket, client connections, container output (pipes or a pty
master), and one pidfd per process it started (readable when that process exits), plus a timer heap for
stop timeouts and restart back-off. Containers and exec'd processes are children of this process, so their
exit statuses come to it alone.
"""

from __future__ import annotations

import errno
import fcntl
import heapq
import json
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any, Callable

from dockyard.engine.monitor import protocol
from dockyard.engine.monitor.protocol import CLOSE_STDIN, EVENT, RESIZE, STDERR, STDIN, STDOUT
from dockyard.engine.monitor.supervise import set_window_size
from dockyard.errors import Conflict, DockyardError, NotFound
from dockyard.timeutil import rfc3339

READ_SIZE = 65536
MAX_CLIENT_BUFFER = 16 << 20
OUTPUT_GRACE = 2.0  # seconds to collect output left in pipes after PID 1 exits
RESTART_DELAY_MIN, RESTART_DELAY_MAX, RESTART_RESET_AFTER = 0.1, 60.0, 10.0
TRACE = bool(os.environ.get("DOCKYARD_MONITOR_TRACE"))  # log how long each request takes


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def signal_number(value: Any) -> int:
    if isinstance(value, int):
        return value
    text = str(value).upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(getattr(signal, text))
    except AttributeError:
        raise DockyardError(f"Invalid signal: {value}") from None


class Client:
    """One connection from a command: a request, then perhaps a stream of frames."""

    def __init__(self, monitor: "Monitor", sock: socket.socket) -> None:
        self.monitor = monitor
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.fds: list[int] = []
        self.handled = False
        self.on_frame: Callable[[int, bytes], None] | None = None
        self.on_close: Callable[[], None] | None = None  # what a request leaves for when the connection ends
        self.closing = False
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self.outbuf) > MAX_CLIENT_BUFFER:
            self.close()  # a reader that cannot keep up is dropped rather than allowed to grow without end
            return
        self.outbuf += data
        self.monitor.want_write(self)

    def reply(self, message: dict, fds: list[int] | None = None, then_close: bool = True) -> None:
        if fds:
            # Descriptors travel with the first byte of the reply; send it at once, blocking briefly.
            self.sock.setblocking(True)
            try:
                protocol.send_message(self.sock, message, fds)
            finally:
                self.sock.setblocking(False)
        else:
            self.send(protocol.message(message))
        if then_close:
            self.finish()

    def finish(self) -> None:
        """Close once everything queued has been written."""
        self.closing = True
        if not self.outbuf:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.monitor.unregister(self.sock)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.sock.close()
        self.monitor.clients.discard(self)  # (here, not in on_close, which requests replace)
        if self.on_close is not None:
            self.on_close()


class Running:
    """A container whose init is our child."""

    def __init__(self, record, launched, runtime) -> None:
        self.id = record.id
        self.runtime = runtime
        self.launched = launched
        self.pid = launched.pid
        self.pidfd = os.pidfd_open(self.pid)
        self.open_outputs = sum(1 for fd in (launched.stdout, launched.stderr, launched.pty) if fd is not None)
        self.clients: list[Client] = []
        self.status: int | None = None
        self.finalized = False
        self.manual_stop = False
        self.auto_remove = bool(record.data["HostConfig"].get("AutoRemove"))
        self.started = time.monotonic()
        self.kill_timer: list | None = None
        self.stdin_owner: Client | None = None


class Monitor:
    def __init__(self, engine, idle_timeout: float) -> None:
        self.engine = engine
        self.idle_timeout = idle_timeout
        self.sel = selectors.DefaultSelector()
        self.running: dict[str, Running] = {}
        self.execs: dict[int, tuple[int, Client | None]] = {}  # pid -> (pidfd, client waiting for its exit)
        self.waiters: dict[str, list[tuple[Client, str]]] = {}
        self.restart_delays: dict[str, float] = {}
        self.pending_restarts: set[str] = set()
        self.timers: list[list] = []  # [deadline, seq, callback, cancelled]
        self.timer_seq = 0
        self.clients: set[Client] = set()
        self.last_activity = time.monotonic()
        run_root = str(engine.run_root)
        os.makedirs(run_root, exist_ok=True)
        from dockyard.engine.monitor.endpoint import socket_path

        self.socket_path = socket_path(run_root)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, self._accept)
        self.stop_requested = False

    # --- registration helpers --------------------------------------------------------------------------------

    def unregister(self, fileobj) -> None:
        try:
            self.sel.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def want_write(self, client: Client) -> None:
        try:
            self.sel.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self._client_event)
        except (KeyError, ValueError):
            pass

    def add_timer(self, delay: float, callback: Callable[[], None]) -> list:
        self.timer_seq += 1
        timer = [time.monotonic() + delay, self.timer_seq, callback, False]
        heapq.heappush(self.timers, timer)
        return timer

    # --- the loop ---------------------------------------------------------------------------------------------

    def serve(self) -> None:
        # Networking first: it sweeps what a dead monitor left, and brings its DNS sockets to this loop.
        self.engine.networks.serve_in_monitor(self.sel, self.add_timer)
        self._reconcile()
        while not self.stop_requested:
            timeout = 1.0
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
            for key, mask in self.sel.select(timeout):
                try:
                    key.data(key.fileobj, mask)
                except Exception as e:  # noqa: BLE001 - one bad event must not take every container down
                    _log(f"error handling an event: {e!r}")
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                timer = heapq.heappop(self.timers)
                if not timer[3]:
                    try:
                        timer[2]()
                    except Exception as e:  # noqa: BLE001
                        _log(f"error in a timer: {e!r}")
            if self._idle() and now - self.last_activity > self.idle_timeout:
                break
        self._stop_all()
        self.listener.close()
        try:
            self.engine.networks.stop_in_monitor()  # bridges, NAT rules, DNS sockets go with the monitor
        except Exception as e:  # noqa: BLE001
            _log(f"taking networks down: {e!r}")
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def _stop_all(self) -> None:
        """On the way out: the containers would die with us anyway (PDEATHSIG), so finish them properly now
        and clean up after them (mounts, cgroups, network), rather than leave that to the next monitor."""
        for running in list(self.running.values()):
            running.manual_stop = True
            self._signal(running, signal.SIGKILL)
            if running.status is None:
                try:
                    _, running.status = os.waitpid(running.pid, 0)
                except ChildProcessError:
                    running.status = signal.SIGKILL
                try:
                    self.unregister(running.pidfd)
                    os.close(running.pidfd)
                except OSError:
                    pass
            self._finalize(running)

    def _idle(self) -> bool:
        busy = self.running or self.execs or self.clients or self.pending_restarts
        if busy:
            self.last_activity = time.monotonic()
        return not busy

    def _reconcile(self) -> None:
        """Records that still say running belong to a monitor that died: finish those containers off.

        Their init normally died with that monitor (PR_SET_PDEATHSIG); whatever is left in their cgroups is
        killed here, so no container runs unsupervised, and each is recorded as exited.
        """
        from dockyard.engine.monitor.supervise import cleanup

        for record in self.engine.containers.records.all():
            if not record.state.get("Running") and not record.state.get("Restarting"):
                continue
            cleanup(self.engine, record)

            def killed(data: dict) -> None:
                data["State"].update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                                     ExitCode=137, FinishedAt=rfc3339(),
                                     Error="the container's monitor stopped; the container was killed")
            self.engine.containers.records.update(record.id, killed)

    # --- clients ----------------------------------------------------------------------------------------------

    def _accept(self, listener, mask) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        client = Client(self, sock)
        self.clients.add(client)
        self.sel.register(sock, selectors.EVENT_READ, self._client_event)

    def _client_event(self, sock, mask) -> None:
        client = next((c for c in self.clients if c.sock is sock), None)
        if client is None:
            self.unregister(sock)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if mask & selectors.EVENT_READ and not client.closed:
            self._read(client)

    def _flush(self, client: Client) -> None:
        try:
            while client.outbuf:
                sent = client.sock.send(client.outbuf)
                del client.outbuf[:sent]
        except BlockingIOError:
            return
        except OSError:
            client.close()
            return
        if client.closing:
            client.close()
        elif not client.closed:
            self.sel.modify(client.sock, selectors.EVENT_READ, self._client_event)

    def _read(self, client: Client) -> None:
        try:
            data, ancdata, _, _ = client.sock.recvmsg(READ_SIZE, socket.CMSG_SPACE(protocol.MAX_FDS * 4))
        except BlockingIOError:
            return
        except OSError:
            client.close()
            return
        client.fds.extend(protocol.received_fds(ancdata))
        if not data:
            client.close()
            return
        client.inbuf += data
        if not client.handled:
            if len(client.inbuf) < protocol.HEADER.size:
                return
            kind, size = protocol.HEADER.unpack_from(client.inbuf)
            if kind != protocol.MESSAGE or size > protocol.MAX_MESSAGE:
                client.close()  # not one of ours
                return
            if len(client.inbuf) < protocol.HEADER.size + size:
                return
            payload = bytes(client.inbuf[protocol.HEADER.size:protocol.HEADER.size + size])
            del client.inbuf[:protocol.HEADER.size + size]
            client.handled = True
            try:
                request = protocol.decode(payload)
                self._dispatch(client, request)
            except DockyardError as e:
                client.reply({"error": e.message, "status": e.http_status, "code": getattr(e, "exit_code", 1),
                              "phase": getattr(e, "phase", "")})
            except Exception as e:  # noqa: BLE001 - answer rather than leave the command hanging
                _log(f"request failed: {e!r}")
                client.reply({"error": f"{type(e).__name__}: {e}", "status": 500, "code": 125})
        if client.inbuf and client.on_frame is not None:
            for stream, payload in protocol.parse_frames(client.inbuf):
                client.on_frame(stream, payload)

    # --- requests ---------------------------------------------------------------------------------------------

    def _dispatch(self, client: Client, request: dict) -> None:
        op = request.get("op")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise DockyardError(f"unknown monitor request {op!r}")
        if TRACE:
            started = time.perf_counter()
            handler(client, request)
            _log(f"{op} handled in {1000 * (time.perf_counter() - started):.1f} ms")
        else:
            handler(client, request)

    def _op_ping(self, client: Client, request: dict) -> None:
        client.reply({"ok": True, "pid": os.getpid()})

    def _op_shutdown(self, client: Client, request: dict) -> None:
        client.reply({"ok": True})
        self.stop_requested = True

    def _op_network(self, client: Client, request: dict) -> None:
        """network rm/prune/connect/disconnect while the monitor holds the live network state."""
        client.reply(self.engine.networks.monitor_request(request))

    def _op_build_network(self, client: Client, request: dict) -> None:
        """A namespace on the default bridge for a build's RUN steps, held while the build keeps this
        connection open: the build ends or dies, the connection closes, the namespace goes. Its fd travels
        with the reply, as the build runs in a mount namespace of its own where our pin is not visible."""
        build_id = os.urandom(32).hex()
        path, resolv_conf = self.engine.networks.attach_build(build_id)

        def release() -> None:
            try:
                self.engine.networks.detach_build(build_id)
            except Exception as e:  # noqa: BLE001 - keep serving; the next monitor's sweep removes the pin
                _log(f"releasing a build's network: {e!r}")

        client.on_close = release
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            client.reply({"ok": True, "resolv_conf": resolv_conf}, fds=[fd], then_close=False)
        finally:
            os.close(fd)

    def _op_create(self, client: Client, request: dict) -> None:
        record = self.engine.containers.create(request["body"], name=request.get("name"))
        client.reply({"ok": True, "id": record.id})

    def _op_run(self, client: Client, request: dict) -> None:
        """create + start (+ attach) in one round trip: what `run` needs, without a store in the command."""
        record = self.engine.containers.create(request["body"], name=request.get("name"))
        try:
            running = self._start(record, request.get("console"), client if request.get("attach") else None,
                                  bool(request.get("stdin")))
        except DockyardError as e:
            if record.data["HostConfig"].get("AutoRemove"):
                self.engine.containers.destroy(self.engine.containers.records.get(record.id), volumes=True)
            e.phase = "start"  # type: ignore[attr-defined]  # the command words start failures differently
            raise
        reply = protocol.message({"ok": True, "id": record.id, "pid": running.pid if running else 0})
        client.send(reply)
        if not request.get("attach"):
            client.finish()

    def _op_start(self, client: Client, request: dict) -> None:
        record = self.engine.containers.get(request["id"])
        if record.id in self.running:
            if request.get("attach"):
                self._attach(client, self.running[record.id], bool(request.get("stdin")))
                client.send(protocol.message({"ok": True, "already": True}))
                return
            client.reply({"ok": True, "already": True})
            return
        if request.get("attach"):
            # Attached before it starts, so not a byte of output is missed.
            running = self._start(record, request.get("console"), client, bool(request.get("stdin")))
        else:
            running = self._start(record, request.get("console"))
        if running is None:
            return
        if request.get("attach"):
            client.send(protocol.message({"ok": True, "pid": running.pid}))
        else:
            client.reply({"ok": True, "pid": running.pid})

    def _start(self, record, console, client: Client | None = None, stdin: bool = False) -> Running | None:
        from dockyard.engine.monitor.supervise import launch

        self.pending_restarts.discard(record.id)
        size = tuple(console) if console else None
        try:
            launched = launch(self.engine, record, size)  # type: ignore[arg-type]
        except DockyardError as e:
            code = getattr(e, "exit_code", 1)
            self._record_failure(record.id, e.message, code if code in (126, 127) else 128)
            raise
        running = Running(record, launched, self._runtime(record))
        self.running[record.id] = running
        self.sel.register(running.pidfd, selectors.EVENT_READ, lambda fd, mask: self._exited(running))
        for fd, stream in ((launched.stdout, "stdout"), (launched.stderr, "stderr"), (launched.pty, "stdout")):
            if fd is not None:
                self.sel.register(fd, selectors.EVENT_READ,
                                  lambda f, mask, s=stream: self._output(running, f, s))
        if client is not None:
            self._attach(client, running, stdin)

        def started(data: dict) -> None:
            data["State"].update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                                 Dead=False, Pid=running.pid, ExitCode=0, Error="", StartedAt=rfc3339())
        self.engine.containers.records.update(record.id, started)
        return running

    def _record_failure(self, container_id: str, message: str, code: int) -> None:
        def failed(data: dict) -> None:
            data["State"].update(Running=False, Pid=0, ExitCode=code, Error=message)
        try:
            self.engine.containers.records.update(container_id, failed)
        except NotFound:
            pass

    def _attach(self, client: Client, running: Running, stdin: bool) -> None:
        running.clients.append(client)
        launched = running.launched

        def on_frame(stream: int, payload: bytes) -> None:
            target = launched.pty if launched.pty is not None else launched.stdin
            if stream == STDIN and target is not None:
                _write_all_nonblocking(target, payload)
            elif stream == CLOSE_STDIN and launched.stdin is not None and running.stdin_owner is client:
                os.close(launched.stdin)
                launched.stdin = None
            elif stream == RESIZE and launched.pty is not None:
                height, width = (int(x) for x in payload.split())
                set_window_size(launched.pty, height, width)
            elif stream == EVENT:
                request = protocol.decode(payload)
                if request.get("op") == "kill":
                    self._signal(running, signal_number(request.get("signal", "SIGTERM")))

        client.on_frame = on_frame
        if stdin:
            running.stdin_owner = client

        def on_close() -> None:
            if client in running.clients:
                running.clients.remove(client)
            stdin_once = self._config(running.id).get("StdinOnce")
            if running.stdin_owner is client and stdin_once and launched.stdin is not None:
                os.close(launched.stdin)
                launched.stdin = None
        client.on_close = on_close

    def _runtime(self, record):
        from dockyard.engine.monitor.supervise import runtime_of

        return runtime_of(self.engine, record)

    def _config(self, container_id: str) -> dict:
        try:
            return self.engine.containers.records.get(container_id).data["Config"]
        except NotFound:
            return {}

    def _op_attach(self, client: Client, request: dict) -> None:
        record = self.engine.containers.get(request["id"])
        running = self.running.get(record.id)
        if running is None:
            raise Conflict("You cannot attach to a stopped container, start it first")
        self._attach(client, running, bool(request.get("stdin")))
        client.send(protocol.message({"ok": True, "tty": bool(record.data["Config"].get("Tty"))}))

    def _op_resize(self, client: Client, request: dict) -> None:
        record = self.engine.containers.get(request["id"])
        running = self.running.get(record.id)
        if running is not None and running.launched.pty is not None:
            set_window_size(running.launched.pty, int(request["height"]), int(request["width"]))
        client.reply({"ok": True})

    def _op_wait(self, client: Client, request: dict) -> None:
        record = self.engine.containers.get(request["id"])
        condition = request.get("condition") or "not-running"
        running = self.running.get(record.id)
        if condition == "not-running" and running is None and record.id not in self.pending_restarts:
            client.reply({"ok": True, "exit": record.state.get("ExitCode", 0)})
            return
        self.waiters.setdefault(record.id, []).append((client, condition))
        client.send(protocol.message({"ok": True, "waiting": True}))
        client.handled = True

    def _op_kill(self, client: Client, request: dict) -> None:
        record = self.engine.containers.get(request["id"])
        running = self.running.get(record.id)
        if running is None:
            self.pending_restarts.discard(record.id)
            raise Conflict(f"Container {record.id} is not running")
        if request.get("remove"):
            running.manual_stop = True
        self._signal(running, signal_number(request.get("signal") or "SIGKILL"))
        if request.get("wait"):
            running.manual_stop = True
            self.waiters.setdefault(record.id, []).append((client, "not-running"))
            client.send(protocol.message({"ok": True, "waiting": True}))
        else:
            client.reply({"ok": True})

    def _op_stop(self, client: Client, request: dict) -> None:
        record = self.engine.containers.get(request["id"])
        running = self.running.get(record.id)
        if running is None:
            self.pending_restarts.discard(record.id)
            client.reply({"ok": True, "not_running": True})
            return
        running.manual_stop = True
        stop_signal = signal_number(request.get("signal") or record.data["Config"].get("StopSignal") or "SIGTERM")
        timeout = request.get("timeout")
        if timeout is None:
            timeout = record.data["Config"].get("StopTimeout")
        timeout = 10 if timeout is None else timeout
        self.waiters.setdefault(record.id, []).append((client, "not-running"))
        client.send(protocol.message({"ok": True, "waiting": True}))
        if timeout >= 0:
            self._signal(running, stop_signal)
            running.kill_timer = self.add_timer(float(timeout), lambda: self._signal(running, signal.SIGKILL))
        # timeout -1: wait forever for the process to stop by itself after the signal
        else:
            self._signal(running, stop_signal)

    def _signal(self, running: Running, sig: int) -> None:
        if running.status is not None:
            return
        try:
            running.runtime.kill(running.id, sig, sig == signal.SIGKILL)
        except DockyardError:
            try:
                os.kill(running.pid, sig)
            except ProcessLookupError:
                pass

    def _op_exec(self, client: Client, request: dict) -> None:
        record = self.engine.containers.get(request["id"])
        running = self.running.get(record.id)
        if running is None:
            raise Conflict(f"Container {record.id} is not running")
        if record.state.get("Paused"):
            raise Conflict(f"Container {record.id} is paused, unpause the container before exec")
        bundle = self.engine.containers.bundle_dir(record.id)
        process = _exec_process(bundle, request["args"])
        if request.get("env"):
            from dockyard.engine.containers import merge_env

            process["env"] = merge_env(process.get("env") or [], request["env"])
        if request.get("workdir"):
            process["cwd"] = request["workdir"]
        if request.get("user"):
            from dockyard.runtime import users

            rootfs = os.path.join(self.engine.containers.bundle_dir(record.id), "rootfs")
            user = users.resolve(rootfs, request["user"])
            process["user"] = {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids}
        if request.get("privileged"):
            from dockyard.runtime import capabilities

            caps = list(capabilities.NAMES[: capabilities.last_cap() + 1])
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        fds, client.fds = client.fds, []
        master = None
        try:
            if request.get("tty"):
                process["terminal"] = True
                if request.get("console"):
                    process["consoleSize"] = {"height": request["console"][0], "width": request["console"][1]}
                pid, master = self._exec_with_console(running, bundle, process)
                if request.get("console"):
                    set_window_size(master, *request["console"])
            else:
                if len(fds) != 3:
                    null = os.open(os.devnull, os.O_RDWR)
                    fds = [null, null, null]
                pid = running.runtime.exec(record.id, bundle, process, stdio=(fds[0], fds[1], fds[2]))
        finally:
            for fd in set(fds):
                os.close(fd)
        pidfd = os.pidfd_open(pid)
        waiter = None if request.get("detach") else client
        self.execs[pid] = (pidfd, waiter)
        self.sel.register(pidfd, selectors.EVENT_READ, lambda fd, mask: self._exec_exited(pid))
        if master is not None:
            client.reply({"ok": True, "pid": pid}, fds=[master], then_close=waiter is None)
            os.close(master)
        else:
            client.send(protocol.message({"ok": True, "pid": pid}))
            if waiter is None:
                client.finish()

    def _exec_with_console(self, running: Running, bundle: str, process: dict) -> tuple[int, int]:
        from dockyard.engine.monitor.console import with_terminal

        return with_terminal(lambda path: running.runtime.exec(running.id, bundle, process, console_socket=path))

    def _exec_exited(self, pid: int) -> None:
        pidfd, client = self.execs.pop(pid)
        self.unregister(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 255 << 8
        if client is not None:
            client.send(protocol.event({"exit": exit_code(status)}))
            client.finish()

    def _op_pause(self, client: Client, request: dict) -> None:
        self._freeze(request["id"], True)
        client.reply({"ok": True})

    def _op_unpause(self, client: Client, request: dict) -> None:
        self._freeze(request["id"], False)
        client.reply({"ok": True})

    def _freeze(self, name: str, frozen: bool) -> None:
        record = self.engine.containers.get(name)
        running = self.running.get(record.id)
        if running is None:
            raise Conflict(f"Container {record.id} is not running")
        if bool(record.state.get("Paused")) == frozen:
            raise Conflict(f"Container {record.id} is {'already' if frozen else 'not'} paused")
        running.runtime.pause(record.id, frozen)

        def paused(data: dict) -> None:
            data["State"].update(Paused=frozen, Status="paused" if frozen else "running")
        self.engine.containers.records.update(record.id, paused)

    # --- container events -------------------------------------------------------------------------------------

    def _output(self, running: Running, fd: int, stream: str) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's other side is gone
                _log(f"reading container output: {e!r}")
            data = b""
        if not data:
            self.unregister(fd)
            os.close(fd)
            launched = running.launched
            for attr in ("stdout", "stderr", "pty"):
                if getattr(launched, attr) == fd:
                    setattr(launched, attr, None)
            if fd == launched.stdin:
                launched.stdin = None
            running.open_outputs -= 1
            if running.open_outputs <= 0 and running.status is not None:
                self._finalize(running)
            return
        running.launched.log.write(stream, data)
        frame = protocol.frame(STDOUT if stream == "stdout" else STDERR, data)
        for client in list(running.clients):
            client.send(frame)

    def _exited(self, running: Running) -> None:
        try:
            pid, status = os.waitpid(running.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = running.pid, 255 << 8
        if pid == 0:
            return
        self.unregister(running.pidfd)
        os.close(running.pidfd)
        running.status = status
        if running.kill_timer is not None:
            running.kill_timer[3] = True
        if running.open_outputs <= 0:
            self._finalize(running)
        else:
            self.add_timer(OUTPUT_GRACE, lambda: self._finalize(running))

    def _finalize(self, running: Running) -> None:
        from dockyard.engine.monitor.supervise import cleanup

        if running.finalized:
            return
        running.finalized = True
        launched = running.launched
        for fd in (launched.stdout, launched.stderr, launched.pty, launched.stdin):
            if fd is not None:
                self.unregister(fd)
                try:
                    os.close(fd)
                except OSError:
                    pass
        launched.log.close()
        del self.running[running.id]
        code = exit_code(running.status if running.status is not None else 255 << 8)
        try:
            record = self.engine.containers.records.get(running.id)
        except NotFound:
            record = None
        if record is not None:
            cleanup(self.engine, record)
        restart = record is not None and not running.manual_stop and self._should_restart(record, code)

        def exited(data: dict) -> None:
            data["State"].update(Status="restarting" if restart else "exited", Running=False, Paused=False,
                                 Restarting=restart, Pid=0, ExitCode=code, FinishedAt=rfc3339())
            if restart:
                data["RestartCount"] = data.get("RestartCount", 0) + 1
        if record is not None:
            self.engine.containers.records.update(running.id, exited)
        if running.auto_remove and record is not None:
            try:
                self.engine.containers.destroy(self.engine.containers.records.get(running.id), volumes=True)
            except Exception as e:  # noqa: BLE001
                _log(f"removing {running.id}: {e!r}")
        self._notify(running.id, code, removed=running.auto_remove)
        for client in list(running.clients):
            client.send(protocol.event({"exit": code}))
            client.finish()
        if restart:
            self._schedule_restart(running, code)

    def _notify(self, container_id: str, code: int, removed: bool) -> None:
        remaining = []
        for client, condition in self.waiters.pop(container_id, []):
            if condition == "removed" and not removed:
                remaining.append((client, condition))
                continue
            client.send(protocol.event({"exit": code}))
            client.finish()
        if remaining:
            self.waiters[container_id] = remaining

    def _should_restart(self, record, code: int) -> bool:
        policy = record.data["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            limit = policy.get("MaximumRetryCount") or 0
            return limit == 0 or record.data.get("RestartCount", 0) < limit
        return False

    def _schedule_restart(self, running: Running, code: int) -> None:
        """Docker's back-off: 100 ms, doubling on each restart, back to 100 ms after 10 s of running."""
        ran = time.monotonic() - running.started
        delay = self.restart_delays.get(running.id, RESTART_DELAY_MIN)
        if ran >= RESTART_RESET_AFTER:
            delay = RESTART_DELAY_MIN
        self.restart_delays[running.id] = min(delay * 2, RESTART_DELAY_MAX)
        self.pending_restarts.add(running.id)

        def restart() -> None:
            if running.id not in self.pending_restarts:
                return
            try:
                record = self.engine.containers.records.get(running.id)
                self._start(record, None)
            except Exception as e:  # noqa: BLE001 - a failed restart is retried by the policy next time
                _log(f"restarting {running.id}: {e!r}")
                self.pending_restarts.discard(running.id)
                self._notify(running.id, code, removed=False)
        self.add_timer(delay, restart)


def _exec_process(bundle: str, args: list[str]) -> dict:
    """An exec'd process starts as a copy of the container's own (user, env, cwd, caps...) with new args."""
    with open(os.path.join(bundle, "config.json")) as f:
        process = dict(json.load(f)["process"])
    process.update(args=list(args), terminal=False)
    process.pop("consoleSize", None)
    return process


def _write_all_nonblocking(fd: int, data: bytes) -> None:
    view = memoryview(data)
    deadline = time.monotonic() + 5
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)
        except OSError:
            return


def _log(message: str) -> None:
    sys.stderr.write(f"{rfc3339()} monitor: {message}\n")
    sys.stderr.flush()


def _return_to_started_mount_namespace() -> None:
    """Started by a build, which runs in a private mount namespace: serve from the one the build came from,
    so that what the monitor mounts (root file systems, namespace pins) is where every command sees it."""
    fd = os.environ.pop("DOCKYARD_MOUNT_NAMESPACE_FD", None)
    if fd is not None:
        from dockyard.runtime import syscalls as sc

        sc.setns(int(fd), sc.CLONE_NEWNS)
        os.close(int(fd))


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from dockyard.engine.engine import Engine

    _return_to_started_mount_namespace()
    # One way to be started (client.py's): no argparse, whose import would stay resident as long as we live.
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--root":
        sys.stderr.write("usage: python -m dockyard.engine.monitor --root DIR\n")
        return 2
    engine = Engine(Path(args[1]))
    lock_path = os.path.join(str(engine.run_root), "monitor.lock")
    os.makedirs(str(engine.run_root), exist_ok=True)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another monitor serves this root
    from dockyard import linux

    linux.set_child_subreaper()
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *a: setattr(monitor, "stop_requested", True))
    idle = float(os.environ.get("DOCKYARD_MONITOR_IDLE", "60"))
    monitor = Monitor(engine, idle)
    os.ftruncate(lock, 0)
    os.write(lock, str(os.getpid()).encode())
    monitor.serve()
    return 0

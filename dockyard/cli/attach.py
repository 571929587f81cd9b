"""The terminal side of run/attach/start -a: copy the container's output here, our input there.

Without -t, output arrives as stdout/stderr frames and signals we receive are sent on to the container (as
docker's --sig-proxy does). With -t the local terminal goes raw, its size follows SIGWINCH, and the detach
keys (Ctrl-P Ctrl-Q) leave the container running.
"""

from __future__ import annotations

import os
import sys

# The C modules, not `signal` (which imports enum for its Signals type) or `threading` up front: `run` pays
# every import on its start-up path.
import _signal as signal

from dockyard.engine.monitor import protocol

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def parse_detach_keys(text: str | None) -> bytes:
    if not text:
        return DEFAULT_DETACH_KEYS
    keys = bytearray()
    for key in text.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            keys.append(ord(key[5].lower()) - ord("a") + 1 if key[5].isalpha() else {"@": 0, "[": 27,
                        "\\": 28, "]": 29, "^": 30, "_": 31}[key[5]])
        elif len(key) == 1:
            keys.append(ord(key))
        else:
            raise ValueError(f"invalid detach keys: {text}")
    return bytes(keys)


def terminal_size() -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        return size.lines, size.columns
    except OSError:
        return None


def pump(stream, tty: bool, stdin: bool, sig_proxy: bool = True, detach_keys: bytes = DEFAULT_DETACH_KEYS) -> int | None:
    """Run the session until the container exits (its exit code) or the user detaches (None)."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    detached = None  # an Event, when stdin is forwarded (only then can the detach keys be typed)
    restore = None
    if tty and sys.stdin.isatty():
        import termios
        import tty as tty_module

        saved = termios.tcgetattr(sys.stdin.fileno())
        tty_module.setraw(sys.stdin.fileno())
        restore = lambda: termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)  # noqa: E731
    previous = {}
    try:
        if tty:
            def resize(*_):
                size = terminal_size()
                if size:
                    try:
                        stream.send(protocol.RESIZE, f"{size[0]} {size[1]}".encode())
                    except OSError:
                        pass
            previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
        elif sig_proxy:
            def proxy(signum, _frame):
                try:
                    stream.send(protocol.EVENT, protocol.encode({"op": "kill", "signal": signum}))
                except OSError:
                    pass
            for sig in PROXIED_SIGNALS:
                previous[sig] = signal.signal(sig, proxy)
        if stdin:
            import threading

            detached = threading.Event()
            threading.Thread(target=_forward_stdin, args=(stream, tty, detach_keys, detached), daemon=True).start()
        for kind, payload in stream.frames():
            if kind == protocol.STDOUT:
                out.write(payload)
                out.flush()
            elif kind == protocol.STDERR:
                err.write(payload)
                err.flush()
            elif kind == protocol.EVENT:
                value = protocol.decode(payload)
                if "exit" in value:
                    return int(value["exit"])
        return None if detached is not None and detached.is_set() else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if restore:
            restore()


def _forward_stdin(stream, tty: bool, detach_keys: bytes, detached) -> None:
    fd = sys.stdin.fileno()
    matched = 0
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                stream.send(protocol.CLOSE_STDIN, b"")
                return
            if tty and detach_keys:
                for byte in data:
                    matched = matched + 1 if byte == detach_keys[matched] else (1 if byte == detach_keys[0] else 0)
                    if matched == len(detach_keys):
                        detached.set()
                        stream.sock.shutdown(2)
                        return
            stream.send(protocol.STDIN, data)
    except OSError:
        return

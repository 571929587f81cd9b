"""Running the transfers of one pull or push side by side, all or nothing.

Each task gets a cancel event. The first failure sets it, the other tasks stop at their next chunk, and the
failure is raised once all have ended (so no thread is left writing into the store). Ctrl-C does the same.

Plain threads taking tasks from a shared deque rather than concurrent.futures: importing that (and the
logging it imports) cost every pull and push ~3.5 ms before its first request.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Task = Callable[[threading.Event], None]
WAKE_TIMEOUT = 0.1  # s: only a safety net, every change of state sets the wake event


def run_all(tasks: list[Task], workers: int, tick: Callable[[], None] | None = None,
            wake: threading.Event | None = None) -> None:
    """Run the tasks on up to `workers` threads; `tick` runs on the calling thread whenever a task ends or
    `wake` is set (and once more at the end), for work that must stay on this thread (the store's database).

    Event-driven rather than polled: in a pull, the time between a layer's extraction ending and its
    commit (which starts the next layer) is on the critical path.
    """
    cancel = threading.Event()
    wake = wake or threading.Event()
    pending = deque(tasks)
    ended: list[BaseException | None] = []  # one entry per task run: its failure, or None

    def work() -> None:
        while not cancel.is_set():
            try:
                task = pending.popleft()  # atomic: the workers need no lock to share the deque
            except IndexError:
                return
            try:
                task(cancel)
            except BaseException as e:  # noqa: BLE001 - raised by run_all, once all have ended
                cancel.set()
                ended.append(e)
            else:
                ended.append(None)
            wake.set()

    count = min(max(1, workers), len(tasks))
    threads = [threading.Thread(target=work, name=f"transfer_{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        while True:
            wake.clear()  # before looking: whatever happens from here on sets it again
            # Looked at before the tick, so that the last tick comes after every end.
            over = cancel.is_set() or len(ended) == len(tasks)
            if tick is not None:
                tick()
            if over:
                break
            wake.wait(WAKE_TIMEOUT)
    finally:  # also on Ctrl-C (or a failing tick): the tasks stop, and none is left running
        cancel.set()
        for thread in threads:
            thread.join()
    failures = [e for e in ended if e is not None]
    if failures:
        raise failures[0]

"""Running the transfers of one pull or push side by side, all or nothing.

Each task gets a cancel event. The first failure sets it, the other tasks stop at their next chunk, and the
failure is raised once all have ended (so no thread is left writing into the store). Ctrl-C does the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

Task = Callable[[threading.Event], None]
WAKE_TIMEOUT = 0.1  # s: only a safety net, every change of state sets the wake event


def run_all(tasks: list[Task], workers: int, tick: Callable[[], None] | None = None,
            wake: threading.Event | None = None) -> None:
    """Run the tasks on up to `workers` threads; `tick` runs on the calling thread whenever a task ends or
    `wake` is set (and once more at the end), for work that must stay on this thread (the store's database).

    Event-driven rather than polled: in a pull, the time between a layer's extraction ending and its
    commit (which starts the next layer) is on the critical path.
    """
    if not tasks:
        if tick is not None:
            tick()
        return
    cancel = threading.Event()
    wake = wake or threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))), thread_name_prefix="transfer")
    futures: list[Future] = [pool.submit(task, cancel) for task in tasks]
    for future in futures:
        future.add_done_callback(lambda _: wake.set())
    try:
        while True:
            wake.clear()  # before looking: whatever happens from here on sets it again
            if tick is not None:
                tick()
            if all(f.done() for f in futures) or any(f.done() and f.exception() is not None for f in futures):
                break
            wake.wait(WAKE_TIMEOUT)
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:
            cancel.set()
            for f in futures:
                f.cancel()
            wait(futures)
            raise failed[0].exception()  # type: ignore[misc]
    except BaseException:
        cancel.set()
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)

"""Running the transfers of one pull or push side by side, all or nothing.

Each task gets a cancel event. The first failure sets it, the other tasks stop at their next chunk, and the
failure is raised once all have ended (so no thread is left writing into the store). Ctrl-C does the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

Task = Callable[[threading.Event], None]


def run_all(tasks: list[Task], workers: int, tick: Callable[[], None] | None = None) -> None:
    """Run the tasks on up to `workers` threads; `tick` runs on the calling thread every 10 ms meanwhile
    (and once more at the end), for work that must stay on this thread (the store's database)."""
    if not tasks:
        if tick is not None:
            tick()
        return
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))), thread_name_prefix="transfer")
    futures: list[Future] = [pool.submit(task, cancel) for task in tasks]
    try:
        while True:
            _, pending = wait(futures, timeout=0.01 if tick is not None else None, return_when=FIRST_EXCEPTION)
            if tick is not None:
                tick()
            if not pending or any(f.done() and f.exception() is not None for f in futures):
                break
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

"""Running the transfers of one pull or push side by side, all or nothing.

Each task gets a cancel event. The first failure sets it, the other tasks stop at their next chunk, and the
failure is raised once all have ended (so no thread is left writing into the store). Ctrl-C does the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

Task = Callable[[threading.Event], None]


def run_all(tasks: list[Task], workers: int) -> None:
    if not tasks:
        return
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))), thread_name_prefix="transfer")
    futures: list[Future] = [pool.submit(task, cancel) for task in tasks]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
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

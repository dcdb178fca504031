"""One runner for per-night work in parallel processes (``somna prepare``, batch ``somna score``).

Each night is one task; a task that fails with a :class:`~somna.errors.SomnaError` becomes a
:class:`Failure` naming the reason while the others go on. Workers are fresh interpreters ("spawn"): a
forked child of a process whose torch (OpenMP) threads have run can hang in its first parallel call.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm.auto import tqdm

from somna.errors import BatchInterrupted, SomnaError

__all__ = ["Failure", "run_nights"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Failure:
    """A task that failed, and why (the error's message)."""

    reason: str


def _guarded(work: Callable[[T], R], task: T) -> R | Failure:
    try:
        return work(task)
    except SomnaError as err:
        return Failure(str(err))
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        return Failure("out of memory")
    except Exception as err:  # one night's unforeseen failure must not end the others
        return Failure(f"unexpected {type(err).__name__}: {err}")


_PARENT_POLL_S = 0.5


def _die_with_parent(parent: int) -> None:
    """End this worker when its parent process (``parent``, its id) ends, however it ends (SIGKILL too).

    Linux is asked to send SIGKILL at the parent's death (``prctl(PR_SET_PDEATHSIG)``); a thread also
    watches the parent's process id everywhere else (a dead parent's children are re-parented). The id
    comes from the parent itself: a worker that starts after its parent died sees another one and ends.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="somna-parent-watch", daemon=True).start()


def _start_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """Every worker's start: die with the parent, leave Ctrl-C to it (the parent stops the workers and
    says what finished, so workers print no tracebacks), then the caller's initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt here while the batch runs (in the main thread), so that it stops
    the workers as Ctrl-C does; the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the running workers (their writes are atomic, and a night
    folder's lock dies with its writer)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


def run_nights(
    tasks: Sequence[T],
    work: Callable[[T], R],
    *,
    workers: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    desc: str = "nights",
    progress: bool = True,
    already_done: int = 0,
) -> list[R | Failure]:
    """Run ``work(task)`` for every task, in worker processes when ``workers > 1``.

    Any exception of one task becomes its :class:`Failure` and the others go on. Workers die with this
    process (even on SIGKILL), ignore Ctrl-C, and are killed when Ctrl-C or SIGTERM stops the batch,
    which then raises :class:`BatchInterrupted`.

    Parameters
    ----------
    tasks : sequence
        One per night (picklable when run in workers).
    work : callable
        A module-level function (workers import it by name).
    workers : int
        Worker processes; 1 (or a single task) runs in this process, without ``initializer``.
    initializer, initargs
        Run once in each worker process before its first task (e.g. load a model, set threads).
    desc : str
        Label of the progress bar.
    progress : bool
        Show a progress bar (with the number of failures so far).
    already_done : int
        Nights counted as done before these tasks (skipped by the caller), for the bar.

    Returns
    -------
    list
        Per task, in order: ``work``'s result or a :class:`Failure`.

    Raises
    ------
    BatchInterrupted
        On Ctrl-C or SIGTERM, once the workers are stopped; it says how many tasks had finished.
    """
    results: list[R | Failure | None] = [None] * len(tasks)
    bar = tqdm(
        total=already_done + len(tasks),
        initial=already_done,
        desc=desc,
        unit="night",
        disable=None if progress else True,
    )
    failures = 0
    finished = 0

    def record(index: int, result: R | Failure) -> None:
        nonlocal failures, finished
        results[index] = result
        finished += 1
        bar.update()
        if isinstance(result, Failure):
            failures += 1
            bar.set_postfix(failed=failures)

    try:
        with _sigterm_interrupts():
            if workers <= 1 or len(tasks) <= 1:
                for i, task in enumerate(tasks):
                    record(i, _guarded(work, task))
            else:
                _run_in_workers(tasks, work, workers, initializer, initargs, record)
    except KeyboardInterrupt:
        raise BatchInterrupted(already_done + finished, already_done + len(tasks)) from None
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _run_in_workers(
    tasks: Sequence[T],
    work: Callable[[T], R],
    workers: int,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    record: Callable[[int, R | Failure], None],
) -> None:
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    try:
        futures: dict[Future[Any], int] = {pool.submit(_guarded, work, t): i for i, t in enumerate(tasks)}
        for future in as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool:
                result = Failure("a worker process died (killed, or out of memory?)")
            record(futures[future], result)
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)

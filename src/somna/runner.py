"""One runner for per-night work in parallel processes (``somna prepare``, batch ``somna score``).

Each night is one task; a task that fails with a :class:`~somna.errors.SomnaError` becomes a
:class:`Failure` naming the reason while the others go on. Workers are fresh interpreters ("spawn"): a
forked child of a process whose torch (OpenMP) threads have run can hang in its first parallel call.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm.auto import tqdm

from somna.errors import SomnaError

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

    def record(index: int, result: R | Failure) -> None:
        nonlocal failures
        results[index] = result
        bar.update()
        if isinstance(result, Failure):
            failures += 1
            bar.set_postfix(failed=failures)

    try:
        if workers <= 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                record(i, _guarded(work, task))
        else:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(tasks)),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=initializer,
                initargs=initargs,
            ) as pool:
                futures: dict[Future[Any], int] = {
                    pool.submit(_guarded, work, t): i for i, t in enumerate(tasks)
                }
                try:
                    for future in as_completed(futures):
                        try:
                            result = future.result()
                        except BrokenProcessPool:
                            result = Failure("a worker process died (killed, or out of memory?)")
                        record(futures[future], result)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return results  # type: ignore[return-value]

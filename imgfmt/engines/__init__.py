"""Where the work runs. An engine decides only where work runs, never what bytes come out.

- ``local`` (the default, and the fastest on one machine): tasks run one after another in
  this process, each spreading its images over worker processes (``engines.local``).
- ``ray``: one Ray task per unit of work (a shard) on a Ray cluster (``engines.ray``; the
  optional extra ``imgfmt[ray]``).

An operation hands an engine a function and its tasks (small, picklable); the engine runs
``fn(task, on_progress)`` for each and yields the results as they are done. A failed task
stops the others, and its error is raised to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from imgfmt.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int], None]

#: The engines ``--engine`` offers.
ENGINES = ("local", "ray")


class Engine(Protocol):
    name: str
    #: Runs on this machine only (the engine to use without a cluster).
    local: bool
    #: Reports progress image by image (else a task at a time, by the caller).
    live_progress: bool

    def task_workers(self, workers: int | None) -> int | None:
        """Worker processes each task decodes with, given the user's ``workers`` (None: the
        user gave none, and the task takes its own default)."""
        ...

    def run(
        self,
        fn: Callable[[T, Progress | None], R],
        tasks: Sequence[T],
        on_progress: Progress | None,
    ) -> Iterator[tuple[int, R]]:
        """``(task number, result)`` for every task, as each is done (in any order)."""
        ...


class LocalEngine:
    """Tasks one after another in this process; each task's images on worker processes."""

    name = "local"
    local = True
    live_progress = True

    def task_workers(self, workers: int | None) -> int | None:
        return workers

    def run(
        self,
        fn: Callable[[T, Progress | None], R],
        tasks: Sequence[T],
        on_progress: Progress | None,
    ) -> Iterator[tuple[int, R]]:
        for number, task in enumerate(tasks):
            yield number, fn(task, on_progress)


def get(engine: str | Engine | None = None, address: str | None = None) -> Engine:
    """The engine named ``engine`` (default ``local``); ``address``: the Ray cluster's."""
    if engine is None or engine == "local":
        if address:
            raise UsageError("`ray_address` needs `engine` ray")
        return LocalEngine()
    if not isinstance(engine, str):
        return engine
    if engine == "ray":
        from imgfmt.engines.ray import RayEngine

        return RayEngine(address)
    raise UsageError(f"unknown engine {engine!r}", hint=f"one of: {', '.join(ENGINES)}")

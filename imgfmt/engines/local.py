"""Worker processes for the CPU-bound work (decoding, resizing, encoding images).

One place that makes the pool, so every command's workers behave the same when the user
stops a run: only the main process handles Ctrl-C and SIGTERM (it cancels what is queued,
waits for the batches in hand, removes its temporary outputs and exits 130). A worker that
took the signal itself would die mid-write to its result pipe and could leave the pool
waiting forever.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from imgfmt.payloads import Readers

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Batches in flight per worker: keeps every worker busy while the caller catches up.
BATCHES_PER_WORKER = 4


#: The signals a worker must not take the main process's way: it is forked with them
#: blocked (see ``_forking``), sets its own handling, then lets them through.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the terminal's group: the main process handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The CLI turns SIGTERM into KeyboardInterrupt; a forked worker inherits that handler.
    # A worker killed outright is fine: the main process sees a broken pool.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


@contextlib.contextmanager
def _forking() -> Iterator[None]:
    """Around a submit that may fork workers: SIGINT and SIGTERM wait in this process until
    it is done, so that a child never runs the parent's handlers (a SIGTERM from stop_pool
    raising KeyboardInterrupt in a child that is still importing, where it is swallowed and
    the child lives on). A signal that arrives meanwhile is delivered right after."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _start_decoder() -> None:
    _ignore_interrupts()
    from imgfmt import decoding

    decoding.bound_this_process()  # each image gets a memory budget (imgfmt.decoding)


def _start_method() -> str:
    """Fork where possible: cheap, and safe while the process holds only its own Python
    threads. Not in a process that runs Ray (a Ray driver, or a Ray task's worker): Ray's
    native gRPC threads do not survive a fork of their process, and Ray calls hung after
    one (measured: the third Ray Data read after a local pack in the same driver never
    started). There the workers come from a fork server, a clean process of their own."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        return "forkserver"
    return "fork"


def process_pool(workers: int, *, decoders: bool = False) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes (see :func:`_start_method`). ``decoders``: the
    workers decode images, each within a memory budget (``imgfmt.decoding.memory_budget``)."""
    method = _start_method()
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_start_decoder if decoders else _ignore_interrupts,
    )


def stop_pool(executor: ProcessPoolExecutor) -> None:
    """Stop a pool at once, after an error or an interruption: queued work is cancelled and
    the workers are terminated, not waited for (one may be stuck reading a slow file).

    Do not cancel the pool's futures first: the pool's manager thread cancels queued work
    itself, and before Python 3.12 it raises on a future cancelled behind its back when it
    sees the workers die, printing a traceback from its thread (measured: 12 of 150 stops).
    """
    terminate = getattr(executor, "terminate_workers", None)  # Python 3.14+
    # Taken now: shutdown() drops the pool's references to both.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    results_writer = getattr(getattr(executor, "_result_queue", None), "_writer", None)
    manager = getattr(executor, "_executor_manager_thread", None)
    if terminate is not None:
        terminate()
    else:
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
    for process in processes:
        process.join(timeout=5)
    # A worker killed while writing a result leaves half a message in the result pipe: the
    # pool's manager thread then waits for the rest forever, and so does the interpreter's
    # exit, which joins that thread (3 of 8 interrupted packs of 2,000 images hung so). With
    # the workers gone this process holds the pipe's last write end, and nothing here writes
    # to it: closing it turns the wait into end-of-file, a broken pool to the thread, which ends.
    if results_writer is not None:
        results_writer.close()
    # Let the manager thread end before the interpreter's exit hook pokes its wakeup pipe,
    # which it may be closing (an "Exception ignored ... Bad file descriptor" at exit).
    if manager is not None:
        manager.join(timeout=5)


def _exit_code(process: multiprocessing.process.BaseProcess) -> int | None:
    """A stopped worker's exit code. The pool's manager thread may be reaping it at this very
    moment (then our own wait finds nothing and the code appears a moment later): wait a
    little for it rather than report none."""
    process.join(timeout=5)
    deadline = time.monotonic() + 1.0
    while process.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return process.exitcode


def _exit_text(codes: list[int]) -> str:
    """How workers ended, from their exit codes: ``killed by SIGSEGV``, ``exit status 3``."""
    texts = []
    for code in codes:
        if code < 0:
            try:
                texts.append(f"killed by {signal.Signals(-code).name}")
            except ValueError:
                texts.append(f"killed by signal {-code}")
        else:
            texts.append(f"exit status {code}")
    return ", ".join(sorted(set(texts))) or "it died"


class BatchPool(Generic[T, R]):
    """``func`` over batches of items on ``workers`` processes (or threads), with results
    handed back in the order the batches were put, and at most ``BATCHES_PER_WORKER`` batches
    a worker in flight, so memory stays flat however many batches come.

    A worker process that dies (a decoder's segmentation fault, the kernel's OOM killer)
    does not end the run: the batches it took down are run again one item at a time in a
    fresh pool, and an item that kills its worker again gets ``crashed(item, why)`` as its
    result. ``func`` and its items must pickle; ``threads`` runs it on threads instead (for
    I/O-bound work), where a failure is only an exception. With ``threads`` and one worker it
    runs in this thread.

    Use as a context manager: leaving it normally waits for the workers, leaving it on an
    exception (Ctrl-C included) stops them at once.
    """

    def __init__(
        self,
        func: Callable[[list[T]], list[R]],
        workers: int,
        crashed: Callable[[T, str], R],
        *,
        threads: bool = False,
        decoders: bool = False,
    ) -> None:
        self._func = func
        self._workers = max(1, workers)
        self._crashed = crashed
        self._threads = threads
        self._decoders = decoders
        self._window = self._workers * BATCHES_PER_WORKER
        self._pending: deque[tuple[list[T], Future[list[R]]]] = deque()
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        if self._executor is None:
            if self._threads:
                self._executor = ThreadPoolExecutor(self._workers)
            else:
                self._executor = process_pool(self._workers, decoders=self._decoders)
        return self._executor

    def put(self, batch: list[T]) -> Iterator[tuple[list[T], list[R]]]:
        """Hand ``batch`` over; yields the oldest batches that are done while the window is
        full (each ``(batch, results)``)."""
        if self._threads and self._workers == 1:
            yield batch, self._func(batch)
            return
        while len(self._pending) >= self._window:
            yield self._collect_oldest()
        try:
            future = self._submit(batch)
        except BrokenProcessPool:  # a worker died since the last batch was collected
            self._recover()
            future = self._submit(batch)
        self._pending.append((batch, future))

    def drain(self) -> Iterator[tuple[list[T], list[R]]]:
        """Every batch still in flight, in order."""
        while self._pending:
            yield self._collect_oldest()

    def _submit(self, batch: list[T]) -> Future[list[R]]:
        pool = self._pool()
        if self._threads:
            return pool.submit(self._func, batch)
        with _forking():
            return pool.submit(self._func, batch)

    def _collect_oldest(self) -> tuple[list[T], list[R]]:
        batch, future = self._pending[0]
        try:
            results = future.result()
        except BrokenProcessPool:
            self._recover()
            batch, future = self._pending[0]
            results = future.result()
        self._pending.popleft()
        return batch, results

    def _recover(self) -> None:
        """After a worker died: rerun every unfinished batch an item at a time, each in a
        fresh pool once one dies, so that only the item that kills a worker is lost."""
        broken = self._executor
        assert isinstance(broken, ProcessPoolExecutor)
        stop_pool(broken)
        self._executor = None
        redone: deque[tuple[list[T], Future[list[R]]]] = deque()
        for batch, future in self._pending:
            if future.done() and future.exception() is None:
                redone.append((batch, future))
                continue
            results: list[R] = []
            for item in batch:
                results.append(self._run_alone(item))
            done: Future[list[R]] = Future()
            done.set_result(results)
            redone.append((batch, done))
        self._pending = redone

    def _run_alone(self, item: T) -> R:
        pool = self._pool()
        assert isinstance(pool, ProcessPoolExecutor)
        future = self._submit([item])
        processes = list((getattr(pool, "_processes", None) or {}).values())
        try:
            return future.result()[0]
        except BrokenProcessPool:
            stop_pool(pool)
            self._executor = None
            codes = [code for code in map(_exit_code, processes) if code]
            # The other workers were stopped by the pool (SIGTERM); the dead one tells why.
            telling = [code for code in codes if code != -signal.SIGTERM] or codes
            return self._crashed(item, f"its worker process died ({_exit_text(telling)})")

    def close(self, *, wait: bool = True) -> None:
        """Release the workers: wait for them, or (``wait=False``) stop them at once."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if wait and not self._pending:
            executor.shutdown(wait=True)
        elif isinstance(executor, ThreadPoolExecutor):
            executor.shutdown(wait=False, cancel_futures=True)
        else:
            assert isinstance(executor, ProcessPoolExecutor)
            stop_pool(executor)  # cancels the queued batches itself (see there)
        self._pending.clear()

    def __enter__(self) -> BatchPool[T, R]:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(wait=exc_type is None)


#: Images per decode job of a DecodePool.
DECODE_BATCH = 16

#: One image to decode: ``(token, where, bytes)``; the token goes back to ``on_failure``.
_DecodeItem = tuple[Any, str, bytes]
#: What decoding it gave: the reason it fails (None: it decodes) and what decoders said.
_Decoded = tuple[Any, tuple[str, ...]]


def _decode_batch(readers: Readers | None, batch: list[_DecodeItem]) -> list[_Decoded]:
    from imgfmt import payloads

    results: list[_Decoded] = []
    for _token, _where_text, data in batch:
        notes: list[str] = []
        problem = payloads.decode_problem(data, readers, notes)
        results.append((problem.reason if problem else None, tuple(notes)))
    return results


def _decode_crashed(_item: _DecodeItem, why: str) -> _Decoded:
    return f"the decoder crashed on this image: {why}", ()


class DecodePool:
    """Checks that images decode (``imgfmt.payloads.decode_problem``) in worker processes:
    a bounded window of batches in flight, so memory stays flat however large the dataset;
    a worker that dies costs only the image that killed it. Each failure goes, in order, to
    ``on_failure(token, reason)``; what decoders said goes to the log (``-v``)."""

    def __init__(
        self, workers: int, readers: Readers | None, on_failure: Callable[[Any, str], None]
    ) -> None:
        self._on_failure = on_failure
        self._batch: list[_DecodeItem] = []
        self._pool: BatchPool[_DecodeItem, _Decoded] = BatchPool(
            partial(_decode_batch, readers), workers, _decode_crashed, decoders=True
        )

    def submit(self, token: Any, where: str, image: bytes) -> None:
        self._batch.append((token, where, image))
        if len(self._batch) >= DECODE_BATCH:
            self._flush()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            for done, results in self._pool.put(batch):
                self._report(done, results)

    def _report(self, batch: list[_DecodeItem], results: list[_Decoded]) -> None:
        for (token, where, _data), (reason, notes) in zip(batch, results):
            for note in notes:
                log.info("%s: decoder said: %s", where, note)
            if reason is not None:
                self._on_failure(token, reason)

    def finish(self) -> None:
        self._flush()
        for done, results in self._pool.drain():
            self._report(done, results)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # On an error or Ctrl-C the workers are stopped at once, not waited for.
        self._pool.close(wait=exc_type is None)


__all__ = ["BATCHES_PER_WORKER", "BatchPool", "DecodePool", "process_pool", "stop_pool"]

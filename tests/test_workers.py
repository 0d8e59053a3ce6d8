"""imgfmt.engines.local: stopping a pool part-way never leaves the process unable to exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A worker killed while writing its result leaves half a message in the pool's result pipe.
# The worker here writes half a message itself (a 1 MiB header, 100 bytes) and waits to be
# killed, which makes the case deterministic. Before the fix, the pool's manager thread waited
# for the rest forever, and so did the interpreter's exit (3 of 8 interrupted packs hung).
HALF_WRITTEN = textwrap.dedent(
    """
    import struct, sys, time
    from imgfmt.engines.local import process_pool, stop_pool

    def half_written_result():
        frame = sys._getframe()
        while "result_queue" not in frame.f_locals:  # the pool's worker loop
            frame = frame.f_back
        frame.f_locals["result_queue"]._writer._send(struct.pack("!i", 1 << 20) + b"x" * 100)
        time.sleep(60)

    if __name__ == "__main__":
        pool = process_pool(1)
        pool.submit(half_written_result)
        time.sleep(1.0)  # the manager thread is reading the half message by now
        stop_pool(pool)
        print("stopped", flush=True)
    """
)


def test_stop_pool_frees_a_manager_thread_stuck_on_half_a_result() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HALF_WRITTEN], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped\n"
    assert "Traceback" not in done.stderr


def _signal_state(_batch: list[int]) -> list[tuple[bool, bool, object, object]]:
    import signal

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return [
        (
            signal.SIGINT in blocked,
            signal.SIGTERM in blocked,
            signal.getsignal(signal.SIGINT),
            signal.getsignal(signal.SIGTERM),
        )
    ]


def test_workers_are_forked_with_stop_signals_held_then_take_their_own() -> None:
    """Workers are forked while SIGINT and SIGTERM wait (a child must never run the parent's
    handlers, as a SIGTERM raising KeyboardInterrupt mid-import, where it is swallowed and
    the child lives on); once started they ignore SIGINT, die of SIGTERM, and block neither
    (a worker left blocking SIGTERM could not be stopped). The parent's mask is restored."""
    import signal

    from imgfmt.engines.local import BatchPool

    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with BatchPool(_signal_state, 2, lambda item, why: (False, False, why, why)) as pool:
        states = [r for _batch, results in [*pool.put([1]), *pool.drain()] for r in results]
    assert states == [(False, False, signal.SIG_IGN, signal.SIG_DFL)]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before

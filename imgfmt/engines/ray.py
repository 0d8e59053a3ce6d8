"""The Ray engine: one Ray task per unit of work (a shard), on a Ray cluster.

Install with ``pip install "imgfmt[ray]"``. The cluster is the one at ``address`` (or
``RAY_ADDRESS``: ``ray://head:10001`` for Ray Client, ``head:6379`` on a cluster's node);
without one, a local cluster is started for the run (``address="local"``) and stopped at
its end, never one left running on this machine by someone else. A program that has
already called ``ray.init`` keeps its own connection.

Each task asks for one CPU and decodes its images in one worker process of its own, so a
decoder that crashes costs its image, not the task (as on the local engine). Ray reruns a
task whose worker or node died (``max_retries``); a task that fails with an error is not
rerun: the error is the user's to see. The first failure cancels every other task.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from imgfmt.errors import ImgfmtError, UsageError

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

#: How often Ray reruns a task whose worker process or node died (Ray's default).
DEFAULT_MAX_RETRIES = 3

INSTALL_HINT = 'install it with: pip install "imgfmt[ray]"'


def import_ray() -> Any:
    """The ``ray`` module, or a ``UsageError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("the Ray engine needs Ray, which is not installed",
                         hint=INSTALL_HINT) from None  # fmt: skip
    return ray


class RayEngine:
    name = "ray"
    local = False
    live_progress = False

    def __init__(self, address: str | None = None, max_retries: int = DEFAULT_MAX_RETRIES):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.max_retries = max_retries
        self._started = False
        import_ray()  # says how to install Ray before any work
        if self.address and not import_ray().is_initialized():
            _check_reachable(self.address)  # and that the cluster answers

    def task_workers(self, workers: int | None) -> int | None:
        return 1

    def connect(self) -> Any:
        """Ray, connected: to the program's own connection, to ``address``, or to a new
        local cluster (stopped by :meth:`close`)."""
        ray = import_ray()
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "include_dashboard": False,
        }
        # Ray's notice that a new local cluster enables token authentication is not the
        # user's business on every run (it goes to stderr, which scripts read).
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(address="local", **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = self.address or "a local cluster"
            raise ImgfmtError(
                f"cannot start or reach Ray ({where}): {str(err).splitlines()[0]}",
                hint="check --ray-address / RAY_ADDRESS, or leave it out for a local cluster",
            ) from err
        self._started = True
        return ray

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(
        self,
        fn: Callable[[T, Any], R],
        tasks: Sequence[T],
        on_progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, R]]:
        ray = self.connect()
        remote = ray.remote(fn).options(num_cpus=1, max_retries=self.max_retries)
        refs = [remote.remote(task, None) for task in tasks]
        numbers = {ref: number for number, ref in enumerate(refs)}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    yield numbers[ref], self._result(ray, ref, numbers[ref])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if pending:  # let the cancelled tasks end before the caller cleans up
                ray.wait(pending, num_returns=len(pending), timeout=30)
            self.close()

    def _result(self, ray: Any, ref: Any, number: int) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, ImgfmtError):
                raise cause from None
            raise ImgfmtError(
                f"task {number} failed on the Ray cluster: {_first_line(cause or err)}",
                hint="see the Ray worker logs",
            ) from err
        except ray.exceptions.RayError as err:
            raise ImgfmtError(
                f"task {number} failed on the Ray cluster (its worker or node died, "
                f"{self.max_retries} retries spent): {_first_line(err)}",
                hint="see the Ray logs (ray status; /tmp/ray/session_latest/logs); run again",
            ) from err


#: Seconds to wait for a cluster's port to answer before saying it cannot be reached.
CONNECT_TIMEOUT = 5.0


def _check_reachable(address: str) -> None:
    """A one-line error now when nothing answers at ``address`` (``ray://host:port`` or
    ``host:port``): ``ray.init`` would retry for minutes, printing native warnings."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray knows better: let Ray answer
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as err:
        raise ImgfmtError(
            f"cannot reach the Ray cluster at {address}: {err.strerror or err}",
            hint="check --ray-address / RAY_ADDRESS: ray://head:10001 for Ray Client, "
            "head:6379 on a node of the cluster; or leave it out for a local cluster",
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__

"""verify: find every problem in a dataset, say where it is, and keep going.

Each input is checked by its format (``imgfmt.formats``: ``Document.check``), found by
extension and, where formats share one, by content: an MXNet ``.rec`` with its ``.idx``
(or the ``.idx`` itself), a RecordIO-protobuf ``.rec``, a ``.lst``, a SageMaker manifest or a
JSON Lines image dataset (``.manifest``, ``.jsonl``, ``.json``), WebDataset shards
(``.tar``). Every format reports :class:`imgfmt.formats.base.Problem`s (its canonical name,
the check, where, what) to one :class:`Report`, which counts every problem and keeps the
first ``max_problems``, each file's in file order.
"""

from __future__ import annotations

import os
import socket
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from imgfmt import engines, formats, s3, storage
from imgfmt.engines import Engine
from imgfmt.errors import StorageError, UsageError
from imgfmt.formats.base import CheckContext, Problem

#: Problems kept in a report by default; every problem is counted, only these are listed.
DEFAULT_MAX_PROBLEMS = 100


@dataclass
class FileReport:
    """What was checked in one input, and how many problems each check found."""

    path: str
    #: The canonical name of its format (``recordio``, ``lst``, ``jsonlines``, ...).
    kind: str
    checked: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "checked": dict(self.checked),
            "problems": dict(self.problems),
            "notes": list(self.notes),
            "fixed": list(self.fixed),
        }


@dataclass
class Report:
    """Every file's counts, and the first ``max_problems`` problems (all are counted)."""

    max_problems: int = DEFAULT_MAX_PROBLEMS
    files: list[FileReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(self, file: FileReport, problem: Problem) -> None:
        file.problems[problem.check] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    @property
    def problem_count(self) -> int:
        return sum(self.problems_by_check.values())

    @property
    def problems_by_check(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for file in self.files:
            total.update(file.problems)
        return total

    @property
    def checked(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for file in self.files:
            total.update(file.checked)
        return total

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def to_dict(self, max_problems: int | None = None) -> dict[str, Any]:
        """The ``--json`` report: totals, per-file counts, the first problems with locations."""
        shown = self.problems if max_problems is None else self.problems[:max_problems]
        return {
            "ok": self.ok,
            "problem_count": self.problem_count,
            "problems_by_check": dict(self.problems_by_check),
            "checked": dict(self.checked),
            "files": [file.to_dict() for file in self.files],
            "problems": [problem.to_dict() for problem in shown],
            "problems_not_shown": self.problem_count - len(shown),
        }


# --------------------------------------------------------------------------- entry point


def input_kind(path: str) -> str:
    """The format ``path``'s extension names for ``verify`` (its content may tell another
    that shares the extension); ``UsageError`` for an extension verify does not read."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in formats.CHECKED_EXTENSIONS:
        raise UsageError(
            f"cannot verify {path!r}: unknown extension {ext or '(none)'!r}",
            hint=f"verify reads {', '.join(formats.CHECKED_EXTENSIONS)} files",
        )
    return formats.CHECKED_EXTENSIONS[ext]


@dataclass(frozen=True)
class _Check:
    """One input to check, with the options: what an engine's task gets."""

    path: str
    decode: bool
    root: str | None
    classes: str | None
    fix_idx: bool
    workers: int
    max_problems: int
    s3_settings: Any = None


def _check_one(
    task: _Check, on_progress: Callable[[int], None] | None = None
) -> tuple[FileReport, list[Problem]]:
    """Check one input: its counts, and its first ``max_problems`` problems in file order."""
    if task.s3_settings is not None:
        s3.adopt(task.s3_settings)
    path = task.path
    document = formats.for_check(path)
    file = FileReport(path, document.name)
    report = Report(max_problems=task.max_problems, files=[file])

    def add(problem: Problem) -> None:
        # A format reports an input it cannot read from inside its ``except`` block: the
        # error being handled tells a file that is missing or bad (a problem: verify goes
        # on) from an S3 endpoint that does not answer at all (nothing can be read: stop).
        stop = unreachable(sys.exc_info()[1])
        if stop is not None:
            raise stop
        report.add(file, problem)

    ctx = CheckContext(
        path,
        add,
        checked=file.checked,
        notes=file.notes,
        fixed=file.fixed,
        decode=task.decode,
        classes=task.classes,
        root=task.root,
        fix_idx=task.fix_idx,
        workers=task.workers,
        progress=on_progress or (lambda _n: None),
    )
    try:
        with s3.reading_through():  # a check reads its input whole
            document.check(path, ctx)
    except StorageError as err:
        _stop_if_unreachable(err)
        raise
    file.path = ctx.path
    # Decode problems arrive late (from workers): put the file's problems in file order.
    main_path = file.path
    problems = sorted(
        report.problems,
        key=lambda p: (
            p.path != main_path,
            p.line if p.line is not None else sys.maxsize,
            p.offset if p.offset is not None else -1,
        ),
    )
    return file, problems


def verify(
    paths: list[str],
    *,
    decode: bool = False,
    root: str | None = None,
    classes: str | None = None,
    fix_idx: bool = False,
    workers: int | None = None,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    on_progress: Callable[[int], None] | None = None,
    engine: str | Engine | None = None,
) -> Report:
    """Check every input in ``paths``; returns the report, never stopping at a problem.

    ``decode``: decode every image too (on ``workers`` processes, default all cores).
    ``root``: folder a ``.lst``'s paths are relative to (default: the list's folder).
    ``classes``: a class map to check labels against (default: the one beside each input).
    ``fix_idx``: rebuild a missing or wrong ``.idx`` from its ``.rec``.
    ``on_progress`` is called with the number of ``.rec`` bytes read since the last call.
    ``engine``: where the files are checked (``imgfmt.engines``; ``ray``: one task per
    file, many at once); the report is the same, each file's problems in file order and
    the files in the order given.
    Only an unknown extension, or a ``root`` that does not exist, raise (``UsageError``),
    before anything is read; and an S3 endpoint that does not answer at all
    (``StorageError``: nothing could be read), when it is met.
    """
    kinds = [input_kind(path) for path in paths]
    if root is not None and "lst" in kinds:
        require_root(root)
    runner = engines.get(engine)
    each = runner.task_workers(workers or os.cpu_count() or 1) or 1
    settings = None if runner.local else s3.settings()
    tasks = [
        _Check(path, decode, root, classes, fix_idx, each, max_problems, settings) for path in paths
    ]
    done: dict[int, tuple[FileReport, list[Problem]]] = {}
    for number, result in runner.run(_check_one, tasks, on_progress):
        done[number] = result
    report = Report(max_problems=max_problems)
    for number in range(len(tasks)):
        file, problems = done[number]
        report.files.append(file)
        room = max_problems - len(report.problems)
        report.problems.extend(problems[: max(room, 0)])
    return report


def require_root(root: str) -> None:
    """``UsageError`` when the folder a list's paths are relative to does not exist (on S3:
    holds no object)."""
    try:
        there = storage.is_dir(root)
    except StorageError as err:
        _stop_if_unreachable(err)
        raise
    if not there:
        raise UsageError(
            f"the `root` folder {root} does not exist",
            hint="give the folder the list's paths are relative to",
        )


class Unreachable(StorageError):
    """No S3 endpoint answers at all: nothing on S3 can be read, so verify stops."""


def unreachable(err: BaseException | None) -> Unreachable | None:
    """When ``err`` (an input's error) says that the S3 endpoint does not answer at all (the
    connection refused, its host name unknown), the error that stops verify; else None (a
    missing, damaged or forbidden file is a problem to report, and verify goes on).

    Told by the operating system's own error at the root of ``err``'s chain (``imgfmt.s3``
    wraps botocore's, which wraps it), so no SDK is imported here.
    """
    if isinstance(err, Unreachable):
        return err
    wrapped = False
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        wrapped = wrapped or (isinstance(err, StorageError) and s3.is_s3(err.path))
        if wrapped and isinstance(err, ConnectionRefusedError):
            why = "connection refused"
        elif wrapped and isinstance(err, socket.gaierror):
            why = "its host name is not found"
        else:
            err = err.__cause__ or err.__context__
            continue
        environment = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        url = s3.settings().endpoint_url or environment
        if not url:
            return Unreachable(f"cannot reach AWS S3: {why}", hint="check the network")
        parts = urlsplit(url)  # scheme and host only: never a path or a query string
        return Unreachable(
            f"cannot reach the S3 endpoint {parts.scheme}://{parts.netloc}: {why}",
            hint="check --endpoint-url",
        )
    return None


def _stop_if_unreachable(err: StorageError) -> None:
    if isinstance(err, Unreachable):
        return  # raised by ``unreachable`` already: the caller re-raises it
    stop = unreachable(err)
    if stop is not None:
        raise stop from err


__all__ = [
    "DEFAULT_MAX_PROBLEMS",
    "FileReport",
    "Problem",
    "Report",
    "Unreachable",
    "input_kind",
    "verify",
]

"""The verify command: check datasets, list every problem with its location."""

from __future__ import annotations

import os
from typing import Any

import click

from imgfmt.cli._common import (
    EXIT_PROBLEMS,
    FILE,
    FOLDER,
    Location,
    emit,
    engine_options,
    json_option,
    make_engine,
    progress,
    root_for,
    spool_stdin,
    workers_option,
)
from imgfmt.text import count_of

#: Mirrors ``imgfmt.ops.verify.DEFAULT_MAX_PROBLEMS`` (not imported: ``--help`` stays fast).
DEFAULT_MAX_PROBLEMS = 100


class VerifiablePath(Location):
    """A path whose extension verify understands; anything else is a usage error (exit 2).

    Whether the file exists is not checked here: a missing input is a problem in the
    report, so the other inputs are still verified.
    """

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from imgfmt.errors import UsageError
        from imgfmt.ops.verify import input_kind

        path = os.fspath(value)
        if path == "-" and ctx is not None:  # a list on standard input
            return spool_stdin(ctx, ".lst", self, param)
        try:
            input_kind(path)
        except UsageError as err:
            self.fail(str(err), param, ctx)
        return path


def _count_text(checked: dict[str, int]) -> str:
    parts = [count_of(n, name.replace("_", " ")) for name, n in checked.items() if name != "bytes"]
    return ", ".join(parts) or "nothing readable"


def _local_bytes(paths: tuple[str, ...]) -> int | None:
    """What verify reads of ``paths``, for the progress bar's total: local sizes (None when
    an input is on S3: a HEAD request each is not worth a bar)."""
    total = 0
    for path in paths:
        if path.startswith("s3://"):
            return None
        try:
            total += os.path.getsize(path)
        except OSError:
            pass
    return total


@click.command("verify", short_help="Check datasets and lists; every problem with its place.")
@click.argument("paths", nargs=-1, required=True, type=VerifiablePath(), metavar="PATH...")
@click.option("--decode", is_flag=True, help="Also decode every image (uses all cores).")
@click.option(
    "--root",
    default=None,
    metavar="PATH",
    type=FOLDER,
    help="Folder the .lst paths are relative to (default: the list's folder).",
)
@click.option(
    "--classes",
    "class_map",
    default=None,
    metavar="PATH",
    type=FILE,
    help="Class map (label<TAB>name) to check labels against; default: found beside PATH.",
)
@click.option(
    "--fix-idx",
    is_flag=True,
    help="Rebuild a missing or wrong .idx from its .rec (as rec2idx), then check it.",
)
@click.option(
    "--max-problems",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_PROBLEMS,
    show_default=True,
    metavar="N",
    help="List at most N problems (all are counted).",
)
@workers_option
@engine_options("one task per file, many files at once")
@json_option
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    paths: tuple[str, ...],
    decode: bool,
    root: str | None,
    class_map: str | None,
    fix_idx: bool,
    max_problems: int,
    workers: int | None,
    engine: str,
    ray_address: str | None,
    as_json: bool,
) -> None:
    """Check .rec/.idx, .lst, manifest, JSON Lines and RecordIO-protobuf files;
    list every problem with the record or line and byte offset where it is,
    then totals.

    A damaged .rec is not the end: verify resynchronises on the next record
    head and keeps checking. Exit status 0 when clean, 1 when any problem was
    found, 2 for usage errors.

    \b
    Examples:
      imgfmt verify data/train.rec data/val.rec --decode
      imgfmt verify data/train.lst --root photos/
      imgfmt verify data/train.rec --fix-idx --json
      imgfmt verify data/test.jsonl data/digits.rec --decode
      imgfmt verify out/train-*-of-*.rec --decode --engine ray
    """
    from imgfmt.ops.verify import verify

    with progress(ctx, "verifying", "B", _local_bytes(paths)) as (_set_total, advance):
        report = verify(
            list(paths),
            decode=decode,
            root=root_for(ctx, root),
            classes=class_map,
            fix_idx=fix_idx,
            workers=workers,
            max_problems=max_problems,
            on_progress=advance,
            engine=make_engine(engine, ray_address),
        )
    human = [str(problem) for problem in report.problems]
    hidden = report.problem_count - len(report.problems)
    if hidden:
        human.append(f"... and {hidden} more problems (raise --max-problems to list them)")
    human.extend(f"{file.path}: {note}" for file in report.files for note in file.notes)
    by_check = ", ".join(f"{name} {n}" for name, n in sorted(report.problems_by_check.items()))
    count = report.problem_count
    outcome = f"{count} problem{'s' * (count != 1)} ({by_check})" if count else "no problems"
    files = f"{len(report.files)} file{'s' * (len(report.files) != 1)}"
    human.append(f"checked {files}: {_count_text(report.checked)}: {outcome}")
    emit(as_json, report.to_dict(), "\n".join(human))
    if not report.ok:
        ctx.exit(EXIT_PROBLEMS)

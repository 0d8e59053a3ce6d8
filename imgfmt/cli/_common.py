"""What every command shares: global settings, common options, output and progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status of a run that finished but skipped items or found problems.
EXIT_PROBLEMS = 1
#: Exit status after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def parsed_by(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An option callback that parses the value with a library function (imported lazily,
    by name, so ``--help`` stays fast) and reports its ``UsageError`` as a bad option value
    (exit 2)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        from imgfmt.errors import UsageError

        try:
            return parse(value)
        except UsageError as err:
            raise click.BadParameter(err.reason, ctx=ctx, param=param) from err

    return callback


def lazy(module: str, name: str) -> Callable[[str], Any]:
    """``imgfmt.<module>.<name>``, imported on first call."""

    def call(value: str) -> Any:
        import importlib

        return getattr(importlib.import_module(f"imgfmt.{module}"), name)(value)

    return call


def _parse_exts(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    exts = tuple(
        e if e.startswith(".") else f".{e}"
        for e in (part.strip().lower() for part in value.split(","))
        if e
    )
    if not exts:
        raise click.BadParameter("give at least one extension, e.g. .jpg,.png", ctx, param)
    return exts


def exts_option(f: F) -> F:
    """``--exts``: which files are images when a folder is listed (lst-gen's rule)."""
    return click.option(
        "--exts",
        default=".jpeg,.jpg,.png",
        show_default=True,
        callback=_parse_exts,
        help="Extensions to list, comma-separated (case-insensitive; the dot is optional).",
    )(f)


class Settings:
    """Global flags, shared with every command through the Click context."""

    def __init__(self, verbose: int = 0, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        #: The command was given --json: stdout must hold one JSON object, whatever happens.
        self.as_json = False
        #: Where that object goes (``predictions -o -`` keeps stdout for its CSV).
        self.json_to_stderr = False
        #: It was printed already.
        self.json_done = False


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    settings = ctx.find_object(Settings)
    if settings is not None and value:
        settings.as_json = True
    return value


def json_option(func: F) -> F:
    """``--json``: one JSON object on stdout, also when the command fails after it started
    (then with ``error`` and ``exit_code``; see ``imgfmt.cli.ImgfmtGroup``)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        is_eager=True,  # known before any other option's value can fail
        callback=_remember_json,
        help="Print one JSON object on stdout for scripts (with an error field on failure).",
    )(func)


def echo_json(ctx: click.Context, obj: dict[str, Any]) -> None:
    """Print the command's one JSON object (once)."""
    settings = ctx.find_object(Settings)
    to_stderr = bool(settings and settings.json_to_stderr)
    if settings is not None:
        settings.json_done = True
    click.echo(json.dumps(obj, ensure_ascii=False), err=to_stderr)


def workers_option(func: F) -> F:
    return click.option(
        "-j",
        "--workers",
        "--num-thread",
        "workers",
        type=click.IntRange(min=1),
        default=None,
        help="Parallel workers (im2rec's --num-thread). Default: all cores.",
    )(func)


def engine_options(what: str) -> Callable[[F], F]:
    """``--engine`` and ``--ray-address``; the command gets ``engine``, an engine name or
    object for the library (``imgfmt.engines.get``)."""

    def decorate(func: F) -> F:
        func = click.option(
            "--ray-address",
            default=None,
            metavar="ADDR",
            envvar="RAY_ADDRESS",
            help="The Ray cluster (ray://head:10001, or head:6379 on one of its nodes; env "
            "RAY_ADDRESS). Default: a local cluster started for the run.",
        )(func)
        return click.option(
            "--engine",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help=f"Where the work runs: this machine, or a Ray cluster ({what}; pip install "
            '"imgfmt[ray]"). Same results either way.',
        )(func)

    return decorate


def make_engine(engine: str, ray_address: str | None) -> Any:
    """The engine ``--engine`` and ``--ray-address`` name (the address counts for ray only:
    RAY_ADDRESS may be set for other programs)."""
    from imgfmt import engines

    return engines.get(engine, ray_address if engine == "ray" else None)


def emit(as_json: bool, summary: dict[str, Any], human: str) -> None:
    """Print the run's summary: one JSON object with ``--json``, else the human text."""
    if as_json:
        echo_json(click.get_current_context(), summary)
    else:
        click.echo(human)


@contextmanager
def progress(
    ctx: click.Context, unit: str = "img"
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """``(set_total, advance)`` callbacks driving a tqdm bar on a terminal, or nothing."""
    settings = ctx.find_object(Settings)
    if (settings and settings.quiet) or not sys.stderr.isatty():
        yield (lambda _n: None), (lambda _n: None)
        return
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked later
    bar = tqdm(unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)
    try:

        def set_total(total: int) -> None:
            bar.total = total
            bar.refresh()

        yield set_total, bar.update
    finally:
        bar.close()


def count_of(n: int, plural: str) -> str:
    """``3 records``, ``1 record``, ``1 index entry``, ``1 image decoded``: the last word in
    ``s`` of ``plural`` is made singular for 1."""
    if n != 1:
        return f"{n} {plural}"
    words = plural.split(" ")
    for i in range(len(words) - 1, -1, -1):
        word = words[i]
        if word.endswith("ies"):
            words[i] = word[:-3] + "y"
            break
        if word.endswith("s") and not word.endswith("ss"):
            words[i] = word[:-1]
            break
    return f"1 {' '.join(words)}"


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"

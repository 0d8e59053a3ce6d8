"""What every command shares: global settings, common options, output and progress."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status of a failure (nothing written), and of a check (verify, stats) that found
#: problems.
EXIT_PROBLEMS = 1
#: Exit status of a run that completed and wrote its outputs, but skipped damaged or
#: unreadable items (each named on stderr, also with ``-q``); ``--allow-skip`` makes it 0.
EXIT_SKIPPED = 3
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
        metavar="EXTS",
        show_default=True,
        callback=_parse_exts,
        help="Extensions to list, comma-separated (case-insensitive; the dot is optional).",
    )(f)


class Location(click.ParamType):
    """A local path or an ``s3://`` URI, passed on as given (the library checks it), or
    ``-`` where one stream fits: ``stdin=".lst"`` reads standard input as such a file (saved
    first to a temporary file, as commands may read an input twice), ``stdout`` passes ``-``
    on for the library to write standard output; anywhere else ``-`` is a usage error
    (``no_stream`` says why), never a file named ``-``.

    Shell completion offers local files (``kind="file"``) or folders (``"dir"``); an
    ``s3://`` URI is left alone (listing a bucket on TAB would be slow and may cost)."""

    name = "path"

    def __init__(
        self,
        kind: str = "file",
        *,
        stdin: str | None = None,
        stdout: bool = False,
        no_stream: str = "it names a file to read or write, not a stream",
    ) -> None:
        self.kind, self.stdin, self.stdout, self.no_stream = kind, stdin, stdout, no_stream

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        value = os.fspath(value) if isinstance(value, os.PathLike) else value
        if value != "-" or self.stdout:
            return value
        if self.stdin is not None and ctx is not None:
            return spool_stdin(ctx, self.stdin, self, param)
        what = param.human_readable_name if param is not None else "this"
        self.fail(f"'-' (standard input or output) does not fit {what}: {self.no_stream}; "
                  "give a path", param, ctx)  # fmt: skip

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[Any]:
        from click.shell_completion import CompletionItem

        if incomplete.startswith("s3:"):
            return []
        return [CompletionItem(incomplete, type=self.kind)]


#: ``ctx.meta`` key: an input of the command was read from standard input.
FROM_STDIN = "imgfmt.stdin"


def spool_stdin(ctx: click.Context, ext: str, kind: Location, param: click.Parameter | None) -> str:
    import shutil
    import tempfile

    if ctx.meta.get(FROM_STDIN):
        kind.fail("standard input can be read once: give the other inputs as paths", param, ctx)
    folder = tempfile.mkdtemp(prefix="imgfmt-stdin-")
    ctx.call_on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    path = os.path.join(folder, "stdin" + ext)
    stdin = sys.stdin.buffer
    with open(path, "wb") as out:
        shutil.copyfileobj(stdin, out)
    ctx.meta[FROM_STDIN] = True
    return path


def root_for(ctx: click.Context, root: str | None) -> str | None:
    """The ``--root`` to use: a list read from standard input is relative to the current
    folder unless ``--root`` says otherwise (its own folder is a temporary one)."""
    return "." if root is None and ctx.meta.get(FROM_STDIN) else root


#: Arguments and options that name a file or a folder. ``-`` is standard input for a list
#: or manifest read, standard output for a list, manifest or CSV written.
FILE = Location("file")
FOLDER = Location("dir", no_stream="it names a folder")
LIST_IN = Location("file", stdin=".lst")
MANIFEST_IN = Location("file", stdin=".manifest")
PREDICTIONS_IN = Location("file", stdin=".out")
OUTPUT_FILE = Location("file", stdout=True)
DATASET_OUT = Location("file", no_stream="a dataset is written whole, with its index or shards")
IMAGE_OUT = Location("file", no_stream="an image file is written whole")
SPLIT_OUT = Location("file", no_stream="split writes several files (OUT_PREFIX_train, _val, ...)")


def filter_options(func: F) -> F:
    """``--include`` and ``--exclude``: glob patterns choosing the files of a folder that is
    listed; the command gets both (``path_filter`` makes the library's filter of them)."""

    func = click.option(
        "--exclude",
        multiple=True,
        metavar="PATTERN",
        help="Leave out the files whose path under the folder matches PATTERN (a glob: "
        "'*/tmp/*', '*.png'); repeatable; wins over --include.",
    )(func)
    return click.option(
        "--include",
        multiple=True,
        metavar="PATTERN",
        help="List only the files whose path under the folder matches PATTERN (a glob: "
        "'cat/*', '*_2024*'); repeatable.",
    )(func)


def path_filter(include: tuple[str, ...], exclude: tuple[str, ...]) -> Any:
    """The library's filter for ``--include``/``--exclude`` (None for neither)."""
    if not include and not exclude:
        return None
    from imgfmt.formats.lst import PathFilter

    return PathFilter(tuple(include), tuple(exclude))


class Settings:
    """Global flags, shared with every command through the Click context."""

    def __init__(self, verbose: int = 0, quiet: bool = False, no_progress: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        #: No progress bar, warnings kept (``-q`` hides both).
        self.no_progress = no_progress
        #: The command was given --json: stdout must hold one JSON object, whatever happens.
        self.as_json = False
        #: Where that object goes (``predictions -o -`` keeps stdout for its CSV).
        self.json_to_stderr = False
        #: It was printed already.
        self.json_done = False


def configure_logging(verbose: int, quiet: bool) -> None:
    """imgfmt's log on stderr: warnings (skipped items, decoder remarks) by default, errors
    only with ``-q``, everything with ``-v``."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("imgfmt")
    logger.handlers[:] = [handler]
    logger.propagate = False
    from imgfmt.ops.outcomes import SKIPPED

    logger.setLevel(SKIPPED if quiet else logging.DEBUG if verbose else logging.WARNING)
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(SKIPPED, "warning")
    logging.addLevelName(logging.ERROR, "error")


#: The S3 settings a global option names.
_S3_OPTIONS = ("profile", "region", "endpoint_url")


def _take_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the command: it counts as if given before it."""
    if value in (None, False, 0):
        return
    settings = ctx.ensure_object(Settings)
    name = param.name
    if name == "verbose":
        settings.verbose += value
    elif name in ("quiet", "no_progress"):
        setattr(settings, name, True)
    elif name in _S3_OPTIONS:
        from imgfmt import s3

        s3.configure(**{name: value})
    configure_logging(settings.verbose, settings.quiet)


def global_options(*, after_command: bool) -> list[click.Option]:
    """The options every command takes, before the command (on the group) or after it (on
    each command, as the AWS CLI does): ``-v``, ``-q``, ``--no-progress``, ``--profile``,
    ``--region``, ``--endpoint-url``, and what objects written to S3 carry: ``--sse``,
    ``--sse-kms-key-id``, ``--storage-class``, ``--acl``, ``--request-payer``."""
    from imgfmt import s3  # light: boto3 is imported by the first S3 request

    extra: dict[str, Any] = (
        {"expose_value": False, "callback": _take_global} if after_command else {}
    )
    object_options = ("sse", "sse_kms_key_id", "storage_class", "acl", "request_payer")

    def take_object_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        # Gathered from both places (the group reports each, None when not given; after the
        # command a given value wins), then set together once the command has reported all
        # of them: --sse and --sse-kms-key-id are checked as a pair wherever each was given,
        # and a previous run's values never linger.
        if ctx.resilient_parsing:  # shell completion
            return
        wanted = ctx.meta.setdefault("imgfmt.s3_object_options", {})
        if not after_command or value is not None:
            wanted[param.name] = value
        if not after_command:
            return
        reported = ctx.meta.setdefault("imgfmt.s3_object_options_reported", set())
        reported.add(param.name)
        if len(reported) < len(object_options):
            return
        import re

        from imgfmt.errors import UsageError

        try:
            s3.configure(**wanted)
        except UsageError as err:  # `sse_kms_key_id` -> --sse-kms-key-id
            flags = re.sub(r"`([a-z_]+)`", lambda m: "--" + m[1].replace("_", "-"), str(err))
            raise click.UsageError(flags, ctx) from err

    s3_extra: dict[str, Any] = {"expose_value": False, "callback": take_object_option}
    return [
        click.Option(["-v", "--verbose"], count=True, help="More detail; tracebacks on errors.",
                     **extra),
        click.Option(["-q", "--quiet"], is_flag=True, help="Only errors on stderr: no progress "
                     "bar, no warnings (skipped items are still named).", **extra),
        click.Option(["--no-progress"], is_flag=True, help="No progress bar (warnings kept).",
                     envvar="IMGFMT_NO_PROGRESS", **extra),
        click.Option(["--profile"], metavar="NAME", help="AWS profile for s3:// paths "
                     "(default: AWS_PROFILE, else boto3's usual chain).", **extra),
        click.Option(["--region"], metavar="REGION", help="AWS region for s3:// paths.",
                     **extra),
        click.Option(["--endpoint-url"], metavar="URL", help="S3-compatible endpoint, e.g. "
                     "http://localhost:9000 for MinIO (default: AWS_ENDPOINT_URL, else AWS).",
                     **extra),
        click.Option(["--sse"], type=click.Choice(s3.SSE_ALGORITHMS), help="Server-side "
                     "encryption of the objects written to S3 (default: the bucket's).",
                     **s3_extra),
        click.Option(["--sse-kms-key-id"], metavar="KEY", help="KMS key (id, ARN or alias) "
                     "for --sse aws:kms (default: the account's aws/s3 key).", **s3_extra),
        click.Option(["--storage-class"], type=click.Choice(s3.STORAGE_CLASSES),
                     metavar="CLASS", help="Storage class of the objects written to S3: "
                     f"{', '.join(s3.STORAGE_CLASSES)} (default: STANDARD).", **s3_extra),
        click.Option(["--acl"], type=click.Choice(s3.CANNED_ACLS), metavar="ACL",
                     help="Canned ACL of the objects written to S3, e.g. "
                     "bucket-owner-full-control.", **s3_extra),
        click.Option(["--request-payer"], type=click.Choice(s3.REQUEST_PAYERS), help="Pay "
                     "for the requests (reads and writes) to a Requester Pays bucket.",
                     **s3_extra),
    ]  # fmt: skip


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
        metavar="N",
        envvar="IMGFMT_WORKERS",
        help="Parallel workers (im2rec's --num-thread; env IMGFMT_WORKERS). Default: all cores.",
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


def exit_skipped(ctx: click.Context, count: int, what: str, allow_skip: bool) -> None:
    """End a run that completed but skipped ``count`` items (``what``: "image was/images
    were"): exit status 3 and one line saying so, unless ``allow_skip``."""
    if not count or allow_skip:
        return
    settings = ctx.find_object(Settings)
    if not (settings and settings.as_json):
        singular, plural = what.split("/")
        click.echo(
            f"imgfmt: {count} {singular if count == 1 else plural} skipped (named above); the "
            "outputs hold every other one (exit status 3; --allow-skip makes it 0)",
            err=True,
        )
    ctx.exit(EXIT_SKIPPED)


def emit(as_json: bool, summary: dict[str, Any], human: str, to_stderr: bool = False) -> None:
    """Print the run's summary: one JSON object with ``--json``, else the human text (on
    stderr when stdout holds the output itself)."""
    if as_json:
        echo_json(click.get_current_context(), summary)
    else:
        click.echo(human, err=to_stderr)


@contextmanager
def progress(
    ctx: click.Context, label: str, unit: str = "img", total: int | None = None
) -> Iterator[tuple[Callable[[int], None] | None, Callable[[int], None]]]:
    """``(set_total, advance)`` callbacks driving a progress bar on stderr: ``label`` (what
    is being done), a count or bytes (``unit="B"``: in kB/MB/GB) against ``total`` when
    known (then with an ETA), and the rate. Only on a terminal, and not with ``-q`` or
    ``--no-progress``; without a bar ``set_total`` is None, so that no operation does work
    (read an index) only to size a bar nobody sees."""
    settings = ctx.find_object(Settings)
    hidden = settings is not None and (settings.quiet or settings.no_progress)
    if hidden or not sys.stderr.isatty():
        yield None, (lambda _n: None)
        return
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked later
    in_bytes = unit == "B"
    bar = tqdm(
        desc=label,
        unit=unit,
        unit_scale=in_bytes,
        unit_divisor=1000,
        total=total,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )
    try:

        def set_total(count: int) -> None:
            bar.total = count
            bar.refresh()

        yield set_total, bar.update
    finally:
        bar.close()


#: The first line of a dry run's summary, so that no one takes it for a run's.
DRY_RUN_HEADER = "dry run: nothing written"


def dry_run_option(func: F) -> F:
    """``--dry-run``: the command's checks, then what it would write instead of writing."""
    return click.option(
        "--dry-run",
        is_flag=True,
        help="Make every check, then say what would be written (each output, how many "
        "images) instead of writing: no file, folder or upload is made.",
    )(func)


def planned_folders(folders: list[str]) -> list[str]:
    """A dry run's lines for the folders the run would create."""
    return [f"would create folder {folder}" for folder in folders]

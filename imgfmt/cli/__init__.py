"""The ``imgfmt`` command line: parse, make one library call, print a summary.

One module per command family (``lists``, ``records``, ...); this module holds the
group, the global options and the error boundary.

Exit codes: 0 success; 1 an error, or a run that skipped or found problems;
2 a usage error; 130 interrupted. Heavy modules (Pillow, numpy, boto3) are imported
inside the commands, so ``imgfmt --help`` starts fast.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import traceback
from typing import Any

import click

from imgfmt.cli._common import EXIT_INTERRUPTED, Settings, configure_logging, global_options
from imgfmt.cli.completion import completion_cmd
from imgfmt.cli.insight import preview_cmd, stats_cmd
from imgfmt.cli.lists import lst_gen
from imgfmt.cli.manifests import manifest_gen, manifest_to_lst
from imgfmt.cli.predictions import predictions_cmd
from imgfmt.cli.records import convert_cmd, pack_cmd, unpack_cmd
from imgfmt.cli.split import split_cmd
from imgfmt.cli.verify import verify_cmd
from imgfmt.errors import ImgfmtError, UsageError


class ImgfmtGroup(click.Group):
    """Turns the library's errors into one ``Error: ...`` line (a traceback with ``-v``), and,
    for a command given ``--json``, into its one JSON object: ``{"error": ..., "exit_code":
    ...}`` plus what the run had done (an error's ``details``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """In the order they were added (related ones together), not alphabetical."""
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        from imgfmt import s3

        try:
            with s3.remembering_sizes():  # one command, one HeadObject per key
                return super().invoke(ctx)
        except UsageError as err:
            # A bad combination of options or arguments, found by the library: one line, exit 2.
            _traceback_if_verbose(ctx)
            message = self._as_flags(ctx, str(err))
            _json_error(ctx, message, 2)
            raise click.UsageError(message) from err
        except ImgfmtError as err:
            _traceback_if_verbose(ctx)
            _json_error(ctx, err, 1)
            raise click.ClickException(str(err)) from err
        except KeyboardInterrupt:
            _json_error(ctx, "interrupted", EXIT_INTERRUPTED)
            click.echo("Interrupted; no partial output was left at the destination.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except click.UsageError as err:
            _json_error(ctx, err.format_message(), err.exit_code)
            raise
        except click.ClickException as err:
            _json_error(ctx, err.format_message(), err.exit_code)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # `imgfmt ... - | head -1`: the reader has all it wants. Not an error (exit 0, no
            # message); what is still buffered for stdout goes nowhere at exit.
            _silence_stdout()
            ctx.exit(0)
        except OSError as err:
            # The library wraps what it expects; anything else still gets one line.
            from imgfmt.storage import describe_os_error

            _traceback_if_verbose(ctx)
            where = f"{err.filename}: " if err.filename else ""
            message = f"{where}{describe_os_error(err)}"
            _json_error(ctx, message, 1)
            raise click.ClickException(message) from err
        except Exception as err:
            _traceback_if_verbose(ctx)
            message = (
                f"internal error: {type(err).__name__}: {err} (a bug in imgfmt; rerun with -v "
                "and report the traceback)"
            )
            _json_error(ctx, message, 1)
            raise click.ClickException(message) from err

    def _as_flags(self, ctx: click.Context, text: str) -> str:
        """The library names parameters in backticks (`pass_through`); say them as the
        invoked command's flags (--pass-through)."""
        command = self.get_command(ctx, ctx.invoked_subcommand or "")
        flags: dict[str, str] = {}
        for param in command.params if command else []:
            longest = max(param.opts, key=len)
            if param.name and longest.startswith("--"):
                flags[param.name] = longest
        flags.setdefault("fmt", "--format")
        return re.sub(r"`([a-z_]+)`", lambda m: flags.get(m[1], m[1]), text)


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind stdout (a test runner's)
        pass
    finally:
        os.close(devnull)


def _json_error(ctx: click.Context, err: ImgfmtError | str, exit_code: int) -> None:
    """With ``--json`` and no JSON printed yet: the failure as the command's JSON object."""
    settings = ctx.find_object(Settings)
    if settings is None or not settings.as_json or settings.json_done:
        return
    from imgfmt.cli._common import echo_json

    details = dict(getattr(err, "details", None) or {})
    echo_json(ctx, {**details, "error": str(err), "exit_code": exit_code})


def _traceback_if_verbose(ctx: click.Context) -> None:
    settings = ctx.find_object(Settings)
    if settings is not None and settings.verbose:
        traceback.print_exc()


@click.group(
    cls=ImgfmtGroup,
    context_settings={
        "help_option_names": ["-h", "--help"],
        # Every option's default may come from IMGFMT_<COMMAND>_<OPTION> (IMGFMT_PACK_RESIZE),
        # a global one's from IMGFMT_<OPTION> (IMGFMT_QUIET); -j also from IMGFMT_WORKERS.
        "auto_envvar_prefix": "IMGFMT",
        "max_content_width": 100,
    },
    params=global_options(after_command=False),
)
@click.version_option(package_name="imgfmt")
@click.pass_context
def cli(
    ctx: click.Context,
    verbose: int,
    quiet: bool,
    no_progress: bool,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
) -> None:
    """Turn image folders into training-ready formats (im2rec .lst, MXNet
    RecordIO .rec/.idx, SageMaker manifests) and back. Every path may also be
    an s3://bucket/key URI (a prefix stands for a folder). The options below
    work before or after the command.

    \b
    Quick start:
      imgfmt lst-gen photos/ data/photos --recursive --train-ratio 0.9
      imgfmt pack data/photos_train.lst data/train.rec --root photos/ --resize 256
      imgfmt unpack data/train.rec unpacked/
      imgfmt pack s3://bkt/photos s3://bkt/all.rec --endpoint-url http://localhost:9000
    """
    from imgfmt import s3  # boto3 itself is imported only by the first S3 request

    ctx.obj = Settings(verbose, quiet, no_progress)
    s3.configure(profile=profile, region=region, endpoint_url=endpoint_url)  # the one holder
    configure_logging(verbose, quiet)


# One line per command; keep them in the order `imgfmt --help` should show related ones.
cli.add_command(lst_gen)
cli.add_command(pack_cmd)
cli.add_command(unpack_cmd)
cli.add_command(convert_cmd)
cli.add_command(manifest_gen)
cli.add_command(manifest_to_lst)
cli.add_command(split_cmd)
cli.add_command(verify_cmd)
cli.add_command(predictions_cmd)
cli.add_command(stats_cmd)
cli.add_command(preview_cmd)
cli.add_command(completion_cmd)
for _command in cli.commands.values():
    _command.params.extend(global_options(after_command=True))


def _terminate(signum: int, _frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed on the way out.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    cli.main(args=argv, prog_name="imgfmt")


__all__ = ["cli", "main"]

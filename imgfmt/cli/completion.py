"""The completion command: the shell script that makes TAB complete imgfmt's commands,
options, choices and local paths."""

from __future__ import annotations

import click

#: The environment variable Click's completion scripts call imgfmt back with.
COMPLETE_VAR = "_IMGFMT_COMPLETE"

SETUP = {
    "bash": 'eval "$(imgfmt completion bash)"   # in ~/.bashrc',
    "zsh": 'eval "$(imgfmt completion zsh)"    # in ~/.zshrc',
    "fish": "imgfmt completion fish | source    # in ~/.config/fish/config.fish",
}


@click.command("completion", short_help="Print the shell script for TAB completion.")
@click.argument("shell", type=click.Choice(sorted(SETUP)))
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the script that makes TAB complete imgfmt's commands, options,
    option values (formats, engines, ...) and local files and folders (s3://
    URIs are left alone). Load it from your shell's start-up file.

    \b
    Examples:
      eval "$(imgfmt completion bash)"      # in ~/.bashrc
      eval "$(imgfmt completion zsh)"       # in ~/.zshrc
      imgfmt completion fish | source       # in ~/.config/fish/config.fish
    """
    from click.shell_completion import get_completion_class

    root = ctx.find_root().command
    completer = get_completion_class(shell)
    assert completer is not None  # every choice has one
    click.echo(completer(root, {}, "imgfmt", COMPLETE_VAR).source())

"""The command line as shell users expect it: options anywhere, help that names what each
option takes, exit codes that tell outcomes apart, pipes, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import make_tree

from imgfmt.cli import cli

#: Metavars that say a type, not what the value is.
GENERIC_METAVARS = {"TEXT", "INTEGER", "FLOAT", "INTEGER RANGE", "FLOAT RANGE", "FILENAME"}


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_option_has_help_a_telling_metavar_and_shows_its_default(name: str) -> None:
    command = cli.commands[name]
    ctx = click.Context(command)
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        assert param.help, f"{name} {param.opts}: no help text"
        if param.is_flag or param.count:
            continue
        metavar = param.make_metavar(ctx).split("[")[0].strip()
        assert metavar not in GENERIC_METAVARS, f"{name} {param.opts}: {metavar}"
        default = param.default if isinstance(param.default, (int, float, str)) else None
        if default not in (None, "") and not param.show_default:
            raise AssertionError(f"{name} {param.opts}: default {default!r} not shown")


def test_the_command_list_gives_each_command_a_whole_line() -> None:
    out = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
    listing = out.split("Commands:", 1)[1].splitlines()
    for name in cli.commands:
        (line,) = [entry for entry in listing if entry.strip().startswith(name + " ")]
        assert not line.rstrip().endswith("..."), line


def test_global_options_work_before_or_after_the_command(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2, "b": 2})
    for args in (
        ["-q", "pack", str(photos), str(tmp_path / "1.rec")],
        ["pack", str(photos), str(tmp_path / "2.rec"), "-q"],
        ["pack", str(photos), str(tmp_path / "3.rec"), "--profile", "none", "--region", "x"],
        ["pack", str(photos), str(tmp_path / "4.rec"), "-v", "--no-progress"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
    assert (tmp_path / "1.rec").read_bytes() == (tmp_path / "4.rec").read_bytes()


def test_endpoint_url_after_the_command_reaches_s3(s3, tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2})
    args = ["pack", str(photos), s3.uri("x.rec"), "--endpoint-url", s3.endpoint]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert s3.keys() == ["x.classes.tsv", "x.idx", "x.lst", "x.rec"]


def test_option_defaults_come_from_the_environment(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2})
    env = {"IMGFMT_PACK_RESIZE": "16", "IMGFMT_WORKERS": "1"}
    result = CliRunner().invoke(cli, ["pack", str(photos), str(tmp_path / "x.rec"), "--json"],
                                env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    from PIL import Image

    unpacked = CliRunner().invoke(cli, ["unpack", str(tmp_path / "x.rec"), str(tmp_path / "u")])
    assert unpacked.exit_code == 0, unpacked.output
    image = Image.open(next((tmp_path / "u" / "a").iterdir()))
    assert min(image.size) == 16


def _run(
    *args: str, stdin: bytes | None = None, shell: str | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    if shell is not None:
        return subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                              env=env, timeout=120)  # fmt: skip
    return subprocess.run([sys.executable, "-m", "imgfmt", *args], input=stdin,
                          capture_output=True, env=env, timeout=120)  # fmt: skip


def test_a_reader_closing_the_pipe_is_not_an_error(tmp_path: Path) -> None:
    lst = tmp_path / "big.lst"
    lst.write_text("".join(f"{i}\t{i % 3}\tc{i % 3}/{i}.jpg\n" for i in range(20000)))
    imgfmt = f"{sys.executable} -m imgfmt"
    done = _run(shell=f"{imgfmt} manifest-gen {lst} - --s3-prefix s3://b/p | head -1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert json.loads(done.stdout)["source-ref"] == "s3://b/p/c0/0.jpg"


def test_exit_codes_tell_success_skips_failure_usage_apart(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2})
    out = tmp_path / "x.rec"
    assert _run("pack", str(photos), str(out)).returncode == 0
    (photos / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    skipped = _run("-q", "pack", str(photos), str(out))
    assert skipped.returncode == 3 and out.exists()
    # With -q the skipped file is still named: the one warning, and the reason for status 3.
    lines = skipped.stderr.decode().splitlines()
    assert lines[0].startswith("warning: skipped ") and "bad.jpg" in lines[0]
    assert "exit status 3" in lines[1]
    assert _run("pack", str(photos), str(out), "--allow-skip").returncode == 0
    assert _run("pack", str(tmp_path / "none"), str(out)).returncode == 1
    assert _run("pack", str(photos), str(out), "--resize", "-3").returncode == 2


def _complete(*words: str) -> list[tuple[str, str]]:
    """What TAB offers after ``imgfmt WORDS`` (the last word is the one being typed), as
    Click's bash script asks for it: ``(type, value)`` pairs."""
    env = {"COMP_WORDS": " ".join(("imgfmt", *words)), "COMP_CWORD": str(len(words)),
           "_IMGFMT_COMPLETE": "bash_complete"}  # fmt: skip
    result = CliRunner().invoke(cli, [], env=env, prog_name="imgfmt")
    lines = [line for line in result.output.splitlines() if line]
    return [tuple(line.split(",", 1)) for line in lines]  # type: ignore[misc]


def test_tab_completes_files_folders_choices_and_leaves_s3_alone() -> None:
    # "file" and "dir" tell the shell's script to list local files (compopt -o default) or
    # folders (-o dirnames) itself.
    assert _complete("pack", "dat") == [("file", "dat")]
    assert _complete("unpack", "x.rec", "ou") == [("dir", "ou")]
    assert _complete("pack", "x.lst", "y.rec", "--root", "ph") == [("dir", "ph")]
    assert _complete("pack", "s3://bucket/pho") == []
    assert ("plain", "recordio-protobuf") in _complete("convert", "a.rec", "b", "--format", "")
    assert ("plain", "--engine") in _complete("pack", "--eng")
    assert ("plain", "stats") in _complete("st")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script_for_each_shell(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0 and "_IMGFMT_COMPLETE" in result.output
    assert CliRunner().invoke(cli, ["completion", "tcsh"]).exit_code == 2


def test_dash_is_stdin_for_a_list_and_stdout_for_a_list(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 3, "b": 2})
    runner = CliRunner()
    listed = runner.invoke(cli, ["lst-gen", str(photos), "-", "--recursive"])
    assert listed.exit_code == 0, listed.output
    assert len(listed.stdout.splitlines()) == 5  # the list alone; the summary is on stderr
    assert "to stdout" in listed.stderr
    files = runner.invoke(cli, ["lst-gen", str(photos), str(tmp_path / "p"), "--recursive"])
    assert files.exit_code == 0
    assert listed.stdout == (tmp_path / "p.lst").read_text()
    piped = runner.invoke(cli, ["pack", "-", str(tmp_path / "a.rec"), "--root", str(photos)],
                          input=listed.stdout)  # fmt: skip
    assert piped.exit_code == 0, piped.output
    direct = runner.invoke(cli, ["pack", str(tmp_path / "p.lst"), str(tmp_path / "b.rec"),
                                 "--root", str(photos)])  # fmt: skip
    assert direct.exit_code == 0
    assert (tmp_path / "a.rec").read_bytes() == (tmp_path / "b.rec").read_bytes()
    verified = runner.invoke(cli, ["verify", "-", "--root", str(photos), "--decode"],
                             input=listed.stdout)  # fmt: skip
    assert verified.exit_code == 0 and "5 images decoded" in verified.stdout
    manifest = runner.invoke(cli, ["manifest-gen", "-", "-", "--s3-prefix", "s3://b/p"],
                             input=listed.stdout)  # fmt: skip
    assert manifest.exit_code == 0 and len(manifest.stdout.splitlines()) == 5
    assert not any(p.name == "-" or p.name.startswith("-") for p in tmp_path.rglob("*"))


def test_dash_where_no_stream_fits_is_a_usage_error(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2})
    runner = CliRunner()
    assert runner.invoke(cli, ["pack", str(photos), str(tmp_path / "x.rec")]).exit_code == 0
    rec = str(tmp_path / "x.rec")
    for args, says in (
        (["unpack", rec, "-"], "it names a folder"),
        (["split", rec, "-"], "split writes several files"),
        (["pack", str(photos), "-"], "a dataset is written whole"),
        (["convert", rec, "-"], "a dataset is written whole"),
        (["preview", rec, "-o", "-"], "an image file is written whole"),
        (["lst-gen", str(photos), "-", "--train-ratio", "0.5"], "takes one list"),
        (["stats", "-", "-"], "standard input can be read once"),
    ):
        result = runner.invoke(cli, args, input="")
        assert result.exit_code == 2, (args, result.output)
        assert says in result.stderr, (args, result.stderr)
    assert not (Path.cwd() / "-").exists() and not any(tmp_path.rglob("-*"))


def test_include_and_exclude_choose_the_files_of_a_folder(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"ant": 3, "bee": 3, "cat": 2})
    (photos / "bee" / "img0.jpg").rename(photos / "bee" / "tmp_img0.jpg")
    runner = CliRunner()
    args = ["lst-gen", str(photos), "-", "--recursive", "--no-shuffle"]
    listed = runner.invoke(cli, [*args, "--include", "bee/*", "--include", "cat/*",
                                 "--exclude", "*/tmp_*"])  # fmt: skip
    assert listed.exit_code == 0, listed.output
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    # bee is the first class kept, so it takes label 0 (labels follow the files listed).
    assert [(label, path) for _i, label, path in lines] == [
        ("0.000000", "bee/img1.jpg"), ("0.000000", "bee/img2.jpg"),
        ("1.000000", "cat/img0.jpg"), ("1.000000", "cat/img1.jpg")]  # fmt: skip
    packed = runner.invoke(cli, ["pack", str(photos), str(tmp_path / "p.rec"), "--json",
                                 "--exclude", "ant/*"])  # fmt: skip
    assert packed.exit_code == 0 and json.loads(packed.stdout)["packed"] == 5
    none = runner.invoke(cli, [*args, "--include", "zebra/*"])
    assert none.exit_code == 2 and "that --include/--exclude keep" in none.stderr


def test_include_applies_to_an_s3_folder_too(s3, tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"ant": 2, "bee": 2})
    s3.upload_tree(photos, "photos")
    args = ["lst-gen", s3.uri("photos"), "-", "--recursive", "--include", "bee/*"]
    result = CliRunner().invoke(cli, [*args, "--endpoint-url", s3.endpoint])
    assert result.exit_code == 0, result.output
    assert sorted(line.split("\t")[2] for line in result.stdout.splitlines()) == [
        "bee/img0.jpg", "bee/img1.jpg"]  # fmt: skip


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run imgfmt with stderr on a pseudo-terminal (stdout a pipe): exit status, stderr."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    primary, secondary = pty.openpty()
    # A terminal 120 columns wide (a new pseudo-terminal is 0x0, too narrow for any bar).
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "COLUMNS": "120"}  # fmt: skip
    env.pop("IMGFMT_NO_PROGRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "imgfmt", *args], stdout=subprocess.PIPE,
                            stderr=secondary, env=env)  # fmt: skip
    os.close(secondary)
    seen = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(primary)
    return proc.returncode, seen.decode("utf-8", "replace")


def test_progress_bars_have_a_label_a_total_and_a_rate_on_a_terminal_only(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 30, "b": 30}, size=(200, 150))
    rec = tmp_path / "x.rec"
    code, bar = _on_a_terminal("pack", str(photos), str(rec), "-j", "1")
    assert code == 0
    assert "packing" in bar and "/60" in bar and "img/s" in bar
    code, bar = _on_a_terminal("verify", str(rec))
    assert code == 0 and "verifying" in bar and "B/s" in bar
    code, bar = _on_a_terminal("unpack", str(rec), str(tmp_path / "u"))
    assert code == 0 and "unpacking" in bar and "/60" in bar
    for quiet in ("-q", "--no-progress"):
        code, bar = _on_a_terminal("verify", str(rec), quiet)
        assert code == 0 and "verifying" not in bar
    # Not a terminal: no bar (CliRunner's stderr is not one).
    result = CliRunner().invoke(cli, ["verify", str(rec)])
    assert "verifying" not in result.stderr

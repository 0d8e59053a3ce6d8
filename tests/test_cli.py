"""The command line as a whole: help, docs, exit codes, start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgfmt.cli import cli

REPO = Path(__file__).resolve().parent.parent
COMMANDS = sorted(cli.commands)


def test_commands_exist() -> None:
    assert {"lst-gen", "pack", "unpack"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"imgfmt {name}" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_readme_documents_every_command(name: str) -> None:
    readme = (REPO / "README.md").read_text()
    assert f"imgfmt {name}" in readme and f"### {name}" in readme


def test_quick_start_is_the_two_make_commands() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_usage_errors_exit_2() -> None:
    result = CliRunner().invoke(cli, ["pack"])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["pack", "a.lst", "b.rec", "--color", "7"])
    assert result.exit_code == 2


def test_library_errors_are_one_line_and_verbose_shows_the_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.rec")
    plain = subprocess.run(
        [sys.executable, "-m", "imgfmt", "unpack", missing, str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 1
    assert plain.stderr.splitlines() == [
        f"Error: {missing}: no such file (check the path of the .rec)"
    ]
    verbose = subprocess.run(
        [sys.executable, "-m", "imgfmt", "-v", "unpack", missing, str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and verbose.stderr.rstrip().endswith(
        "(check the path of the .rec)"
    )


def test_help_starts_without_heavy_imports() -> None:
    code = (
        "import sys; from imgfmt.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('PIL', 'numpy', 'boto3', 'botocore', 'tqdm') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_console_script_and_module_entry_points() -> None:
    for command in (
        [sys.executable, "-m", "imgfmt", "--version"],
        [str(Path(sys.executable).parent / "imgfmt"), "--version"],
    ):
        out = subprocess.run(command, capture_output=True, text=True)
        assert out.returncode == 0 and "0.1.0" in out.stdout


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (OSError(5, "Input/output error", "/data/x.rec"), "Error: /data/x.rec: Input/output error"),
        (RuntimeError("boom"), "Error: internal error: RuntimeError: boom (a bug in imgfmt;"),
    ],
)
def test_unexpected_errors_are_still_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: Exception, expected: str
) -> None:
    # A safety net under the library's own errors: never a raw traceback, exit 1.
    from imgfmt.ops import unpack

    def broken(*_args: object, **_kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(unpack, "unpack", broken)
    result = CliRunner().invoke(cli, ["unpack", str(tmp_path / "x.rec"), str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    verbose = CliRunner().invoke(cli, ["-v", "unpack", str(tmp_path / "x.rec"), str(tmp_path)])
    assert "Traceback" in verbose.stderr and verbose.exit_code == 1


def test_bad_option_combinations_found_by_the_library_exit_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "p" / "a").mkdir(parents=True)
    for args in (
        ["lst-gen", str(tmp_path / "p"), str(tmp_path / "x"), "--train-ratio", "0.8",
         "--test-ratio", "0.5"],
        ["pack", str(tmp_path / "p"), str(tmp_path / "x.rec"), "--quality", "0"],
        ["pack", str(tmp_path / "p"), str(tmp_path / "x.rec"), "--encoding", ".png",
         "--quality", "95"],
    ):  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_prefixes_given_with_lst_and_missing_output_folders(tmp_path: Path) -> None:
    from helpers import make_tree

    photos = make_tree(tmp_path / "photos", {"a": 2, "b": 2})
    result = CliRunner().invoke(
        cli, ["lst-gen", str(photos), str(tmp_path / "x.lst"), "--recursive"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("x*")) == ["x.classes.tsv", "x.lst"]
    # Missing output folders are created, as unpack always did (and said so with -v).
    for args in (
        ["pack", str(photos), str(tmp_path / "n0" / "x.rec")],
        ["split", str(tmp_path / "x.lst"), str(tmp_path / "n1" / "deeper" / "s")],
        ["manifest-gen", str(photos), str(tmp_path / "n2" / "m.manifest"), "--s3-prefix",
         "s3://b/p"],
        ["lst-gen", str(photos), str(tmp_path / "n3" / "l"), "--recursive"],
    ):  # fmt: skip
        result = CliRunner().invoke(cli, ["-v", *args])
        assert result.exit_code == 0, result.output
        folder = Path(args[2]).parent
        assert folder.is_dir() and any(folder.iterdir())
        assert f"created folder {folder}" in result.stderr
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(cli, ["pack", str(photos), str(tmp_path / "file" / "x.rec")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'file'}: cannot create the output folder")

"""unpack with workers: the images a format defers (JSON Lines' base64, RecordIO-protobuf's
PNGs) are made and written by worker processes, with the same files and list as one
process, damage reported as in a read, and a write failure stopping the run in one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import make_tree

from imgfmt.cli import cli
from imgfmt.errors import ImageError, StorageError
from imgfmt.formats.jsonlines import JsonLines
from imgfmt.ops.unpack import unpack


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """40 photos as JSON Lines (written by imgfmt) and as RecordIO-protobuf 24x16 pixels."""
    root = tmp_path_factory.mktemp("deferred")
    photos = make_tree(root / "photos", {"cat": 20, "dog": 20}, size=(40, 30))
    made = {"jsonl": root / "p.jsonl", "protobuf": root / "p.rec"}
    for args in (
        ["pack", str(photos), str(made["jsonl"]), "--pass-through", "--no-shuffle"],
        ["pack", str(photos), str(made["protobuf"]), "--format", "recordio-protobuf",
         "--size", "24x16", "--no-shuffle"],
    ):  # fmt: skip
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    return made


@pytest.mark.parametrize("kind", ["jsonl", "protobuf"])
def test_workers_write_the_files_and_list_one_process_writes(
    datasets: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    outputs = {}
    for workers in ("1", "3"):
        out = tmp_path / f"j{workers}"
        result = invoke("unpack", str(datasets[kind]), str(out), "-j", workers)
        assert result.exit_code == 0, result.output
        assert "wrote 40 images" in result.output
        outputs[workers] = tree(out)
    assert outputs["1"] == outputs["3"]
    assert len([name for name in outputs["3"] if not name.endswith((".lst", ".tsv"))]) == 40


def test_an_image_that_cannot_be_made_is_damage_the_others_are_written(
    datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker cannot make is reported as a damaged line is, left out of the list;
    every other image is written. (Forked workers inherit the patched format.)"""
    real = JsonLines.finish_image
    fifth = _fifth_image_tail(datasets["jsonl"])

    def finish(self: JsonLines, data: bytes) -> bytes:
        image = real(self, data)
        if image[-40:] == fifth:
            raise ImageError("no can do", kind="corrupt")
        return image

    monkeypatch.setattr(JsonLines, "finish_image", finish)
    result = unpack(str(datasets["jsonl"]), str(tmp_path / "out"), workers=2)
    assert result.written == 39 and len(result.damaged) == 1
    assert "no can do" in result.damaged[0] and "line 5" in result.damaged[0]
    listed = (tmp_path / "out" / "p.lst").read_text().splitlines()
    assert len(listed) == 39
    written = [p for p in (tmp_path / "out").rglob("*.jpg")]
    assert len(written) == 39


def _fifth_image_tail(jsonl: Path) -> bytes:
    import base64
    import json

    line = jsonl.read_text().splitlines()[4]
    return base64.b64decode(json.loads(line)["image"])[-40:]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_file_a_worker_cannot_write_stops_the_run_in_one_line(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "cat").mkdir(parents=True)
    (out / "cat").chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = invoke("unpack", str(datasets["jsonl"]), str(out), "-j", "2")
    finally:
        (out / "cat").chmod(stat.S_IRWXU)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    assert "cannot write" in result.output


def test_a_write_failure_in_a_worker_is_the_storage_error_it_was(
    datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root the folder cannot be made read-only: a write that fails is made to."""
    import imgfmt.storage as storage

    def refuse(path: str, data: bytes) -> None:
        raise StorageError("cannot write: no space left on device", path=path)

    monkeypatch.setattr(storage, "write_file", refuse)
    with pytest.raises(StorageError, match="no space left"):
        unpack(str(datasets["jsonl"]), str(tmp_path / "out"), workers=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupted_unpack_leaves_no_temporary_file(
    datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Ctrl-C while a file is being written: the files written stay whole, the one under
    its temporary name goes, and no list is written."""
    import imgfmt.storage as storage

    real = storage._write_local
    written = {"n": 0}

    def write(path: str, data: bytes) -> None:
        real(path, data)  # the temporary file is there now
        written["n"] += 1
        if written["n"] == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(storage, "_write_local", write)
    out = tmp_path / "out"
    kind = "jsonl" if workers == 1 else "protobuf"  # in the main process; in a worker
    with pytest.raises((KeyboardInterrupt, Exception)):
        unpack(str(datasets[kind]), str(out), workers=workers)
    assert not list(out.rglob(storage.TEMP_PREFIX + "*"))
    assert not list(out.glob("*.lst"))

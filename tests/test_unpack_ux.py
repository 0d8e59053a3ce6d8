"""unpack --ids over datasets with gaps in their ids (the files of a split), and the messages
for inputs that are not there, through the command line as a user runs them."""

from __future__ import annotations

import shutil
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import make_tree

from imgfmt import formats
from imgfmt.cli import cli
from imgfmt.errors import FormatError, UsageError
from imgfmt.formats import rio_protobuf
from imgfmt.formats.base import IdFilter, IdSelection
from imgfmt.formats.recordio import RecordReader
from imgfmt.ops.unpack import parse_ids

#: The ids of the dataset: 100 to 110 without 104 and 107, as one split's file holds them.
IDS = [1, 3, 7, 12, 100, 101, 102, 103, 105, 106, 108, 109, 110, 200]
HINT = "(the ids are the first column of the dataset's .lst, as unpack writes it)"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def last_line(result: Result) -> str:
    return result.stderr.splitlines()[-1]


def listed(outdir: Path) -> list[int]:
    """The ids of the list unpack wrote in ``outdir``, in order."""
    (lst,) = outdir.glob("*.lst")
    return [int(line.split("\t")[0]) for line in lst.read_text().splitlines()]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same gapped dataset as a .rec with and without its .idx, a .jsonl and a .tar."""
    root = tmp_path_factory.mktemp("gapped")
    photos = make_tree(root / "photos", {"cat": 7, "dog": 7}, size=(16, 12))
    images = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    listing = root / "g.lst"
    listing.write_text(
        "".join(f"{i}\t{int(path.startswith('dog'))}\t{path}\n" for i, path in zip(IDS, images))
    )
    rec = root / "g.rec"
    for args in (
        ["pack", str(listing), str(rec), "--root", str(photos), "--pass-through", "--no-shuffle"],
        ["convert", str(rec), str(root / "g.jsonl")],
        ["convert", str(rec), str(root / "g.tar"), "--shard-records", "5"],
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    bare = root / "bare" / "g.rec"
    bare.parent.mkdir()
    shutil.copy(rec, bare)
    return {
        "rec": rec,
        "rec-no-idx": bare,
        "jsonl": root / "g.jsonl",
        # the dataset name of its shards g-000000.tar, g-000001.tar, g-000002.tar
        "tar": root / "g.tar",
    }


FORMATS = ["rec", "rec-no-idx", "jsonl", "tar"]


@pytest.mark.parametrize("kind", FORMATS)
def test_a_range_selects_the_ids_in_it_that_exist(
    datasets: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    result = invoke("unpack", str(datasets[kind]), str(tmp_path / "u"), "--ids", "3,7,100-110")
    assert result.exit_code == 0, result.output
    assert listed(tmp_path / "u") == [3, 7, 100, 101, 102, 103, 105, 106, 108, 109, 110]
    assert len(list((tmp_path / "u").rglob("*.jpg"))) == 11


@pytest.mark.parametrize(
    ("kind", "order"),
    [
        # Through the index: in the order asked, a range's ids ascending, each id once.
        ("rec", [105, 106, 108, 109, 110, 3, 1]),
        # Read whole: in file order.
        ("rec-no-idx", [1, 3, 105, 106, 108, 109, 110]),
        ("jsonl", [1, 3, 105, 106, 108, 109, 110]),
        ("tar", [1, 3, 105, 106, 108, 109, 110]),
    ],
)
def test_the_order_is_as_before(
    datasets: dict[str, Path], kind: str, order: list[int], tmp_path: Path
) -> None:
    ids = "105-110,3,108-109,1,3"
    result = invoke("unpack", str(datasets[kind]), str(tmp_path / "u"), "--ids", ids)
    assert result.exit_code == 0, result.output
    assert listed(tmp_path / "u") == order


@pytest.mark.parametrize("kind", FORMATS)
def test_a_huge_range_is_never_expanded(
    datasets: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    tracemalloc.start()
    try:
        result = invoke("unpack", str(datasets[kind]), str(tmp_path / "u"), "--ids", "0-1000000000")
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert sorted(listed(tmp_path / "u")) == IDS
    assert peak < 20_000_000  # a list of a billion ids would take 8 GB


def test_with_the_index_ranges_are_resolved_without_reading_the_file(
    datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_scan(*_args: object) -> Iterator[object]:
        raise AssertionError("the .rec was scanned")

    monkeypatch.setattr(RecordReader, "salvage", no_scan)
    monkeypatch.setattr(RecordReader, "__iter__", no_scan)
    result = invoke("unpack", str(datasets["rec"]), str(tmp_path / "u"), "--ids", "0-1000000000")
    assert result.exit_code == 0, result.output
    assert listed(tmp_path / "u") == IDS


def test_a_single_id_not_in_the_index_is_still_an_error(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    rec = datasets["rec"]
    result = invoke("unpack", str(rec), str(tmp_path / "u"), "--ids", "3,104,100-110,107")
    assert result.exit_code == 2
    assert last_line(result) == (
        f"Error: {rec.with_suffix('.idx')}: requested ids not in the index: 104, 107 {HINT}"
    )
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize("kind", ["rec-no-idx", "jsonl", "tar"])
def test_a_single_id_not_in_a_file_read_whole_is_reported_after_the_others(
    datasets: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    source = datasets[kind]
    result = invoke(
        "unpack", str(source), str(tmp_path / "u"), "--ids", "3,104,100-103", "--allow-skip"
    )
    assert result.exit_code == 0, result.output
    assert f"skipped {source}: requested ids not in the file: 104 {HINT}" in result.stderr
    assert listed(tmp_path / "u") == [3, 100, 101, 102, 103]
    # Nothing selected at all: the ids are wrong, and nothing is written.
    result = invoke("unpack", str(source), str(tmp_path / "v"), "--ids", "104")
    assert result.exit_code == 2
    assert last_line(result) == f"Error: {source}: requested ids not in the file: 104 {HINT}"
    assert not (tmp_path / "v").exists()


def test_a_range_that_selects_nothing_is_an_error_naming_it(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    rec = datasets["rec"]
    result = invoke("unpack", str(rec), str(tmp_path / "u"), "--ids", "3,104-104,300-400")
    assert result.exit_code == 2
    assert last_line(result) == (
        f"Error: {rec.with_suffix('.idx')}: ranges 104-104, 300-400 select no id in the index "
        f"{HINT}"
    )
    result = invoke("unpack", str(rec), str(tmp_path / "u"), "--ids", "9,300-400")
    assert last_line(result) == (
        f"Error: {rec.with_suffix('.idx')}: requested ids not in the index: 9; range 300-400 "
        f"selects no id in the index {HINT}"
    )
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize("kind", ["rec-no-idx", "jsonl", "tar"])
def test_a_range_that_selects_nothing_in_a_file_read_whole(
    datasets: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    source = datasets[kind]
    result = invoke("unpack", str(source), str(tmp_path / "u"), "--ids", "300-400")
    assert result.exit_code == 2
    assert last_line(result) == (f"Error: {source}: range 300-400 selects no id in the file {HINT}")
    assert not (tmp_path / "u").exists()
    result = invoke(
        "unpack", str(source), str(tmp_path / "v"), "--ids", "3,300-400", "--allow-skip"
    )
    assert result.exit_code == 0
    assert f"skipped {source}: range 300-400 selects no id in the file {HINT}" in result.stderr
    assert listed(tmp_path / "v") == [3]


def test_recordio_protobuf_ranges_of_record_numbers_decode_only_those(
    datasets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digits = tmp_path / "digits.rec"
    result = invoke(
        "convert", str(datasets["rec"]), str(digits), "--format", "recordio-protobuf",
        "--size", "4x4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    decoded: list[int] = []
    original = rio_protobuf.decode_dense

    def counting(payload: bytes) -> object:
        decoded.append(len(payload))
        return original(payload)

    monkeypatch.setattr(rio_protobuf, "decode_dense", counting)
    result = invoke("unpack", str(digits), str(tmp_path / "u"), "--ids", "2,10-1000000000")
    assert result.exit_code == 0, result.output
    assert listed(tmp_path / "u") == [2, 10, 11, 12, 13]  # ids are record numbers
    assert len(decoded) == 5
    result = invoke("unpack", str(digits), str(tmp_path / "v"), "--ids", "14-20")
    assert result.exit_code == 2
    assert last_line(result) == f"Error: {digits}: range 14-20 selects no id in the file {HINT}"
    result = invoke("unpack", str(digits), str(tmp_path / "w"), "--ids", "1,14", "--allow-skip")
    assert result.exit_code == 0
    assert f"skipped {digits}: requested ids not in the file: 14 {HINT}" in result.stderr
    assert listed(tmp_path / "w") == [1]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("110-100", "range '110-100' runs backwards (write it 100-110)"),
        ("3,x", "cannot read id 'x' (write ids like 3,7,100-200)"),
        ("3,1-", "cannot read id '1-' (write ids like 3,7,100-200)"),
        (",", "no ids given (write ids like 3,7,100-200)"),
    ],
)
def test_ids_that_cannot_be_read_are_usage_errors(ids: str, message: str, tmp_path: Path) -> None:
    result = invoke("unpack", str(tmp_path / "g.rec"), str(tmp_path / "u"), "--ids", ids)
    assert result.exit_code == 2
    assert last_line(result) == f"Error: Invalid value for '--ids': {message}"


def test_parse_ids_keeps_ranges_and_singles_as_written() -> None:
    selection = parse_ids(" 3, 7,100-110 ,0-1000000000,-5--3")
    assert selection.parts == (3, 7, (100, 110), (0, 1_000_000_000), (-5, -3))
    assert 999_999_999 in selection and -4 in selection and -6 not in selection
    assert selection.last == 1_000_000_000


def test_an_id_selection_resolves_against_sorted_ids_and_names_what_is_missing() -> None:
    selection = IdSelection((7, (3, 5), 4, (10, 12), (20, 30)))
    keys = {40, 1, 3, 5, 7, 11, 12}
    assert list(selection.resolve(keys)) == [7, 3, 5, 4, 11, 12]
    assert list(selection.resolve(keys, sorted(keys))) == [7, 3, 5, 4, 11, 12]
    assert selection.unmatched(keys, "the index") == (
        "requested ids not in the index: 4; range 20-30 selects no id in the index"
    )
    assert IdSelection(((3, 5),)).unmatched(keys, "the index") is None
    many = IdSelection(tuple(range(100, 107)) + ((50, 60), (70, 80)))
    assert many.unmatched(keys, "the file") == (
        "requested ids not in the file: 100, 101, 102, 103, 104 and 2 more; "
        "ranges 50-60, 70-80 select no id in the file"
    )
    assert 6 not in selection and 4 in selection and 21 in selection and 31 not in selection
    assert IdSelection.of([1, 2]) == IdSelection((1, 2))
    assert IdSelection(()).last is None
    with pytest.raises(ValueError):
        IdSelection(((5, 3),))


def test_a_whole_read_keeps_no_id_of_what_a_range_selects() -> None:
    """Memory is bounded by the selection, not by the dataset (ten million records)."""
    damage: list[FormatError] = []
    wanted = IdFilter(parse_ids("0-1000000000,5"), "big.rec", damage.append)
    tracemalloc.start()
    try:
        kept = sum(wanted.keep(key) for key in range(300_000))
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept == 300_000 and peak < 100_000
    wanted.finish()
    assert damage == []


@pytest.mark.parametrize("kind", FORMATS)
def test_read_ids_still_takes_plain_ids(datasets: dict[str, Path], kind: str) -> None:
    """As ``preview`` asks for ids it got from the index: each must exist."""
    source = str(datasets[kind])
    fmt = formats.existing(source)
    damage: list[FormatError] = []
    assert [item.index for item in fmt.read_ids(source, [105, 1], damage.append)] == (
        [105, 1] if kind == "rec" else [1, 105]
    )
    assert damage == []
    with pytest.raises(UsageError, match="requested ids not in the"):
        list(fmt.read_ids(source, [104], damage.append))


# --------------------------------------------------------------------------- missing inputs


@pytest.mark.parametrize("command", ["unpack", "convert"])
@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("x.jsonl", "no such file (check the path of the .jsonl)"),
        ("x.rec", "no such file (check the path of the .rec)"),
        ("x.tar", "no such file, and no shards x-000000.tar, ... beside it (name one shard, a "
         "pattern such as train-{000000..000009}.tar, or the dataset: train.tar for "
         "train-000000.tar, ...)"),
        ("x-{000..003}.tar", "no such file x-000.tar, the first shard the pattern names (check "
         "the path and the numbers in braces)"),
        ("x", "no such file (check the path)"),
        ("x.txt", "no such file (check the path)"),
    ],
)  # fmt: skip
def test_a_missing_input_names_the_kind_of_file_to_check(
    command: str, name: str, says: str, tmp_path: Path
) -> None:
    missing = tmp_path / "data" / name
    out = tmp_path / ("out" if command == "unpack" else "out.rec")
    result = invoke(command, str(missing), str(out))
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: {missing}: {says}\n"
    assert not out.exists()


def test_a_missing_input_of_a_format_named_with_from(tmp_path: Path) -> None:
    missing = tmp_path / "x"
    result = invoke("convert", str(missing), str(tmp_path / "o.rec"), "--from", "jsonlines")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {missing}: no such file (check the path of the .jsonl)\n"
    other = tmp_path / "x.dat"
    result = invoke("convert", str(other), str(tmp_path / "o.rec"), "--from", "recordio")
    assert result.stderr == f"Error: {other}: no such file (check the path of the .dat)\n"


def test_an_input_whose_name_tells_no_format(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    result = invoke("unpack", str(notes), str(tmp_path / "u"))
    assert result.exit_code == 2
    assert last_line(result) == (
        f"Error: cannot tell the format of {notes} from its name: unpack reads a .rec (MXNet or "
        "RecordIO-protobuf), a .jsonl or WebDataset .tar shards (give a dataset named with its "
        "format's extension)"
    )
    result = invoke("convert", str(notes), str(tmp_path / "o.rec"))
    assert result.exit_code == 2
    assert last_line(result) == (
        f"Error: cannot tell the format of {notes} from its name: a dataset's name ends in .rec, "
        ".jsonl or .tar (name its format with --from: recordio, recordio-protobuf, jsonlines, "
        "webdataset)"
    )
    assert not (tmp_path / "u").exists()

"""imgfmt.formats.lst: im2rec-identical listing and splitting, strict .lst and class-map reading."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgfmt.errors import FormatError, StorageError, UsageError
from imgfmt.formats.lst import (
    DEFAULT_EXTS,
    LstEntry,
    class_map_path,
    find_class_map,
    format_lst_line,
    list_images,
    make_lists,
    parse_lst,
    plan_splits,
    read_class_map,
    read_lst,
    shuffle_entries,
    write_class_map,
    write_lst,
)

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "lst"
CASES: dict[str, list[str]] = json.loads((GOLDEN / "cases.json").read_text(encoding="utf-8"))
FORMAT_HINT = "(a .lst line is index<TAB>label[<TAB>label...]<TAB>relative/path)"


def _load_golden_script() -> ModuleType:
    """scripts/make_golden_lst.py, for the tree recipe reader and builder it used."""
    path = REPO / "scripts" / "make_golden_lst.py"
    spec = importlib.util.spec_from_file_location("make_golden_lst", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden_script = _load_golden_script()


def im2rec_options(options: Sequence[str]) -> dict[str, Any]:
    """im2rec.py's list options (its own argparse definitions) as make_lists keywords."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--exts", nargs="+", default=[".jpeg", ".jpg", ".png"])
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--train-ratio", type=float, default=1.0)
    parser.add_argument("--test-ratio", type=float, default=0)
    parser.add_argument("--recursive", action="store_true")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    return vars(parser.parse_args(list(options)))


def lst_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.lst"))}


def touch(root: Path, *paths: str) -> None:
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


# --------------------------------------------------------------------------- golden


@pytest.fixture(scope="module")
def golden_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("golden") / "tree"
    golden_script.build_tree(golden_script.read_recipe(GOLDEN / "tree.txt"), root)
    return root


def test_cases_file_matches_the_script() -> None:
    assert CASES == golden_script.CASES


@pytest.mark.parametrize("case", sorted(CASES))
def test_make_lists_matches_im2rec_golden(case: str, golden_tree: Path, tmp_path: Path) -> None:
    result = make_lists(str(golden_tree), str(tmp_path / "data"), **im2rec_options(CASES[case]))

    expected = lst_files(GOLDEN / case)
    assert lst_files(tmp_path) == expected
    assert {Path(p).parent for p in result.counts} == {tmp_path}  # the prefix as given
    assert {Path(p).name: n for p, n in result.counts.items()} == {
        name: data.count(b"\n") for name, data in expected.items()
    }
    assert result.empty == [p for p, n in result.counts.items() if n == 0]
    assert result.unlisted == result.images - sum(result.counts.values())

    # im2rec prints "relative/folder label" per class when recursive; the class map agrees.
    printed = (GOLDEN / case / "stdout.txt").read_text(encoding="utf-8").splitlines()
    classes = {int(label): folder for folder, label in (line.rsplit(" ", 1) for line in printed)}
    classes = {label: "tree" if name == "." else name for label, name in classes.items()}
    assert result.classes == (classes or {0: "tree"})
    assert read_class_map(str(tmp_path / "data.classes.tsv")) == result.classes


def test_golden_edge_cases_are_reported(golden_tree: Path, tmp_path: Path) -> None:
    options = im2rec_options(CASES["split_drops_one"])
    dropped = make_lists(str(golden_tree), str(tmp_path / "a"), **options)
    assert (dropped.images, dropped.unlisted, dropped.empty) == (23, 1, [])
    options = im2rec_options(CASES["chunks_with_empty"])
    chunked = make_lists(str(golden_tree), str(tmp_path / "b"), **options)
    assert chunked.empty == [str(tmp_path / "b_3.lst")]
    assert (tmp_path / "b_3.lst").read_bytes() == b""
    assert chunked.to_dict()["empty_lists"] == [str(tmp_path / "b_3.lst")]


def test_prefix_and_root_are_relative_to_the_current_folder(
    golden_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(golden_tree.parent)
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out", golden_tree.parent / "out")
    result = make_lists("tree", "out/data", recursive=True)
    assert result.files == ["out/data.lst"]
    assert result.class_map_path == "out/data.classes.tsv"
    assert result.root == str(golden_tree)
    assert lst_files(tmp_path / "out") == lst_files(GOLDEN / "recursive")


def test_prefix_ending_in_a_slash_is_refused(golden_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        make_lists(str(golden_tree), f"{tmp_path}/")
    assert str(err.value) == (
        f"prefix '{tmp_path}/' names a folder, but lists are written to PREFIX.lst "
        f"(give a file prefix, e.g. {tmp_path}/images)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_missing_prefix_folder_is_created(golden_tree: Path, tmp_path: Path) -> None:
    make_lists(str(golden_tree), str(tmp_path / "out" / "data"))
    assert (tmp_path / "out" / "data.lst").is_file()


def test_shuffle_is_the_global_random_shuffle() -> None:
    for size in (0, 1, 2, 23, 1000):
        entries = [LstEntry(i, (0.0,), f"{i}.jpg") for i in range(size)]
        expected = list(entries)
        random.seed(100)
        random.shuffle(expected)
        assert shuffle_entries(entries) == expected
        assert shuffle_entries(entries, seed=7) != expected or size < 3
    assert [e.index for e in entries[:3]] == [0, 1, 2]  # the input is left alone


# --------------------------------------------------------------------------- listing


def test_symlink_cycles_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root, "a/x.jpg", "b/c/y.png", "top.jpg")
    os.symlink("..", root / "a" / "up")  # back to the root
    os.symlink(".", root / "b" / "c" / "self")
    os.symlink("../../a", root / "b" / "c" / "to_a")  # a sibling, not an ancestor: followed
    entries, classes = list_images(str(root), recursive=True)
    assert [(e.index, e.labels, e.path) for e in entries] == [
        (0, (0.0,), "top.jpg"),
        (1, (1.0,), "a/x.jpg"),
        (2, (2.0,), "b/c/y.png"),
        (3, (3.0,), "b/c/to_a/x.jpg"),
    ]
    assert classes == {0: "root", 1: "a", 2: "b/c", 3: "b/c/to_a"}


def test_exts_are_case_insensitive_and_dot_optional(tmp_path: Path) -> None:
    touch(tmp_path, "a.JPG", "b.png", "c.gif", "d.GIF")
    entries, _ = list_images(str(tmp_path), exts=["GIF", ".JPG"])
    assert [e.path for e in entries] == ["a.JPG", "c.gif", "d.GIF"]
    assert [e.path for e in list_images(str(tmp_path), exts=".png")[0]] == ["b.png"]


def test_nothing_found_says_what_was_searched(tmp_path: Path) -> None:
    touch(tmp_path, "notes.txt", "cats/a.jpg")
    with pytest.raises(UsageError) as err:
        list_images(str(tmp_path))
    assert str(err.value) == (
        f"no images with extensions .jpeg, .jpg, .png found under {tmp_path} (top level only) "
        "(images in class sub-folders need --recursive)"
    )
    with pytest.raises(UsageError) as err:
        list_images(str(tmp_path), recursive=True, exts=[".tif"])
    assert str(err.value) == f"no images with extensions .tif found under {tmp_path} (recursive)"


def test_nothing_found_without_subfolders_has_no_hint(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        list_images(str(tmp_path))
    assert err.value.hint is None


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as err:
        list_images(str(tmp_path / "missing"))
    assert str(err.value) == f"{tmp_path}/missing: no such folder (check the path)"
    touch(tmp_path, "file.jpg")
    with pytest.raises(StorageError) as err:
        list_images(str(tmp_path / "file.jpg"), recursive=True)
    assert str(err.value) == f"{tmp_path}/file.jpg: is not a folder"


def test_unreadable_folder_is_an_error_not_a_missing_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path, "a/x.jpg", "b/y.jpg")
    scandir = os.scandir

    def denying_scandir(path: Any) -> Any:  # chmod 0 does not stop root, so deny here
        if os.fspath(path).endswith("/b"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denying_scandir)
    with pytest.raises(StorageError) as err:
        list_images(str(tmp_path), recursive=True)
    assert str(err.value) == (
        f"{tmp_path}/b: cannot list folder: permission denied (check the file's permissions)"
    )


def test_unlistable_paths_leave_no_output(tmp_path: Path) -> None:
    touch(tmp_path / "tree", "ok.jpg", "a\tb.jpg")
    with pytest.raises(FormatError) as err:
        make_lists(str(tmp_path / "tree"), str(tmp_path / "out"), shuffle=False)
    assert str(err.value) == (
        "image path 'a\\tb.jpg' (index 0) holds a tab or line break, so a .lst line cannot "
        "hold it (rename the file or folder)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a\nb.jpg", "holds a tab or line break"),
        ("a\rb.jpg", "holds a tab or line break"),
        (" lead.jpg", "starts or ends with white space, which .lst readers strip"),
        ("bad\udcff.jpg", "is not valid UTF-8"),
    ],
)
def test_format_refuses_paths_a_line_cannot_hold(path: str, problem: str) -> None:
    with pytest.raises(FormatError) as err:
        format_lst_line(LstEntry(4, (1.0,), path))
    assert err.value.message == (
        f"image path {path!r} (index 4) {problem}, so a .lst line cannot hold it"
    )


def test_an_entry_without_labels_is_index_and_path_and_reads_back() -> None:
    """What unpack lists for an unlabeled record: im2rec would skip the line, imgfmt packs it
    back unlabeled. A second field that is a number is still a line missing its path."""
    assert format_lst_line(LstEntry(4, (), "_unlabeled/4.png")) == "4\t_unlabeled/4.png\n"
    assert list(parse_lst(["4\t_unlabeled/4.png\n"], "x.lst")) == [
        LstEntry(4, (), "_unlabeled/4.png")
    ]
    with pytest.raises(FormatError, match="expected at least 3 tab-separated fields, found 2"):
        list(parse_lst(["0\t1.0\n"], "x.lst"))
    with pytest.raises(FormatError) as err:
        format_lst_line(LstEntry(4, (), "17"))
    assert str(err.value).startswith("entry 4 has no label and its path '17' reads as a number")


# --------------------------------------------------------------------------- splitting


def im2rec_make_list_split(
    image_list: list[Any], prefix: str, chunks: int, train_ratio: float, test_ratio: float
) -> dict[str, list[Any]]:
    """im2rec.py's make_list, verbatim but for write_list -> a dict (the oracle)."""
    written: dict[str, list[Any]] = {}
    N = len(image_list)  # noqa: N806
    chunk_size = (N + chunks - 1) // chunks
    for i in range(chunks):
        chunk = image_list[i * chunk_size : (i + 1) * chunk_size]
        str_chunk = "_%d" % i if chunks > 1 else ""  # noqa: UP031
        sep = int(chunk_size * train_ratio)
        sep_test = int(chunk_size * test_ratio)
        if train_ratio == 1.0:
            written[prefix + str_chunk + ".lst"] = chunk
        else:
            if test_ratio:
                written[prefix + str_chunk + "_test.lst"] = chunk[:sep_test]
            if train_ratio + test_ratio < 1.0:
                written[prefix + str_chunk + "_val.lst"] = chunk[sep_test + sep :]
            written[prefix + str_chunk + "_train.lst"] = chunk[sep_test : sep_test + sep]
    return written


ratios = st.floats(0, 1).map(lambda r: round(r, 3))


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 60), chunks=st.integers(1, 8), train=ratios, test=ratios)
def test_plan_splits_is_im2rec_make_list(n: int, chunks: int, train: float, test: float) -> None:
    if train + test > 1:
        test = round(1 - train, 3)
    entries = [LstEntry(i, (0.0,), f"{i}.jpg") for i in range(n)]
    plan = plan_splits(entries, "p", train_ratio=train, test_ratio=test, chunks=chunks)
    assert plan == im2rec_make_list_split(entries, "p", chunks, train, test)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_ratio": 1.5}, "train ratio must be between 0 and 1, got 1.5"),
        ({"train_ratio": math.nan}, "train ratio must be between 0 and 1, got nan"),
        ({"train_ratio": 0.5, "test_ratio": -0.1}, "test ratio must be between 0 and 1, got -0.1"),
        (
            {"train_ratio": 0.8, "test_ratio": 0.3},
            "train ratio 0.8 + test ratio 0.3 is more than 1 "
            "(the validation list gets what is left: 1 - train - test)",
        ),
        ({"chunks": 0}, "chunks must be a whole number of at least 1, got 0"),
        ({"chunks": 2.0}, "chunks must be a whole number of at least 1, got 2.0"),
    ],
)
def test_ratio_validation(kwargs: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        plan_splits([], "p", **kwargs)
    assert str(err.value) == message
    touch(tmp_path / "tree", "a.jpg")
    with pytest.raises(UsageError):  # checked before anything is listed or written
        make_lists(str(tmp_path / "missing"), str(tmp_path / "out"), **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


# --------------------------------------------------------------------------- .lst read/write


def test_write_read_round_trip(tmp_path: Path) -> None:
    entries = [
        LstEntry(0, (1.0, 2.5, -3.0), "été/a b.jpg"),
        LstEntry(17, (0.0,), "plain.png"),
        LstEntry(2**64 - 1, (5.0,), "max_index.jpg"),
        LstEntry(3, (17672687.0,), "日本/x y z.jpeg"),
    ]
    path = str(tmp_path / "x.lst")
    assert write_lst(path, entries) == 4
    assert Path(path).read_bytes().decode("utf-8").splitlines(keepends=True) == [
        "0\t1.000000\t2.500000\t-3.000000\tété/a b.jpg\n",
        "17\t0.000000\tplain.png\n",
        "18446744073709551615\t5.000000\tmax_index.jpg\n",
        "3\t17672687.000000\t日本/x y z.jpeg\n",
    ]
    assert list(read_lst(path)) == entries
    assert [p.name for p in tmp_path.iterdir()] == ["x.lst"]  # no temporary left behind


def test_parse_follows_im2rec_read_list_leniency() -> None:
    lines = ["\ufeff \n", " 3 \t 1.5 \t 2e0\t  a  b.jpg  \r\n", "\n", "4\t-0\tnan\tinf\tc.jpg"]
    entries = list(parse_lst(lines, "x.lst"))
    assert entries[0] == LstEntry(3, (1.5, 2.0), "a  b.jpg")
    assert entries[1].index == 4 and entries[1].path == "c.jpg"
    assert entries[1].labels[0] == 0.0 and math.isnan(entries[1].labels[1])
    assert entries[1].labels[2] == math.inf


def test_read_handles_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "win.lst"
    path.write_bytes("\ufeff0\t1.000000\tété.jpg\r\n1\t2.000000\tb.jpg\r\n".encode())
    assert list(read_lst(str(path))) == [
        LstEntry(0, (1.0,), "été.jpg"),
        LstEntry(1, (2.0,), "b.jpg"),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0\t1.0\n", "line 1: expected at least 3 tab-separated fields, found 2: '0\\t1.0'"),
        ("0 1 a.jpg\n", "line 1: expected at least 3 tab-separated fields, found 1: '0 1 a.jpg'"),
        ("\n\nx\t1\ta.jpg\n", "line 3: index 'x' is not a whole number from 0 to 2**64-1"),
        ("1.0\t1\ta.jpg\n", "line 1: index '1.0' is not a whole number from 0 to 2**64-1"),
        ("-1\t1\ta.jpg\n", "line 1: index '-1' is not a whole number from 0 to 2**64-1"),
        (
            "18446744073709551616\t1\ta.jpg\n",
            "line 1: index '18446744073709551616' is not a whole number from 0 to 2**64-1",
        ),
        ("0\t1\tcat\ta.jpg\n", "line 1: label 'cat' in field 3 is not a number"),
        ("0\t1\t\ta.jpg\n", "line 1: label '' in field 3 is not a number"),
    ],
)
def test_parse_errors_name_the_line(text: str, error: str) -> None:
    with pytest.raises(FormatError) as err:
        list(parse_lst(io.StringIO(text), "x.lst"))
    assert str(err.value) == f"x.lst: {error} {FORMAT_HINT}"
    assert err.value.path == "x.lst" and err.value.where == error.split(":")[0]


def test_duplicate_index_names_both_lines(tmp_path: Path) -> None:
    """The first use is found by reading the file again: parsing keeps a bit per index,
    not a line number per line (a 50M-line list would hold 800 MB of them)."""
    listing = tmp_path / "x.lst"
    listing.write_text("\ufeff5\t0\ta.jpg\n6\t0\tb.jpg\n\n5\t1\tc.jpg\n")
    with pytest.raises(FormatError) as err:
        list(read_lst(str(listing)))
    assert str(err.value) == (
        f"{listing}: line 4: index 5 already used on line 1 (every index must be unique)"
    )
    with pytest.raises(FormatError) as err:  # lines that are no file: no second look
        list(parse_lst(["5\t0\ta.jpg\n", "5\t1\tc.jpg\n"], "x.lst"))
    assert str(err.value) == (
        "x.lst: line 2: index 5 already used on an earlier line (every index must be unique)"
    )


def test_long_bad_lines_are_quoted_shortened() -> None:
    with pytest.raises(FormatError) as err:
        list(parse_lst(["0\t" + "1" * 200 + "\n"], "x.lst"))
    assert err.value.message == (
        "expected at least 3 tab-separated fields, found 2: '0\\t" + "1" * 78 + "...'"
    )


def test_read_rejects_invalid_utf8_with_line_number(tmp_path: Path) -> None:
    path = tmp_path / "latin1.lst"
    path.write_bytes("0\t1\tok.jpg\n1\t1\tcaf\xe9.jpg\n".encode("latin-1"))
    with pytest.raises(FormatError) as err:
        list(read_lst(str(path)))
    assert str(err.value) == (
        f"{path}: line 2: not valid UTF-8: '1\\t1\\tcaf\\udce9.jpg' (save the list as UTF-8)"
    )


def test_read_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as err:
        list(read_lst(str(tmp_path / "nope.lst")))
    assert str(err.value) == f"{tmp_path}/nope.lst: no such file or folder (check the path)"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_arbitrary_text_parses_or_raises_format_error(text: str) -> None:
    try:
        entries = list(parse_lst(io.StringIO(text), "fuzz.lst"))
    except FormatError as err:
        assert err.path == "fuzz.lst" and err.where is not None and err.where.startswith("line ")
    else:
        assert len({e.index for e in entries}) == len(entries)
        assert all(e.path and e.path == e.path.strip() for e in entries)


path_chars = st.characters(codec="utf-8", exclude_characters="\t\n\r")
lst_paths = st.text(path_chars, min_size=1, max_size=30).filter(lambda p: p == p.strip() and p)
lst_labels = st.floats(allow_nan=False, width=32) | st.integers(-(10**6), 10**6).map(float)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**64 - 1), st.lists(lst_labels, min_size=1, max_size=4), lst_paths
        ),
        unique_by=lambda t: t[0],
        max_size=12,
    )
)
def test_format_then_read_round_trips(items: list[tuple[int, list[float], str]]) -> None:
    entries = [LstEntry(i, tuple(labels), path) for i, labels, path in items]
    data = "".join(format_lst_line(e) for e in entries).encode("utf-8")
    # Read the bytes as read_lst reads a file: universal newlines, UTF-8, surrogateescape.
    handle = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
    parsed = list(parse_lst(handle, "rt.lst"))
    assert parsed == [
        LstEntry(e.index, tuple(float("%f" % x) for x in e.labels), e.path)  # noqa: UP031
        for e in entries
    ]


# --------------------------------------------------------------------------- class map


def test_class_map_round_trip_and_bytes(tmp_path: Path) -> None:
    path = str(tmp_path / "data.classes.tsv")
    mapping = {2: "sea lion", 0: "animals/cat", 10: "été", 1: "tree"}
    write_class_map(path, mapping)
    assert Path(path).read_bytes() == "0\tanimals/cat\n1\ttree\n2\tsea lion\n10\tété\n".encode()
    assert read_class_map(path) == mapping


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0\tcat\nx\tdog\n", "line 2: expected label<TAB>name, found 'x\\tdog'"),
        ("0 cat\n", "line 1: expected label<TAB>name, found '0 cat'"),
        ("\n-1\tcat\n", "line 2: expected label<TAB>name, found '-1\\tcat'"),
        ("0\t\n", "line 1: expected label<TAB>name, found '0\\t'"),
    ],
)
def test_class_map_errors_name_the_line(text: str, error: str, tmp_path: Path) -> None:
    path = tmp_path / "m.classes.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError) as err:
        read_class_map(str(path))
    assert str(err.value) == (
        f"{path}: {error} (a class map line is label<TAB>name, label a whole number)"
    )


def test_class_map_duplicate_label(tmp_path: Path) -> None:
    path = tmp_path / "m.classes.tsv"
    path.write_text("0\tcat\n1\tdog\n0\tbird\n", encoding="utf-8")
    with pytest.raises(FormatError) as err:
        read_class_map(str(path))
    assert str(err.value) == f"{path}: line 3: label 0 already named on line 1"


def test_class_map_names_keep_their_spaces_and_tabs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.classes.tsv"
    path.write_text("0\t a b \r\n", encoding="utf-8")
    assert read_class_map(str(path)) == {0: " a b "}
    with pytest.raises(FormatError):
        write_class_map(str(path), {0: "a\tb"})
    assert read_class_map(str(path)) == {0: " a b "}  # the old file is untouched


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("data/train", "data/train.classes.tsv"),
        ("data/train.lst", "data/train.classes.tsv"),
        ("x.rec", "x.classes.tsv"),
        ("x.idx", "x.classes.tsv"),
        ("s/x.manifest", "s/x.classes.tsv"),
        ("data/photos.v2", "data/photos.v2.classes.tsv"),
        ("data/x.classes.tsv", "data/x.classes.tsv"),
    ],
)
def test_class_map_path(given_path: str, expected: str) -> None:
    assert class_map_path(given_path) == expected


def test_find_class_map_strips_split_and_chunk_suffixes(tmp_path: Path) -> None:
    write_class_map(str(tmp_path / "data.classes.tsv"), {0: "a"})
    expected = str(tmp_path / "data.classes.tsv")
    names = ["data.lst", "data_train.lst", "data_0_train.rec", "data_12.lst", "data_val.manifest"]
    for name in names:
        assert find_class_map(str(tmp_path / name)) == expected, name
    assert find_class_map(str(tmp_path / "other_train.lst")) is None
    assert find_class_map(str(tmp_path / "data_training.lst")) is None
    assert find_class_map(str(tmp_path / "_train.lst")) is None

    write_class_map(str(tmp_path / "data_0.classes.tsv"), {0: "b"})  # the nearest one wins
    assert find_class_map(str(tmp_path / "data_0_val.rec")) == str(tmp_path / "data_0.classes.tsv")
    assert find_class_map(str(tmp_path / "data_1_val.rec")) == expected


def test_default_exts_are_im2recs() -> None:
    assert DEFAULT_EXTS == tuple(im2rec_options([])["exts"])

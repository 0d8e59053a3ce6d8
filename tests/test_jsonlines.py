"""JSON Lines image datasets: the line layout, the writer, the strict reader and the checks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from helpers import image_bytes, leftovers
from hypothesis import given, settings
from hypothesis import strategies as st

from imgfmt.errors import FormatError, ImgfmtError, UsageError
from imgfmt.formats import jsonlines
from imgfmt.formats.jsonlines import JsonlEntry, JsonlFileWriter, format_jsonl_line, read_jsonl


def test_line_layout_is_compact_json_in_field_order() -> None:
    line = format_jsonl_line(3, 1.0, "cat/img3.jpg", b"\xff\xd8\xff\xe0")
    assert line == '{"id":3,"path":"cat/img3.jpg","label":1,"image":"/9j/4A=="}\n'
    assert list(json.loads(line)) == list(jsonlines.FIELDS)


def test_labels_whole_numbers_without_fraction_others_kept_arrays_for_sequences() -> None:
    assert json.loads(format_jsonl_line(0, 2.5, "a.png", b"x"))["label"] == 2.5
    assert '"label":[1,0,1]' in format_jsonl_line(0, [1.0, 0.0, 1.0], "a.png", b"x")
    assert '"label":[4]' in format_jsonl_line(0, (4.0,), "a.png", b"x")


def test_paths_stay_readable_not_ascii_escaped() -> None:
    assert '"path":"chats/été 1.jpg"' in format_jsonl_line(0, 0, "chats/été 1.jpg", b"x")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, "a", b"x"), "id -1 is not a whole number from 0 to 2**64-1"),
        ((0, float("nan"), "a", b"x"), "label nan is not a finite number; JSON cannot hold it"),
        ((0, [], "a", b"x"), "id 0: no label to write (give at least one label)"),
    ],
)
def test_writer_refuses_what_a_line_cannot_hold(args: tuple, message: str) -> None:
    with pytest.raises(UsageError) as err:
        format_jsonl_line(*args)
    assert str(err.value) == message


def test_file_writer_round_trips_images_byte_for_byte(tmp_path: Path) -> None:
    images = [image_bytes(16, 12, seed=i) for i in range(3)]
    out = tmp_path / "train.jsonl"
    with JsonlFileWriter(str(out)) as writer:
        writer.write(0, 0.0, "cat/img0.jpg", images[0])
        writer.write(5, 1.0, "dog/img1.jpg", images[1])
        writer.write_entry(JsonlEntry(9, (1.0, 0.0), "x/both.jpg", images[2], multi_label=True))
    assert writer.records_written == 3
    assert writer.bytes_written == out.stat().st_size
    entries = list(read_jsonl(str(out)))
    assert entries == [
        JsonlEntry(0, (0.0,), "cat/img0.jpg", images[0]),
        JsonlEntry(5, (1.0,), "dog/img1.jpg", images[1]),
        JsonlEntry(9, (1.0, 0.0), "x/both.jpg", images[2], multi_label=True),
    ]
    assert entries[1].lst_entry.index == 5 and entries[1].lst_entry.path == "dog/img1.jpg"
    assert leftovers(tmp_path) == []


def test_file_writer_leaves_nothing_on_error_and_refuses_an_empty_dataset(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    with pytest.raises(RuntimeError), JsonlFileWriter(str(out)) as writer:
        writer.write(0, 0.0, "a.jpg", b"x")
        raise RuntimeError("interrupted")
    with pytest.raises(ImgfmtError, match="refusing to create an empty dataset"):
        with JsonlFileWriter(str(out)):
            pass
    assert not out.exists() and leftovers(tmp_path) == []


def test_writer_refuses_a_repeated_id(tmp_path: Path) -> None:
    with pytest.raises(FormatError) as err, JsonlFileWriter(str(tmp_path / "t.jsonl")) as writer:
        writer.write(1, 0.0, "a.jpg", b"x")
        writer.write(1, 0.0, "b.jpg", b"y")
    assert str(err.value).endswith(
        "id 1 is used twice (ids (the .lst index column) must be unique)"
    )


entries_strategy = st.lists(
    st.tuples(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False, width=32),
            st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=4),
        ),
        st.text(min_size=1).filter(lambda s: s.strip()),
        st.binary(min_size=1, max_size=64),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(entries_strategy)
def test_property_every_written_line_reads_back(items: list) -> None:
    text = "".join(
        format_jsonl_line(i * 7, labels, path, image)
        for i, (labels, path, image) in enumerate(items)
    )
    read = list(jsonlines.parse_jsonl(text.splitlines(keepends=True), "t.jsonl"))
    assert len(read) == len(items)
    for i, (entry, (labels, path, image)) in enumerate(zip(read, items)):
        expected = (labels,) if isinstance(labels, float) else tuple(labels)
        assert entry == JsonlEntry(i * 7, expected, path, image, not isinstance(labels, float))
    assert list(jsonlines.iter_jsonl_problems(text.splitlines(keepends=True), "t")) == []


GOOD = '{"id":0,"path":"a.jpg","label":1,"image":"eA=="}\n'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json\n", "not valid JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]\n", "expected a JSON object, found [1, 2]"),
        ("\n", "blank line (JSON Lines holds one object on every line)"),
        ('{"id":1,"label":1,"image":"eA=="}\n', 'missing "path"'),
        ('{"id":1}\n', 'missing "path", "label", "image"'),
        ('{"id":"1","path":"b","label":1,"image":"eA=="}\n', '"id" must be a whole number'),
        ('{"id":0,"path":"b","label":1,"image":"eA=="}\n', "id 0 already used on line 1"),
        ('{"id":1,"path":"","label":1,"image":"eA=="}\n', '"path" must be a non-empty string'),
        ('{"id":1,"path":"b","label":"cat","image":"eA=="}\n', '"label" must be a finite number'),
        ('{"id":1,"path":"b","label":[],"image":"eA=="}\n', '"label" is an empty array'),
        ('{"id":1,"path":"b","label":true,"image":"eA=="}\n', '"label" must be a finite number'),
        ('{"id":1,"path":"b","label":1,"image":"e$A=="}\n', '"image" is not valid base64'),
        ('{"id":1,"path":"b","label":1,"image":"eA="}\n', '"image" is not valid base64'),
        ('{"id":1,"path":"b","label":1,"image":""}\n', '"image" is empty (0 bytes)'),
        ('{"id":1,"path":"b","label":1,"image":7}\n', '"image" must be a base64 string'),
    ],
)
def test_reader_names_the_line_of_the_first_problem(line: str, message: str) -> None:
    with pytest.raises(FormatError) as err:
        list(jsonlines.parse_jsonl([GOOD, line, GOOD.replace('"id":0', '"id":9')], "d.jsonl"))
    assert str(err.value).startswith(f"d.jsonl: line 2: {message}")


def test_reader_reports_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD.encode() + b'{"id":1,"path":"\xff","label":1,"image":"eA=="}\n')
    with pytest.raises(FormatError) as err:
        list(read_jsonl(str(path)))
    assert str(err.value) == f"{path}: line 2: not valid UTF-8 (save the file as UTF-8)"


def test_reader_skips_a_byte_order_mark_and_ignores_unknown_keys() -> None:
    line = '\ufeff{"id":4,"path":"a.jpg","label":2,"image":"eA==","extra":{"k":1}}\n'
    assert list(jsonlines.parse_jsonl([line], "d")) == [JsonlEntry(4, (2.0,), "a.jpg", b"x")]


def test_problems_lists_every_bad_line_and_keeps_going() -> None:
    lines = [
        GOOD,
        "oops\n",
        '{"id":0,"path":"b","label":"x","image":"!!"}\n',
        GOOD.replace('"id":0', '"id":3'),
    ]
    problems = list(jsonlines.iter_jsonl_problems(lines, "d.jsonl"))
    assert [(n, check) for n, check, _m in problems] == [
        (2, "json"),
        (3, "id"),
        (3, "label"),
        (3, "image"),
    ]
    assert problems[1][2] == "id 0 already used on line 1"


def test_looks_like_jsonl_dataset_tells_it_from_manifest_and_prediction_lines() -> None:
    assert jsonlines.looks_like_jsonl_dataset(GOOD)
    assert not jsonlines.looks_like_jsonl_dataset('{"source-ref":"s3://b/k.jpg","class":0}')
    assert not jsonlines.looks_like_jsonl_dataset('{"prediction":[0.1,0.9]}')
    assert not jsonlines.looks_like_jsonl_dataset("0\t1.000000\ta.jpg")


def test_base64_is_the_standard_alphabet_with_padding() -> None:
    data = bytes(range(256))
    line = json.loads(format_jsonl_line(0, 0, "a", data))
    assert line["image"] == base64.standard_b64encode(data).decode()
    assert "-" not in line["image"] and line["image"].endswith("=")


def test_unicode_line_separators_in_paths_are_escaped() -> None:
    line = format_jsonl_line(0, 0, "a\u2028b\u0085c\u2029.jpg", b"x")
    assert line.splitlines() == [line.rstrip("\n")]
    assert "\\u2028" in line and "\\u0085" in line and "\\u2029" in line
    assert json.loads(line)["path"] == "a\u2028b\u0085c\u2029.jpg"

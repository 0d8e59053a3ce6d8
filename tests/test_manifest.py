"""manifest-gen and manifest-to-lst, and the manifest checks verify uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import leftovers, make_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from imgfmt.cli import cli
from imgfmt.errors import FormatError
from imgfmt.formats import lst, manifest

DATE = "2026-01-01T00:00:00"
DATE_TEXT = "2026-01-01T00:00:00.000000"
PREFIX = "s3://bucket/photos"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def error_line(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in result.output
    return lines[-1]


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"cat": 2, "dog": 1, "emu": 1}, size=(8, 8))


# --------------------------------------------------------------------------- manifest-gen


def test_folder_gives_ground_truth_lines_field_by_field(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.manifest"
    stdout = run(
        "manifest-gen", str(photos), str(out), "--s3-prefix", PREFIX, "--creation-date", DATE
    )
    assert stdout == f"wrote 4 single-label lines, 3 classes, to {out}\n"
    text = out.read_text(encoding="utf-8")
    # Compact JSON, keys in the developer guide's order, one object per line.
    assert text.splitlines()[0] == (
        '{"source-ref":"s3://bucket/photos/cat/img0.jpg","class":0,"class-metadata":'
        '{"class-name":"cat","confidence":1.0,"type":"groundtruth/image-classification",'
        '"job-name":"labeling-job/imgfmt","human-annotated":"yes",'
        '"creation-date":"2026-01-01T00:00:00.000000"}}'
    )
    objs = lines_of(out)
    # im2rec's listing order (not shuffled), class indices from the folders.
    assert [(o["source-ref"], o["class"], o["class-metadata"]["class-name"]) for o in objs] == [
        (f"{PREFIX}/cat/img0.jpg", 0, "cat"),
        (f"{PREFIX}/cat/img1.jpg", 0, "cat"),
        (f"{PREFIX}/dog/img0.jpg", 1, "dog"),
        (f"{PREFIX}/emu/img0.jpg", 2, "emu"),
    ]
    for obj in objs:
        assert list(obj) == ["source-ref", "class", "class-metadata"]
        assert list(obj["class-metadata"]) == [
            "class-name",
            "confidence",
            "type",
            "job-name",
            "human-annotated",
            "creation-date",
        ]
    assert not leftovers(tmp_path)
    assert list(manifest.iter_manifest_problems(text.splitlines(True), str(out))) == []


def test_options_name_the_attribute_and_job(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.manifest"
    options = ["--label-attribute", "animal", "--job-name", "zoo-1"]
    date = "2026-01-01T01:00:00+01:00"
    run(
        "manifest-gen",
        str(photos),
        str(out),
        "--s3-prefix",
        "s3://b/",
        *options,
        "--creation-date",
        date,
    )
    obj = lines_of(out)[0]
    assert list(obj) == ["source-ref", "animal", "animal-metadata"]
    assert obj["source-ref"] == "s3://b/cat/img0.jpg"
    assert obj["animal-metadata"]["job-name"] == "labeling-job/zoo-1"
    assert obj["animal-metadata"]["creation-date"] == DATE_TEXT  # converted to UTC


def test_default_creation_date_is_utc_with_microseconds(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.manifest"
    run("manifest-gen", str(photos), str(out), "--s3-prefix", PREFIX)
    dates = {o["class-metadata"]["creation-date"] for o in lines_of(out)}
    assert len(dates) == 1  # one timestamp per run
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", dates.pop())


def test_same_inputs_give_the_same_bytes(photos: Path, tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.manifest"
        run("manifest-gen", str(photos), str(out), "--s3-prefix", PREFIX, "--creation-date", DATE)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_dash_writes_the_manifest_to_stdout_and_the_summary_to_stderr(photos: Path) -> None:
    result = invoke("manifest-gen", str(photos), "-", "--s3-prefix", PREFIX, "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["class"] for line in result.stdout.splitlines()] == [0, 0, 1, 2]
    summary = json.loads(result.stderr)
    assert summary["manifest"] == "-" and summary["lines"] == 4
    assert summary["classes"] == {"0": "cat", "1": "dog", "2": "emu"}


def test_root_keeps_parent_folders_in_the_key(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.manifest"
    run(
        "manifest-gen", str(photos), str(out), "--s3-prefix", "s3://b/data", "--root", str(tmp_path)
    )
    assert lines_of(out)[0]["source-ref"] == "s3://b/data/photos/cat/img0.jpg"
    result = invoke(
        "manifest-gen",
        str(photos),
        str(out),
        "--s3-prefix",
        "s3://b",
        "--root",
        str(photos / "cat"),
    )
    assert "is not inside --root" in error_line(result, code=2)


def test_lst_with_class_map(tmp_path: Path) -> None:
    (tmp_path / "data.lst").write_text(
        "7\t1.000000\tb/x y.jpg\n3\t0.000000\ta/é.png\n", encoding="utf-8"
    )
    (tmp_path / "data.classes.tsv").write_text("0\tcats\n1\tdogs\n", encoding="utf-8")
    out = tmp_path / "data.manifest"
    run("manifest-gen", str(tmp_path / "data.lst"), str(out), "--s3-prefix", PREFIX)
    objs = lines_of(out)
    assert [(o["source-ref"], o["class"], o["class-metadata"]["class-name"]) for o in objs] == [
        (f"{PREFIX}/b/x y.jpg", 1, "dogs"),  # raw keys: not URL-encoded
        (f"{PREFIX}/a/é.png", 0, "cats"),
    ]
    assert "é" in out.read_text(encoding="utf-8")  # not ASCII-escaped


def test_lst_without_class_map_names_classes_by_number(tmp_path: Path) -> None:
    src = tmp_path / "l.lst"
    src.write_text("0\t4.000000\tx.jpg\n", encoding="utf-8")
    run("manifest-gen", str(src), str(tmp_path / "o.manifest"), "--s3-prefix", PREFIX)
    assert lines_of(tmp_path / "o.manifest")[0]["class-metadata"]["class-name"] == "4"


def test_multi_label_lst_is_multi_hot(tmp_path: Path) -> None:
    src = tmp_path / "tags.lst"
    src.write_text(
        "0\t0.000000\t1.000000\t1.000000\tp/0.jpg\n1\t1.000000\t0.000000\t0.000000\tp/1.jpg\n",
        encoding="utf-8",
    )
    (tmp_path / "tags.classes.tsv").write_text("0\tperson\n1\tbicycle\n2\tclothing\n")
    out = tmp_path / "tags.manifest"
    run(
        "manifest-gen",
        str(src),
        str(out),
        "--s3-prefix",
        PREFIX,
        "--multi-label",
        "--creation-date",
        DATE,
    )
    assert out.read_text(encoding="utf-8").splitlines()[0] == (
        '{"source-ref":"s3://bucket/photos/p/0.jpg","class":[1,2],"class-metadata":'
        '{"job-name":"labeling-job/imgfmt","class-map":{"1":"bicycle","2":"clothing"},'
        '"human-annotated":"yes","creation-date":"2026-01-01T00:00:00.000000",'
        '"confidence-map":{"1":1.0,"2":1.0},"type":"groundtruth/image-classification-multilabel"}}'
    )
    assert lines_of(out)[1]["class"] == [0]


def test_multi_column_lst_needs_multi_label(tmp_path: Path) -> None:
    src = tmp_path / "tags.lst"
    src.write_text("0\t0.000000\t1.000000\tx.jpg\n", encoding="utf-8")
    result = invoke("manifest-gen", str(src), str(tmp_path / "o.manifest"), "--s3-prefix", PREFIX)
    assert error_line(result, code=2) == (
        f"Error: {src}: index 0 has 2 label columns "
        "(pass --multi-label for a multi-hot list, one 0/1 column per class)"
    )
    assert not (tmp_path / "o.manifest").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("0\t3.000000\tx.jpg\n", "index 0 has label 3, but a multi-label .lst is multi-hot"),
        ("0\t0.000000\t0.000000\tx.jpg\n", "index 0 sets no class (every column is 0)"),
        ("0\t1.000000\tx.jpg\n1\t1.000000\t0.000000\ty.jpg\n", "index 1 has 2 label columns"),
    ],
)
def test_ambiguous_multi_label_lists_are_refused(
    tmp_path: Path, content: str, message: str
) -> None:
    src = tmp_path / "m.lst"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "o.manifest"
    result = invoke("manifest-gen", str(src), str(out), "--s3-prefix", PREFIX, "--multi-label")
    assert message in error_line(result)
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("0\t1.500000\tx.jpg\n", "label 1.5 of index 0 is not a class index"),
        ("0\t1.000000\t../x.jpg\n", "image path '../x.jpg' (index 0) is not a plain relative"),
        ("0\t1.000000\t/abs/x.jpg\n", "image path '/abs/x.jpg' (index 0) is not a plain"),
    ],
)
def test_bad_lst_lines_are_refused(tmp_path: Path, content: str, message: str) -> None:
    src = tmp_path / "m.lst"
    src.write_text(content, encoding="utf-8")
    result = invoke("manifest-gen", str(src), str(tmp_path / "o.manifest"), "--s3-prefix", PREFIX)
    assert message in error_line(result)


def test_class_missing_from_the_class_map_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.lst").write_text("0\t2.000000\tx.jpg\n", encoding="utf-8")
    (tmp_path / "d.classes.tsv").write_text("0\tcat\n", encoding="utf-8")
    result = invoke("manifest-gen", str(tmp_path / "d.lst"), "-", "--s3-prefix", PREFIX)
    assert "class 2 has no name in the class map" in error_line(result)
    assert result.stdout == ""  # nothing written before every line was checked


@pytest.mark.parametrize("name", ["image-ref", "class-metadata", "a-metadata-b", "", " x"])
def test_bad_label_attribute_names_are_refused_up_front(photos: Path, name: str) -> None:
    result = invoke(
        "manifest-gen", str(photos), "-", "--s3-prefix", PREFIX, "--label-attribute", name
    )
    line = error_line(result, code=2)
    assert line.startswith("Error: Invalid value for '--label-attribute': label attribute ")
    assert result.stdout == ""


def test_missing_s3_prefix_says_what_to_pass(photos: Path, tmp_path: Path) -> None:
    result = invoke("manifest-gen", str(photos), str(tmp_path / "o.manifest"))
    assert error_line(result, code=2) == (
        f"Error: a local source ({photos}) needs --s3-prefix: source-ref must be an s3:// URI "
        "(pass the S3 folder the images are uploaded to, e.g. --s3-prefix s3://bucket/photos)"
    )


@pytest.mark.parametrize("prefix", ["bucket/photos", "s3://", "s3:///x", "s3://b/x//y", "gs://b"])
def test_bad_s3_prefix_is_a_usage_error(photos: Path, prefix: str) -> None:
    result = invoke("manifest-gen", str(photos), "-", "--s3-prefix", prefix)
    assert "is not of the form s3://bucket[/prefix]" in error_line(result, code=2)


def test_bad_creation_date_and_job_name_are_usage_errors(photos: Path) -> None:
    result = invoke("manifest-gen", str(photos), "-", "--s3-prefix", PREFIX, "--creation-date", "x")
    assert "is not an ISO 8601 date/time" in error_line(result, code=2)
    result = invoke("manifest-gen", str(photos), "-", "--s3-prefix", PREFIX, "--job-name", "a b")
    assert "is not a SageMaker labeling job name" in error_line(result, code=2)


# --------------------------------------------------------------------------- manifest-to-lst


@pytest.mark.parametrize("strip", [True, False])
def test_round_trip_folder_manifest_lst(photos: Path, tmp_path: Path, strip: bool) -> None:
    out = tmp_path / "all.manifest"
    run("manifest-gen", str(photos), str(out), "--s3-prefix", PREFIX)
    prefix = tmp_path / "back"
    run("manifest-to-lst", str(out), str(prefix), *(["--s3-prefix", PREFIX] if strip else []))
    expected, classes = lst.list_images(str(photos), recursive=True)
    assert list(lst.read_lst(str(prefix) + ".lst")) == expected
    assert lst.read_class_map(str(prefix) + ".classes.tsv") == classes


def test_round_trip_multi_label(tmp_path: Path) -> None:
    src = tmp_path / "tags.lst"
    entries = [
        lst.LstEntry(0, (0.0, 1.0, 1.0), "p/0.jpg"),
        lst.LstEntry(1, (1.0, 0.0, 0.0), "q/1.jpg"),
        lst.LstEntry(2, (0.0, 0.0, 1.0), "q/2.jpg"),
    ]
    lst.write_lst(str(src), entries)
    lst.write_class_map(str(tmp_path / "tags.classes.tsv"), {0: "a", 1: "b", 2: "c"})
    out = tmp_path / "tags.manifest"
    run("manifest-gen", str(src), str(out), "--s3-prefix", PREFIX, "--multi-label")
    stdout = run("manifest-to-lst", str(out), str(tmp_path / "back"), "--json")
    summary = json.loads(stdout)
    assert summary["multi_label"] is True and summary["s3_prefix"] == PREFIX
    assert list(lst.read_lst(str(tmp_path / "back.lst"))) == entries
    assert lst.read_class_map(str(tmp_path / "back.classes.tsv")) == {0: "a", 1: "b", 2: "c"}


def _line(source: str, label: object, name: str = "cat", attr: str = "class") -> str:
    meta = {"class-name": name, "confidence": 1.0, "type": manifest.TYPE_SINGLE}
    return json.dumps({"source-ref": source, attr: label, f"{attr}-metadata": meta}) + "\n"


def test_manifest_to_lst_finds_or_asks_for_the_label_attribute(tmp_path: Path) -> None:
    both = json.loads(_line("s3://b/x.jpg", 0))
    both.update({"other": 1, "other-metadata": {"type": manifest.TYPE_SINGLE, "class-name": "z"}})
    src = tmp_path / "m.manifest"
    src.write_text(json.dumps(both) + "\n", encoding="utf-8")
    result = invoke("manifest-to-lst", str(src), str(tmp_path / "o"))
    assert error_line(result) == (
        f"Error: {src}: line 1: several label attributes ('class', 'other') "
        "(name the one to use with --label-attribute)"
    )
    run("manifest-to-lst", str(src), str(tmp_path / "o"), "--label-attribute", "other")
    assert lst.read_class_map(str(tmp_path / "o.classes.tsv")) == {1: "z"}
    assert (tmp_path / "o.lst").read_text() == "0\t1.000000\tx.jpg\n"


def test_manifest_to_lst_refuses_damage_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "m.manifest"
    src.write_text(_line("s3://b/a/x.jpg", 0) + _line("s3://b/a/y.jpg", 0, "dog"), encoding="utf-8")
    result = invoke("manifest-to-lst", str(src), str(tmp_path / "o"))
    assert error_line(result) == (
        f"Error: {src}: line 2: class 0 is named 'dog' here but 'cat' on line 1 "
        "(one name per class index)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.manifest"]


def test_manifest_to_lst_s3_prefix_must_hold_every_image(tmp_path: Path) -> None:
    src = tmp_path / "m.manifest"
    src.write_text(_line("s3://b/a/x.jpg", 0) + _line("s3://b/c/y.jpg", 1), encoding="utf-8")
    result = invoke("manifest-to-lst", str(src), str(tmp_path / "o"), "--s3-prefix", "s3://b/a")
    assert error_line(result) == (
        f"Error: {src}: line 2: source-ref 's3://b/c/y.jpg' is not under s3://b/a "
        "(pass an --s3-prefix that holds every image)"
    )
    src.write_text(_line("s3://b/x.jpg", 0) + _line("s3://c/y.jpg", 1), encoding="utf-8")
    result = invoke("manifest-to-lst", str(src), str(tmp_path / "o"))
    assert "lie in several buckets" in error_line(result)


# --------------------------------------------------------------------------- checking


def test_iter_manifest_problems_reports_every_problem_with_its_line() -> None:
    good = _line("s3://b/x.jpg", 0)
    multi_meta = {
        "class-map": {"1": "bike"},
        "confidence-map": {"1": 1.0},
        "type": manifest.TYPE_MULTI,
    }
    no_source = {"class": 0, "class-metadata": {"class-name": "cat", "type": manifest.TYPE_SINGLE}}
    multi = {"source-ref": "s3://b/y.jpg", "class": [1, 2], "class-metadata": multi_meta}
    bad_ref = {
        "source-ref": "s3://b/y.jpg",
        "mask-ref": "y.png",
        "class": 1,
        "class-metadata": {"class-name": "", "type": "x"},
    }
    lines = [
        good,  # 1
        "{not json\n",  # 2
        "[1, 2]\n",  # 3
        _line("https://b/x.jpg", 0),  # 4
        json.dumps(no_source) + "\n",  # 5
        _line("s3://b/x.jpg", "0"),  # 6
        _line("s3://b/x.jpg", 0, name="dog"),  # 7
        json.dumps({"source-ref": "s3://b/y.jpg", "class": 1}) + "\n",  # 8
        json.dumps(multi) + "\n",  # 9
        "\n",  # 10
        json.dumps(bad_ref) + "\n",  # 11
        good,  # 12
    ]
    problems = list(manifest.iter_manifest_problems(lines, "m.manifest"))
    found = [(number, check) for number, check, _message in problems]
    assert found == [
        (2, "json"),
        (3, "json"),
        (4, "source-ref"),
        (5, "source-ref"),
        (6, "label"),
        (7, "metadata"),
        (8, "metadata"),
        (9, "metadata"),  # multi-label line in a single-label manifest
        (9, "metadata"),  # class-map keys differ from the labels
        (9, "metadata"),  # confidence-map too
        (10, "json"),
        (11, "source-ref"),
        (11, "metadata"),
        (11, "metadata"),
    ]
    messages = {(n, c): m for n, c, m in problems}
    assert messages[(4, "source-ref")] == (
        "'source-ref' is 'https://b/x.jpg', not an s3://bucket/key URI "
        "(every attribute ending in '-ref' must be an S3 object URI)"
    )
    assert messages[(6, "label")].startswith("'class' is '0', not a class index")
    assert messages[(7, "metadata")].startswith("class 0 is named 'dog' here but 'cat' on line 1")
    assert messages[(8, "metadata")].startswith("no 'class-metadata'")


def test_iter_manifest_problems_names_a_missing_label_attribute() -> None:
    lines = [json.dumps({"source-ref": "s3://b/x.jpg"}), _line("s3://b/x.jpg", 0, attr="a")]
    assert list(manifest.iter_manifest_problems(lines, "m", label_attribute="cls")) == [
        (1, "label", "no label attribute 'cls'"),
        (1, "metadata", "no 'cls-metadata' (Ground Truth writes it per line)"),
        (2, "label", "no label attribute 'cls'"),
        (2, "metadata", "no 'cls-metadata' (Ground Truth writes it per line)"),
    ]
    found = list(manifest.iter_manifest_problems(lines[:1], "m"))
    assert [(n, c) for n, c, _m in found] == [(1, "label")]


def test_read_manifest_raises_on_the_first_problem(tmp_path: Path) -> None:
    src = tmp_path / "m.manifest"
    src.write_text(_line("s3://b/x.jpg", 0) + _line("s3://b/y.jpg", -1), encoding="utf-8")
    reader = manifest.read_manifest(str(src))
    assert next(reader)["source-ref"] == "s3://b/x.jpg"
    with pytest.raises(FormatError) as info:
        next(reader)
    assert str(info.value) == (
        f"{src}: line 2: 'class' is -1, not a class index "
        '(write a whole number from 0, e.g. 0 (not "0"))'
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["source-ref", "class", "class-metadata", "type", "class-map", "x-ref"])
            | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=40) | json_values.map(json.dumps), max_size=6))
def test_iter_manifest_problems_never_raises(lines: list[str]) -> None:
    for number, check, message in manifest.iter_manifest_problems(lines, "m"):
        assert 1 <= number <= len(lines)
        assert check in {"json", "source-ref", "label", "metadata"}
        assert message and "\n" not in message


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    problems = list(manifest.iter_manifest_problems(["[" * 100_000], "m"))
    assert [(n, c) for n, c, _m in problems] == [(1, "json")]

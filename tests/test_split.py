"""split: .lst, .rec and manifests into train/val/test, stratified, nothing lost or duplicated."""

from __future__ import annotations

import json
import random
import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import leftovers
from hypothesis import given, settings
from hypothesis import strategies as st

from imgfmt.cli import cli
from imgfmt.errors import UsageError
from imgfmt.formats.recordio import (
    MAGIC_BYTES,
    RecordFileWriter,
    RecordReader,
    pack_image_record,
    read_idx,
    unpack_image_record,
)
from imgfmt.ops.split import allocate_counts, assign_splits, split_dataset, split_ratios


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.output


def fail(*args: str, expect: int = 1) -> str:
    """Run a command that must fail; returns stderr, which must be one line."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == expect, result.output
    if expect == 1:
        assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


def lst_lines(class_sizes: dict[int, int], seed: int = 0) -> list[str]:
    """A .lst whose classes are interleaved, with sparse indices."""
    labels = [c for c, n in class_sizes.items() for _ in range(n)]
    random.Random(seed).shuffle(labels)
    return [f"{7 * i + 3}\t{label:f}\tclass{label}/img {i}.jpg\n" for i, label in enumerate(labels)]


def write_lst(path: Path, class_sizes: dict[int, int], seed: int = 0) -> list[str]:
    lines = lst_lines(class_sizes, seed)
    path.write_text("".join(lines))
    return lines


def label_of(line: str) -> int:
    return int(float(line.split("\t")[1]))


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def check_partition(
    inputs: list[str], outputs: list[list[str]], ratios: list[float], stratified: bool = True
) -> None:
    # Nothing lost, nothing duplicated; each output a stable sub-sequence of the input.
    assert sorted(line for part in outputs for line in part) == sorted(inputs)
    assert sum(len(part) for part in outputs) == len(inputs)
    for part in outputs:
        assert is_subsequence(part, inputs)
    per_class = Counter(label_of(line) for line in inputs)
    for part, ratio in zip(outputs, ratios):
        assert abs(len(part) - ratio * len(inputs)) < 1
        if stratified:
            got = Counter(label_of(line) for line in part)
            for cls, n in per_class.items():
                assert abs(got[cls] - ratio * n) < 1, (cls, got[cls], ratio, n)


# --------------------------------------------------------------------------- .lst


def test_lst_split_keeps_each_class_proportion(tmp_path: Path) -> None:
    src = tmp_path / "all.lst"
    lines = write_lst(src, {0: 10, 1: 7, 2: 3})
    out = run(
        "split", str(src), str(tmp_path / "ds"), "--train-ratio", "0.7", "--test-ratio", "0.1"
    )
    parts = [(tmp_path / f"ds_{s}.lst").read_text().splitlines(keepends=True) for s in SPLITS]
    check_partition(lines, parts, [0.7, 0.2, 0.1])
    assert [len(p) for p in parts] == [14, 4, 2]
    assert out.splitlines()[-1] == (
        "20 in, 20 out: train 14, val 4, test 2 "
        "(3 classes, stratified by class, seed 100); nothing lost, nothing duplicated"
    )
    assert f"wrote {tmp_path / 'ds_train.lst'}: 14 (0: 7, 1: 5, 2: 2)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "all.lst",
        "ds_test.lst",
        "ds_train.lst",
        "ds_val.lst",
    ]


SPLITS = ("train", "val", "test")


@pytest.mark.parametrize(
    ("train", "test", "files"),
    [
        ("0.8", "0", ["train", "val"]),
        ("0.5", "0.5", ["train", "test"]),
        ("0.6", "0.3", ["train", "val", "test"]),
        ("0.34", "0.33", ["train", "val", "test"]),
    ],
)
def test_lst_ratio_sets(tmp_path: Path, train: str, test: str, files: list[str]) -> None:
    src = tmp_path / "in.lst"
    lines = write_lst(src, {0: 13, 1: 8, 2: 5, 3: 1, 4: 21})
    run("split", str(src), str(tmp_path / "o"), "--train-ratio", train, "--test-ratio", test)
    written = sorted(p.name for p in tmp_path.glob("o_*"))
    assert written == sorted(f"o_{name}.lst" for name in files)
    ratio = {"train": float(train), "test": float(test)}
    ratio["val"] = 1 - ratio["train"] - ratio["test"]
    parts = [(tmp_path / f"o_{name}.lst").read_text().splitlines(keepends=True) for name in files]
    check_partition(lines, parts, [ratio[name] for name in files])


def test_json_summary(tmp_path: Path) -> None:
    src = tmp_path / "all.lst"
    write_lst(src, {0: 6, 1: 3, 5: 3})
    summary = json.loads(run("split", str(src), str(tmp_path / "s"), "--json", "--seed", "4"))
    train, val = str(tmp_path / "s_train.lst"), str(tmp_path / "s_val.lst")
    assert summary["input"] == str(src)
    assert summary["total_in"] == summary["total_out"] == 12
    assert summary["outputs"] == {
        train: {"split": "train", "count": 10, "classes": {"0": 5, "1": 2, "5": 3}},
        val: {"split": "val", "count": 2, "classes": {"0": 1, "1": 1}},
    }
    assert summary["classes"] == {"0": 6, "1": 3, "5": 3}
    assert summary["stratified"] is True and summary["seed"] == 4


def test_lines_are_copied_byte_for_byte(tmp_path: Path) -> None:
    # Labels written as "2" (not "2.000000"), CRLF, a blank line, no final newline: kept as is.
    src = tmp_path / "odd.lst"
    src.write_bytes(b"1\t2\ta.jpg\r\n\n2\t2\t  b c.jpg\r\n5\t1.5\tc.jpg\r\n9\t2\td.jpg")
    run("split", str(src), str(tmp_path / "o"), "--train-ratio", "0.5")
    both = (tmp_path / "o_train.lst").read_bytes() + (tmp_path / "o_val.lst").read_bytes()
    assert sorted(both.splitlines(keepends=True)) == sorted(
        [b"1\t2\ta.jpg\r\n", b"2\t2\t  b c.jpg\r\n", b"5\t1.5\tc.jpg\r\n", b"9\t2\td.jpg\n"]
    )


def test_multi_label_lines_stratify_by_label_tuple(tmp_path: Path) -> None:
    src = tmp_path / "multi.lst"
    rows = [(1, 0)] * 6 + [(0, 1)] * 4
    src.write_text("".join(f"{i}\t{a:f}\t{b:f}\t{i}.jpg\n" for i, (a, b) in enumerate(rows)))
    summary = json.loads(
        run("split", str(src), str(tmp_path / "m"), "--json", "--train-ratio", ".5")
    )
    counts = {out["split"]: out["classes"] for out in summary["outputs"].values()}
    assert counts == {"train": {"0,1": 2, "1,0": 3}, "val": {"0,1": 2, "1,0": 3}}


def test_seed_decides_and_repeats(tmp_path: Path) -> None:
    src = tmp_path / "all.lst"
    write_lst(src, {0: 40, 1: 30, 2: 30})
    outputs = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        run("split", str(src), str(tmp_path / name), "--seed", seed, "--test-ratio", "0.1")
        outputs[name] = [(tmp_path / f"{name}_{s}.lst").read_bytes() for s in SPLITS]
    assert outputs["a"] == outputs["b"]
    assert outputs["a"] != outputs["c"]


def test_no_stratify_cuts_the_shuffled_whole(tmp_path: Path) -> None:
    src = tmp_path / "all.lst"
    lines = write_lst(src, {0: 90, 1: 10})
    run("split", str(src), str(tmp_path / "n"), "--no-stratify", "--train-ratio", "0.75")
    parts = [(tmp_path / f"n_{s}.lst").read_text().splitlines(keepends=True) for s in SPLITS[:2]]
    check_partition(lines, parts, [0.75, 0.25], stratified=False)
    assert [len(p) for p in parts] == [75, 25]
    run("split", str(src), str(tmp_path / "s"), "--train-ratio", "0.75")
    assert (tmp_path / "s_train.lst").read_bytes() != (tmp_path / "n_train.lst").read_bytes()
    # Unstratified means one shuffle of everything: item order is seed-driven, not per class.
    assignment = assign_splits(["x"] * 8, [Fraction(1, 2)] * 2, seed=5, stratify=False)
    positions = list(range(8))
    random.Random(5).shuffle(positions)
    assert [assignment[p] for p in positions] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_class_map_travels_with_the_split(tmp_path: Path) -> None:
    src = tmp_path / "all.lst"
    write_lst(src, {0: 4, 1: 4})
    (tmp_path / "all.classes.tsv").write_text("0\tcat\n1\tdog\n")
    (tmp_path / "out").mkdir()
    out = run("split", str(src), str(tmp_path / "out" / "pets.lst"), "--train-ratio", "0.5")
    # A prefix given with an extension loses it: out/pets_train.lst, not pets.lst_train.lst.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "pets.classes.tsv",
        "pets_train.lst",
        "pets_val.lst",
    ]
    assert (tmp_path / "out" / "pets.classes.tsv").read_text() == "0\tcat\n1\tdog\n"
    assert f"class map: {tmp_path / 'out' / 'pets.classes.tsv'}" in out


# --------------------------------------------------------------------------- properties


class_lists = st.lists(st.integers(0, 5), min_size=1, max_size=120)
hundredths = st.tuples(st.integers(1, 99), st.integers(0, 99)).filter(lambda t: t[0] + t[1] <= 100)


@settings(max_examples=200, deadline=None)
@given(classes=class_lists, cuts=hundredths, seed=st.integers(0, 2**32))
def test_assignment_properties(classes: list[int], cuts: tuple[int, int], seed: int) -> None:
    train, test = Fraction(cuts[0], 100), Fraction(cuts[1], 100)
    ratios = [r for r in (train, 1 - train - test, test) if r > 0]
    assignment = assign_splits(classes, ratios, seed=seed)
    assert len(assignment) == len(classes) and set(assignment) <= set(range(len(ratios)))
    assert assignment == assign_splits(classes, ratios, seed=seed)
    sizes = Counter(classes)
    for split, ratio in enumerate(ratios):
        members = [c for c, s in zip(classes, assignment) if s == split]
        assert abs(len(members) - ratio * len(classes)) < 1
        got = Counter(members)
        for cls, n in sizes.items():
            assert abs(got[cls] - ratio * n) < 1


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.dictionaries(st.integers(0, 9), st.integers(1, 25), min_size=1, max_size=6),
    cuts=st.sampled_from([(80, 0), (70, 10), (50, 50), (60, 20), (34, 33), (90, 5)]),
    seed=st.integers(0, 1000),
)
def test_lst_split_end_to_end_property(
    sizes: dict[int, int], cuts: tuple[int, int], seed: int
) -> None:
    train, test = cuts[0] / 100, cuts[1] / 100
    names = [n for n, r in zip(SPLITS, (train, 1 - train - test, test)) if round(r, 9) > 0]
    ratios = {"train": train, "val": 1 - train - test, "test": test}
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.lst"
        lines = write_lst(src, sizes, seed)
        try:
            result = split_dataset(
                str(src), f"{folder}/o", train_ratio=train, test_ratio=test, seed=seed
            )
        except UsageError as err:  # too few items for a split: refused, nothing written
            assert "would be empty" in str(err)
            assert sorted(p.name for p in Path(folder).iterdir()) == ["in.lst"]
            return
        assert [o.split for o in result.outputs] == names
        parts = [(Path(folder) / f"o_{n}.lst").read_text().splitlines(True) for n in names]
        check_partition(lines, parts, [ratios[n] for n in names])
        assert result.total_in == result.total_out == len(lines)
        again = split_dataset(
            str(src), f"{folder}/p", train_ratio=train, test_ratio=test, seed=seed
        )
        assert [o.classes for o in again.outputs] == [o.classes for o in result.outputs]
        for n in names:
            assert (Path(folder) / f"o_{n}.lst").read_bytes() == (
                Path(folder) / f"p_{n}.lst"
            ).read_bytes()


def test_allocation_balances_split_totals_where_greedy_alone_does_not() -> None:
    # A case where handing out leftovers greedily overshoots one split; the repair fixes it.
    sizes = {f"c{i}": n for i, n in enumerate([8, 11, 4, 5, 6, 3, 2, 4, 8, 4, 11, 6])}
    ratios = [Fraction(3, 10), Fraction(9, 20), Fraction(1, 4)]
    counts = allocate_counts(sizes, ratios)
    total = sum(sizes.values())
    for s, ratio in enumerate(ratios):
        assert abs(sum(c[s] for c in counts.values()) - ratio * total) < 1
        for name, n in sizes.items():
            assert abs(counts[name][s] - ratio * n) < 1
    # A whole share is met exactly, never off by one.
    assert allocate_counts({"a": 10, "b": 5}, [Fraction(4, 5), Fraction(1, 5)]) == {
        "a": [8, 2],
        "b": [4, 1],
    }


def test_ratios_are_exact() -> None:
    assert split_ratios(0.7, 0.3) == {"train": Fraction(7, 10), "test": Fraction(3, 10)}
    assert split_ratios(0.8) == {"train": Fraction(4, 5), "val": Fraction(1, 5)}


# --------------------------------------------------------------------------- .rec


def payload_for(i: int) -> bytes:
    body = bytes(random.Random(i).randrange(256) for _ in range(13 + i % 7))
    return body + (MAGIC_BYTES * (i % 3)) + b"end"  # some need escaping when framed


def write_rec(path: Path, labels: list[float | tuple[float, ...]], base: int = 500) -> dict:
    """A .rec whose keys (and header ids) are base + 3*i; returns key -> payload."""
    expected = {}
    with RecordFileWriter(str(path)) as out:
        for i, label in enumerate(labels):
            key = base + 3 * i
            payload = pack_image_record(label, key, payload_for(i))
            out.write(payload, key=key)
            expected[key] = payload
    return expected


def read_split_rec(path: Path) -> dict[int, bytes]:
    """Every record of an output, by .idx key, checking the index against a sequential read."""
    idx = read_idx(str(path.with_suffix(".idx")))
    by_offset = {rec.offset: rec.payload for rec in RecordReader(str(path), use_index=False)}
    assert sorted(idx.values()) == sorted(by_offset)  # one index line per record, at its head
    reader = RecordReader(str(path))
    out = {key: reader.read_key(key) for key in idx}
    assert all(out[key] == by_offset[offset] for key, offset in idx.items())
    return out


def test_rec_split_copies_records_unchanged(tmp_path: Path) -> None:
    labels: list[float | tuple[float, ...]] = [float(i % 3) for i in range(30)]
    labels += [(1.0, 0.0)] * 4 + [(0.0, 1.0)] * 2
    src = tmp_path / "all.rec"
    expected = write_rec(src, labels)
    summary = json.loads(
        run(
            "split",
            str(src),
            str(tmp_path / "r"),
            "--test-ratio",
            ".25",
            "--train-ratio",
            ".5",
            "--json",
        )
    )
    names = sorted(p.name for p in tmp_path.glob("r_*"))
    assert names == [f"r_{s}.{e}" for s in ("test", "train", "val") for e in ("idx", "rec")]
    parts = {s: read_split_rec(tmp_path / f"r_{s}.rec") for s in SPLITS}
    merged: dict[int, bytes] = {}
    for part in parts.values():
        assert not set(part) & set(merged)
        merged.update(part)
    assert merged == expected  # same keys, same payload bytes
    for s, part in parts.items():
        # Input order within each output (keys ascend with input position here).
        assert list(part) == sorted(part)
        classes = Counter(
            ",".join(f"{v:g}" for v in unpack_image_record(p)[0].labels) for p in part.values()
        )
        info = summary["outputs"][str(tmp_path / f"r_{s}.rec")]
        assert info["index"] == str(tmp_path / f"r_{s}.idx")
        assert info["count"] == len(part) and info["classes"] == dict(classes)
    assert summary["classes"] == {"0": 10, "1": 10, "2": 10, "0,1": 2, "1,0": 4}
    assert [len(parts[s]) for s in SPLITS] == [18, 9, 9]


def test_rec_keys_come_from_the_idx(tmp_path: Path) -> None:
    # An .idx whose keys differ from the header ids: the outputs keep the .idx keys.
    src = tmp_path / "k.rec"
    write_rec(src, [0.0, 1.0] * 5)
    idx = read_idx(str(tmp_path / "k.idx"))
    (tmp_path / "k.idx").write_text("".join(f"{k * 10}\t{o}\n" for k, o in idx.items()))
    run("split", str(src), str(tmp_path / "o"), "--train-ratio", "0.6")
    keys = set(read_idx(str(tmp_path / "o_train.idx"))) | set(read_idx(str(tmp_path / "o_val.idx")))
    assert keys == {k * 10 for k in idx}
    # Without an .idx, the header ids are the keys.
    (tmp_path / "k.idx").unlink()
    run("split", str(src), str(tmp_path / "p"), "--train-ratio", "0.6")
    keys = set(read_idx(str(tmp_path / "p_train.idx"))) | set(read_idx(str(tmp_path / "p_val.idx")))
    assert keys == set(idx)


def test_rec_index_that_does_not_match_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "m.rec"
    write_rec(src, [0.0, 1.0] * 3)
    lines = (tmp_path / "m.idx").read_text().splitlines(keepends=True)
    (tmp_path / "m.idx").write_text("".join(lines[:2] + lines[3:]))
    err = fail("split", str(src), str(tmp_path / "o"))
    assert "record is missing from the index" in err and "record 2 at byte" in err
    assert "verify --fix-idx" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.idx", "m.rec"]


def test_rec_with_a_bad_record_names_it_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "bad.rec"
    with RecordFileWriter(str(src)) as out:
        out.write(pack_image_record(0.0, 0, b"img0"), key=0)
        out.write(pack_image_record(1.0, 1, b"img1"), key=1)
        out.write(b"tiny", key=2)  # shorter than an image header
    offset = read_idx(str(tmp_path / "bad.idx"))[2]
    err = fail("split", str(src), str(tmp_path / "o"))
    assert f"{src}: record 2 at byte {offset}: record of 4 bytes is shorter" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.idx", "bad.rec"]
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- manifests


def manifest_line(i: int, cls: int) -> bytes:
    # Odd spacing, key order and non-ASCII: re-serialising would change these bytes.
    meta = {"class-name": f"naïve {cls}", "type": "groundtruth/image-classification"}
    return (
        f'{{ "class":{cls},  "source-ref": "s3://b/k/{i}.jpg", '
        f'"class-metadata": {json.dumps(meta, ensure_ascii=False)} }}\n'
    ).encode()


def test_manifest_split_keeps_lines_byte_identical(tmp_path: Path) -> None:
    lines = [manifest_line(i, i % 4) for i in range(22)]
    src = tmp_path / "gt.jsonl"
    src.write_bytes(b"".join(lines))
    summary = json.loads(
        run(
            "split",
            str(src),
            str(tmp_path / "m"),
            "--train-ratio",
            "0.5",
            "--test-ratio",
            "0.25",
            "--json",
        )
    )
    assert summary["label_attribute"] == "class"
    parts = [(tmp_path / f"m_{s}.jsonl").read_bytes().splitlines(keepends=True) for s in SPLITS]
    assert sorted(line for part in parts for line in part) == sorted(lines)
    for part in parts:
        assert is_subsequence(part, lines)  # type: ignore[arg-type]
    assert [len(p) for p in parts] == [11, 6, 5]
    assert summary["outputs"][str(tmp_path / "m_train.jsonl")]["classes"] == {
        "0": 3,
        "1": 3,
        "2": 3,
        "3": 2,
    }


def test_manifest_label_attribute(tmp_path: Path) -> None:
    src = tmp_path / "two.manifest"
    rows = [
        {
            "source-ref": f"s3://b/{i}.jpg",
            "kind": ["a", "b"][i % 2],
            "kind-metadata": {},
            "mood": i % 3,
            "mood-metadata": {},
        }
        for i in range(12)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    err = fail("split", str(src), str(tmp_path / "o"), expect=2)
    assert "label attributes ['kind', 'mood']" in err and "--label-attribute" in err
    summary = json.loads(
        run("split", str(src), str(tmp_path / "o"), "--label-attribute", "mood", "--json")
    )
    assert summary["classes"] == {"0": 4, "1": 4, "2": 4}
    assert sorted(p.name for p in tmp_path.glob("o_*")) == ["o_train.manifest", "o_val.manifest"]
    err = fail("split", str(src), str(tmp_path / "o"), "--label-attribute", "nope")
    assert f"{src}: line 1 at byte 0: no 'nope' attribute" in err
    err = fail(
        "split", str(tmp_path / "o_train.manifest"), str(tmp_path / "x"), "--label-attribute", ""
    )
    assert "no '' attribute" in err


def test_manifest_bad_line_is_named(tmp_path: Path) -> None:
    good = [manifest_line(i, i % 2) for i in range(4)]
    src = tmp_path / "bad.manifest"
    src.write_bytes(b"".join(good[:2]) + b'{"class": 1, oops\n' + b"".join(good[2:]))
    err = fail("split", str(src), str(tmp_path / "o"))
    offset = len(good[0]) + len(good[1])
    assert err.startswith(f"Error: {src}: line 3 at byte {offset}: not a JSON object")
    src.write_bytes(b"".join(good[:3]) + b'{"source-ref": "s3://b/x.jpg", "class": null}\n')
    assert "line 4" in fail("split", str(src), str(tmp_path / "o"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.manifest"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--train-ratio", "1.5"], 2, "1.5 is not in the range"),
        (["--train-ratio", "0"], 2, "0 is not in the range"),
        (["--test-ratio", "-0.1"], 2, "-0.1 is not in the range"),
        (["--train-ratio", "0.7", "--test-ratio", "0.4"], 2, "train ratio 0.7 + test ratio 0.4"),
        (["--train-ratio", "1"], 2, "train ratio 1 leaves nothing for validation or test"),
    ],
)
def test_bad_ratios(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    src = tmp_path / "a.lst"
    write_lst(src, {0: 5, 1: 5})
    err = fail("split", str(src), str(tmp_path / "o"), *args, expect=code)
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lst"]


def test_malformed_lst_line_is_named(tmp_path: Path) -> None:
    src = tmp_path / "bad.lst"
    src.write_text("0\t1.000000\ta.jpg\n1\t0.000000\tb.jpg\n2\tcat\tc.jpg\n")
    err = fail("split", str(src), str(tmp_path / "o"))
    assert err.startswith(f"Error: {src}: line 3: label 'cat' in field 2 is not a number")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.lst"]


def test_other_refusals(tmp_path: Path) -> None:
    src = tmp_path / "a.lst"
    write_lst(src, {0: 2, 1: 2})
    assert "the val split would be empty (4 items x 0.1 = 0.4)" in fail(
        "split", str(src), str(tmp_path / "o"), "--train-ratio", "0.9", expect=2
    )
    assert "cannot tell the format from the extension '.txt'" in fail(
        "split", str(tmp_path / "a.txt"), str(tmp_path / "o"), expect=2
    )
    assert "no such file" in fail("split", str(tmp_path / "missing.lst"), str(tmp_path / "o"))
    assert "names a folder" in fail("split", str(src), str(tmp_path) + "/", expect=2)
    assert "applies to manifests only" in fail(
        "split", str(src), str(tmp_path / "o"), "--label-attribute", "class", expect=2
    )
    # Splitting a_train.lst with prefix "a" would overwrite it.
    train = tmp_path / "a_train.lst"
    write_lst(train, {0: 5, 1: 5})
    assert "would overwrite the input" in fail("split", str(train), str(tmp_path / "a"), expect=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lst", "a_train.lst"]
    assert leftovers(tmp_path) == []

"""verify through the command line: every damage found and located, never a traceback."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import image_bytes, leftovers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgfmt import payloads
from imgfmt.cli import cli
from imgfmt.formats import recordio_check
from imgfmt.formats.recordio import MAGIC_BYTES, RecordFileWriter, pack_image_record
from imgfmt.ops.verify import Report, verify

HEAD = 8  # magic + lrec
IR = 24  # image record header


def run(*args: str, expect: int = 0) -> list[str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.output.splitlines()


def image(i: int) -> bytes:
    return image_bytes(32, 24, seed=i)


def make_rec(folder: Path, count: int = 10, name: str = "d.rec") -> tuple[Path, list[int]]:
    """``count`` single-label image records (label i % 3, id i); returns the path and offsets."""
    rec = folder / name
    offsets = []
    with RecordFileWriter(str(rec)) as writer:
        for i in range(count):
            offsets.append(writer.write(pack_image_record(float(i % 3), i, image(i)), key=i))
    return rec, offsets


def patch(path: Path, offset: int, data: bytes) -> None:
    blob = bytearray(path.read_bytes())
    blob[offset : offset + len(data)] = data
    path.write_bytes(bytes(blob))


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[int]]:
    return make_rec(tmp_path)


# --------------------------------------------------------------------------- clean data


def test_clean_dataset_exits_0_with_totals(dataset: tuple[Path, list[int]]) -> None:
    rec, _ = dataset
    assert run("verify", str(rec)) == ["checked 1 file: 10 records, 10 index entries: no problems"]
    assert run("verify", str(rec), "--decode") == [
        "checked 1 file: 10 records, 10 images decoded, 10 index entries: no problems"
    ]
    # The .idx as PATH verifies its .rec.
    assert run("verify", str(rec.with_suffix(".idx")))[-1].endswith("no problems")


def test_split_records_and_a_missing_index_are_not_problems(tmp_path: Path) -> None:
    rec = tmp_path / "m.rec"
    with RecordFileWriter(str(rec), write_index=False) as writer:
        # The magic at aligned payload offsets splits the record into pieces (cflag 1, 2, 3).
        writer.write(pack_image_record(1.0, 0, b"\0" * 4 + MAGIC_BYTES * 3 + b"tail"), key=0)
        writer.write(pack_image_record(2.0, 1, MAGIC_BYTES), key=1)
    assert run("verify", str(rec)) == [
        f"{rec}: no index {tmp_path / 'm.idx'} (sequential readers do without; random access "
        "and DALI need one: --fix-idx writes it)",
        "checked 1 file: 2 records: no problems",
    ]


# --------------------------------------------------------------------------- damaged .rec


def test_truncated_rec(dataset: tuple[Path, list[int]]) -> None:
    rec, offsets = dataset
    size = rec.stat().st_size
    os.truncate(rec, size - 100)
    length = IR + len(image(9))
    left = size - 100 - offsets[9] - HEAD
    assert run("verify", str(rec), expect=1) == [
        f"{rec}: record 9 at byte {offsets[9]}: file ends inside a record: piece of {length} "
        f"bytes has only {left}",
        f"{rec.with_suffix('.idx')}: line 10: offset {offsets[9]} (key 9) points at the "
        "damaged record 9",
        "checked 1 file: 9 records, 1 damaged record, 10 index entries: "
        "2 problems (framing 1, index 1)",
    ]


def test_damaged_heads_are_skipped_and_the_scan_goes_on(dataset: tuple[Path, list[int]]) -> None:
    rec, offsets = dataset
    patch(rec, offsets[2], b"\xf5")  # first magic byte 0a -> f5
    patch(rec, offsets[7] + 7, b"\x40")  # lrec's top byte: cflag 2, a continuation piece
    idx = rec.with_suffix(".idx")
    assert run("verify", str(rec), expect=1) == [
        f"{rec}: record 2 at byte {offsets[2]}: bad magic 0xced723f5 (expected 0xced7230a); "
        f"skipped {offsets[3] - offsets[2]} bytes to the next record head at byte {offsets[3]}",
        f"{rec}: record 7 at byte {offsets[7]}: record starts with a continuation piece "
        "(cflag 2); "
        f"skipped {offsets[8] - offsets[7]} bytes to the next record head at byte {offsets[8]}",
        f"{idx}: line 3: offset {offsets[2]} (key 2) points at the damaged record 2",
        f"{idx}: line 8: offset {offsets[7]} (key 7) points at the damaged record 7",
        "checked 1 file: 8 records, 2 damaged records, 10 index entries: "
        "4 problems (framing 2, index 2)",
    ]


def test_garbage_between_records_and_non_zero_padding(tmp_path: Path) -> None:
    rec, offsets = make_rec(tmp_path, 4)
    padded = next(i for i in range(4) if (IR + len(image(i))) % 4)
    pad_at = offsets[padded] + HEAD + IR + len(image(padded))
    patch(rec, pad_at, b"\x01")
    assert run("verify", str(rec), expect=1) == [
        f"{rec}: record {padded} at byte {offsets[padded]}: padding at byte {pad_at} is not zero",
        "checked 1 file: 4 records, 4 index entries: 1 problem (padding 1)",
    ]


def test_damaged_tail_without_a_head_after_it(tmp_path: Path) -> None:
    rec, offsets = make_rec(tmp_path, 3)
    with open(rec, "ab") as handle:
        handle.write(b"junk" * 5)
    end = offsets[2] + HEAD + IR + len(image(2)) + (-(IR + len(image(2))) % 4)
    assert run("verify", str(rec), expect=1)[0] == (
        f"{rec}: record 3 at byte {end}: bad magic 0x6b6e756a (expected 0xced7230a); "
        "no record head in the remaining 20 bytes"
    )


def test_empty_and_headerless_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.rec"
    empty.write_bytes(b"")
    assert run("verify", str(empty), expect=1)[0] == f"{empty}: empty file: no records"
    junk = tmp_path / "j.rec"
    junk.write_bytes(b"not a recordio file")
    assert run("verify", str(junk), expect=1)[:2] == [
        f"{junk}: record 0 at byte 0: bad magic 0x20746f6e (expected 0xced7230a); "
        "no record head in the remaining 19 bytes",
        f"{junk}: no intact record in the file",
    ]


def test_corrupted_jpeg_payload_is_found_with_decode(dataset: tuple[Path, list[int]]) -> None:
    rec, offsets = dataset
    data = image(3)
    start = offsets[3] + HEAD + IR + len(data) // 2
    patch(rec, start, bytes(len(data) - len(data) // 2))  # zero the second half
    assert run("verify", str(rec))[-1].endswith("no problems")  # framing is intact
    lines = run("verify", str(rec), "--decode", expect=1)
    assert lines[0].startswith(f"{rec}: record 3 at byte {offsets[3]}: corrupt JPEG: ")
    assert lines[1:] == [
        "checked 1 file: 10 records, 10 images decoded, 10 index entries: 1 problem (decode 1)"
    ]
    # The same with a single worker (no process pool).
    assert run("verify", str(rec), "--decode", "-j", "1", expect=1) == lines


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(),
    reason="the patch reaches workers by fork",
)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_decoder_that_kills_its_worker_costs_only_that_image(
    dataset: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """A segfaulting decoder (here: one that ends its process on one image) is reported on
    that image, and every other image is still decoded and checked."""
    rec, offsets = dataset
    deadly = image(6)
    real = payloads.decode_problem

    def crashing(data: bytes, readers: object = None, notes: list[str] | None = None) -> object:
        if data == deadly:
            import faulthandler

            faulthandler.disable()  # pytest's: it would print the crash
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(data, readers, notes)  # type: ignore[arg-type]

    monkeypatch.setattr(payloads, "decode_problem", crashing)
    report = verify([str(rec)], decode=True, workers=workers)
    assert [(p.check, p.where, p.message) for p in report.problems] == [
        (
            "decode",
            f"record 6 at byte {offsets[6]}",
            "the decoder crashed on this image: its worker process died (killed by SIGSEGV)",
        )
    ]
    assert report.checked["records"] == 10 and report.checked["images_decoded"] == 10


def test_labels_checked_against_the_class_map(tmp_path: Path) -> None:
    rec, offsets = make_rec(tmp_path, 4)
    (tmp_path / "d.classes.tsv").write_text("0\tcat\n1\tdog\n")
    lines = run("verify", str(rec), expect=1)
    assert lines[0] == (
        f"{rec}: record 2 at byte {offsets[2]}: label 2 is not in the class map "
        f"{tmp_path / 'd.classes.tsv'} (2 classes)"
    )
    other = tmp_path / "three.tsv"
    other.write_text("0\tcat\n1\tdog\n2\temu\n")
    assert run("verify", str(rec), "--classes", str(other))[-1].endswith("no problems")


def test_bad_headers_and_labels(tmp_path: Path) -> None:
    rec = tmp_path / "h.rec"
    with RecordFileWriter(str(rec)) as writer:
        at_nan = writer.write(pack_image_record(float("nan"), 0, image(0)), key=0)
        at_short = writer.write(b"short", key=1)
        at_flag = writer.write(pack_image_record([1.0] * 3, 2, b"")[:IR] + b"\0" * 4, key=2)
    assert run("verify", str(rec), expect=1)[:3] == [
        f"{rec}: record 0 at byte {at_nan}: label nan is not a finite number",
        f"{rec}: record 1 at byte {at_short}: record of 5 bytes is shorter than the "
        "24-byte image header",
        f"{rec}: record 2 at byte {at_flag}: header says 3 labels but the record holds only "
        "4 bytes after the header",
    ]


# --------------------------------------------------------------------------- .idx


def test_shifted_idx_offset(dataset: tuple[Path, list[int]]) -> None:
    rec, offsets = dataset
    idx = rec.with_suffix(".idx")
    lines = idx.read_text().splitlines(keepends=True)
    lines[4] = f"4\t{offsets[4] + 4}\n"
    idx.write_text("".join(lines))
    assert run("verify", str(rec), expect=1) == [
        f"{idx}: line 5: offset {offsets[4] + 4} (key 4) points at no record head",
        f"{idx}: record 4 at byte {offsets[4]}: record has no index entry (readers never see it)",
        "checked 1 file: 10 records, 10 index entries: 2 problems (index 2)",
    ]


def test_idx_keys_lines_and_duplicates(dataset: tuple[Path, list[int]]) -> None:
    rec, offsets = dataset
    idx = rec.with_suffix(".idx")
    lines = idx.read_text().splitlines(keepends=True)
    lines[0] = f"5\t{offsets[0]}\n"  # key 5 twice, and not record 0's header id
    lines[1] = "one\ttwo\n"
    lines[2] = f"2\t{offsets[3]}\n"
    idx.write_text("".join(lines))
    assert run("verify", str(rec), expect=1) == [
        f"{idx}: line 1: key 5 but the record at byte {offsets[0]} has header id 0",
        f"{idx}: line 2: expected 'key<TAB>offset' integers, found 'one\\ttwo'",
        f"{idx}: line 3: key 2 but the record at byte {offsets[3]} has header id 3",
        f"{idx}: line 4: offset {offsets[3]} already indexed on line 3",
        f"{idx}: line 6: key 5 already used on line 1",
        f"{idx}: record 1 at byte {offsets[1]}: record has no index entry (readers never see it)",
        f"{idx}: record 2 at byte {offsets[2]}: record has no index entry (readers never see it)",
        "checked 1 file: 10 records, 10 index entries: 7 problems (index 7)",
    ]


def test_empty_idx(dataset: tuple[Path, list[int]]) -> None:
    rec, _ = dataset
    rec.with_suffix(".idx").write_text("")
    assert run("verify", str(rec), expect=1)[0] == (
        f"{rec.with_suffix('.idx')}: empty index: no entries (some readers crash on it)"
    )


@pytest.mark.parametrize("damage", ["deleted", "shifted", "empty"])
def test_fix_idx_rebuilds_the_writers_index(dataset: tuple[Path, list[int]], damage: str) -> None:
    rec, offsets = dataset
    idx = rec.with_suffix(".idx")
    original = idx.read_bytes()
    if damage == "deleted":
        idx.unlink()
    elif damage == "shifted":
        idx.write_text(original.decode().replace(f"\t{offsets[4]}\n", f"\t{offsets[4] + 8}\n"))
    else:
        idx.write_text("")
    assert run("verify", str(rec), "--fix-idx") == [
        f"{rec}: rebuilt {idx}: 10 entries, keys are header ids",
        "checked 1 file: 10 records, 10 index entries: no problems",
    ]
    assert idx.read_bytes() == original
    assert leftovers(rec.parent) == []
    # A correct index is left alone.
    mtime = idx.stat().st_mtime_ns
    assert run("verify", str(rec), "--fix-idx")[-1].endswith("no problems")
    assert idx.stat().st_mtime_ns == mtime


def test_fix_idx_indexes_the_intact_records_of_a_damaged_rec(
    dataset: tuple[Path, list[int]],
) -> None:
    rec, offsets = dataset
    patch(rec, offsets[2], b"\xf5")
    lines = run("verify", str(rec), "--fix-idx", expect=1)
    assert lines[-1] == "checked 1 file: 9 records, 1 damaged record, 9 index entries: " + (
        "1 problem (framing 1)"
    )
    keys = [line.split("\t")[0] for line in rec.with_suffix(".idx").read_text().splitlines()]
    assert keys == ["0", "1", "3", "4", "5", "6", "7", "8", "9"]


# --------------------------------------------------------------------------- .lst


def test_lst_with_a_missing_file_a_malformed_line_and_a_duplicate(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(image(0))
    lst = tmp_path / "d.lst"
    lst.write_text(
        "0\t0.000000\ta.jpg\n"
        "1\t1.000000\n"
        "2\tx\tb.jpg\n"
        "3\t1.000000\tmissing.jpg\n"
        "4\t0.000000\tc.jpg\n"
        "4\t0.000000\tc.jpg\n"
    )
    assert run("verify", str(lst), expect=1) == [
        f"{lst}: line 2: expected at least 3 tab-separated fields, found 2: '1\\t1.000000'",
        f"{lst}: line 3: label 'x' in field 2 is not a number",
        f"{lst}: line 4: image not found: {tmp_path / 'missing.jpg'}",
        f"{lst}: line 6: index 4 already used on line 5",
        "checked 1 file: 6 lst lines, 4 lst entries, 3 files found: 4 problems (file 1, lst 3)",
    ]


def test_lst_paths_are_relative_to_root(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(image(0))
    lst = tmp_path / "lists" / "d.lst"
    lst.parent.mkdir()
    lst.write_text("0\t0.000000\ta.jpg\n")
    # None of its images is in the list's own folder: one problem that says so.
    assert run("verify", str(lst), expect=1)[0] == (
        f"{lst}: the image of {lst} is not under the list's folder {lst.parent} "
        f"({lst.parent / 'a.jpg'} does not exist) (pass --root, the folder the list's paths "
        "are relative to)"
    )
    assert run("verify", str(lst), "--root", str(photos))[-1].endswith("no problems")


# --------------------------------------------------------------------------- manifests


def _gt_line(ref: str, label: int) -> str:
    meta = {
        "class-name": ["cat", "dog"][label],
        "confidence": 1.0,
        "type": "groundtruth/image-classification",
        "job-name": "labeling-job/class",
        "human-annotated": "yes",
        "creation-date": "2026-01-01T00:00:00.000000",
    }
    return json.dumps({"source-ref": ref, "class": label, "class-metadata": meta}) + "\n"


def test_manifest_with_bad_lines(tmp_path: Path) -> None:
    manifest = tmp_path / "d.manifest"
    manifest.write_text(
        _gt_line("s3://b/a.jpg", 0)
        + _gt_line("s3://b/b.jpg", 1)
        + '{"source-ref": "s3://b/c.jpg", "class": 1\n'
        + _gt_line("/local/d.jpg", 1)
    )
    lines = run("verify", str(manifest), expect=1)
    assert lines[0].startswith(f"{manifest}: line 3: not valid JSON")
    assert lines[1].startswith(f"{manifest}: line 4: 'source-ref' is '/local/d.jpg', not an s3://")
    assert lines[2] == "checked 1 file: 4 manifest lines: 2 problems (json 1, source-ref 1)"
    clean = tmp_path / "clean.jsonl"
    clean.write_text(_gt_line("s3://b/a.jpg", 0))
    assert run("verify", str(clean))[-1].endswith("no problems")


# --------------------------------------------------------------------------- the command


def test_json_report(dataset: tuple[Path, list[int]], tmp_path: Path) -> None:
    rec, offsets = dataset
    patch(rec, offsets[2], b"\xf5")
    missing = tmp_path / "nope.lst"
    result = CliRunner().invoke(cli, ["verify", str(rec), str(missing), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert report["problem_count"] == 3
    assert report["problems_by_check"] == {"framing": 1, "index": 1, "input": 1}
    assert report["checked"]["records"] == 9
    assert report["checked"]["index_entries"] == 10
    assert [f["path"] for f in report["files"]] == [str(rec), str(missing)]
    first = report["problems"][0]
    assert (first["path"], first["check"], first["offset"]) == (str(rec), "framing", offsets[2])
    assert first["where"] == f"record 2 at byte {offsets[2]}"
    assert report["problems"][1]["line"] == 3
    assert report["problems"][2] == {
        "path": str(missing),
        "format": "lst",
        "check": "input",
        "where": "",
        "message": "no such file or folder (check the path)",
    }
    assert report["problems_not_shown"] == 0


def test_max_problems_lists_fewer_but_counts_all(dataset: tuple[Path, list[int]]) -> None:
    rec, _ = dataset
    rec.with_suffix(".idx").write_text("0\t0\n" + "x\n" * 5)
    lines = run("verify", str(rec), "--max-problems", "2", expect=1)
    assert len(lines) == 4
    assert lines[2] == "... and 12 more problems (raise --max-problems to list them)"
    assert lines[3].endswith("14 problems (index 14)")


def test_a_file_that_is_no_index_at_all_is_one_problem(dataset: tuple[Path, list[int]]) -> None:
    rec, _ = dataset
    rec.with_suffix(".idx").write_bytes(bytes(range(256)) * 3)
    lines = run("verify", str(rec), expect=1)
    assert lines[0].endswith("not an index: none of its 4 lines is 'key<TAB>offset' (rebuild it "
                             "with --fix-idx)")  # fmt: skip
    assert lines[1].endswith("1 problem (index 1)")


def test_missing_paths_and_unknown_extensions(tmp_path: Path) -> None:
    assert run("verify", str(tmp_path / "gone.rec"), expect=1) == [
        f"{tmp_path / 'gone.rec'}: no such file or folder (check the path)",
        "checked 1 file: nothing readable: 1 problem (input 1)",
    ]
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "notes.txt")])
    assert result.exit_code == 2
    assert "unknown extension '.txt'" in result.output
    assert ".rec, .idx, .lst" in result.output
    assert CliRunner().invoke(cli, ["verify"]).exit_code == 2


# --------------------------------------------------------------------------- property


def _base_dataset() -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        rec = Path(folder) / "p.rec"
        with RecordFileWriter(str(rec)) as writer:
            for i in range(5):
                body = image(i)[:200] if i % 2 else MAGIC_BYTES + image(i)[:100] + MAGIC_BYTES
                writer.write(pack_image_record(float(i), i, body), key=i)
        return rec.read_bytes(), rec.with_suffix(".idx").read_bytes()


BASE_REC, BASE_IDX = _base_dataset()

damage = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "insert", "delete"]),
        st.integers(0, len(BASE_REC)),
        st.binary(min_size=1, max_size=12),
    ),
    max_size=4,
)


def _damaged(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    blob = bytearray(data)
    for kind, at, extra in edits:
        at = min(at, len(blob))
        if kind == "flip":
            blob[at : at + len(extra)] = bytes(
                b ^ e for b, e in zip(blob[at : at + len(extra)], extra)
            )
        elif kind == "cut":
            del blob[at:]
        elif kind == "insert":
            blob[at:at] = extra
        else:
            del blob[at : at + len(extra)]
    return bytes(blob)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=damage, idx_text=st.one_of(st.none(), st.text(max_size=40)), decode=st.booleans())
def test_verify_never_raises_on_damaged_bytes(
    edits: list[tuple[str, int, bytes]], idx_text: str | None, decode: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        rec = Path(folder) / "p.rec"
        data = _damaged(BASE_REC, edits)
        rec.write_bytes(data)
        idx = rec.with_suffix(".idx")
        idx.write_bytes(BASE_IDX if idx_text is None else idx_text.encode("utf-8", "replace"))
        report = verify([str(rec)], decode=decode, workers=1)
        assert isinstance(report, Report)
        if data == BASE_REC and idx_text is None and not decode:
            assert report.ok  # (the split records hold no real image: decoding them fails)
        report.to_dict()
        # A rebuilt index covers every intact record (keys may still differ from header ids
        # that damage made repeat: then they are record numbers).
        fixed = verify([str(rec)], fix_idx=True, workers=1, max_problems=10_000)
        if fixed.checked["records"]:
            assert [p for p in fixed.problems if p.check == "index"] == [
                p for p in fixed.problems if p.check == "index" and "header id" in p.message
            ]


def test_cli_default_matches_the_library() -> None:
    from imgfmt.cli import verify as cli_verify
    from imgfmt.ops.verify import DEFAULT_MAX_PROBLEMS

    assert cli_verify.DEFAULT_MAX_PROBLEMS == DEFAULT_MAX_PROBLEMS


def _scan_dataset() -> bytes:
    """Records of every shape the header-only scan (verify without --decode) must treat as
    the whole-payload scan does."""
    with tempfile.TemporaryDirectory() as folder:
        rec = Path(folder) / "s.rec"
        with RecordFileWriter(str(rec), write_index=False) as writer:
            writer.write(pack_image_record(1.0, 0, image(0) + b"odd"))  # padding past the peek
            writer.write(pack_image_record([float(i) for i in range(30)], 1, b"x"))  # 30 labels
            writer.write(b"short")  # no room for an image header
            writer.write(pack_image_record(2.0, 2, MAGIC_BYTES + image(2)[:99] + MAGIC_BYTES))
            writer.write(pack_image_record(0.5, 3, b""))  # a header and nothing else
            writer.write(pack_image_record([1.0, 2.0], 4, image(4)[:301]))
        return rec.read_bytes()


SCAN_REC = _scan_dataset()


class _WholePayloadScanner(recordio_check._RecordScanner):
    """The scanner as --decode runs it: every payload read whole."""

    def __init__(self, stream, size, payloads=True):  # type: ignore[no-untyped-def]
        super().__init__(stream, size, payloads=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "insert", "delete"]),
            st.integers(0, len(SCAN_REC)),
            st.binary(min_size=1, max_size=12),
        ),
        max_size=3,
    )
)
def test_header_only_scan_reports_what_the_whole_payload_scan_does(
    edits: list[tuple[str, int, bytes]],
) -> None:
    from unittest import mock

    with tempfile.TemporaryDirectory() as folder:
        rec = Path(folder) / "s.rec"
        rec.write_bytes(_damaged(SCAN_REC, edits))
        fast = verify([str(rec)], workers=1, max_problems=10_000).to_dict()
        with mock.patch.object(recordio_check, "_RecordScanner", _WholePayloadScanner):
            whole = verify([str(rec)], workers=1, max_problems=10_000).to_dict()
        assert fast == whole


def test_header_only_scan_checks_far_padding_and_many_labels(tmp_path: Path) -> None:
    rec = tmp_path / "h.rec"
    rec.write_bytes(SCAN_REC)
    length = IR + len(image(0)) + 3  # the first record's payload
    assert length % 4  # so it has padding
    second = HEAD + length + (-length % 4)
    short = second + HEAD + IR + 30 * 4 + 4  # the 5-byte record
    assert [(p.check, p.offset) for p in verify([str(rec)], workers=1).problems] == [
        ("header", short)
    ]
    # The first record's padding (past the bytes read at its head) made non-zero.
    patch(rec, HEAD + length, b"\x01")
    # The second record's header says 1000 labels: more than the record holds.
    patch(rec, second + HEAD, (1000).to_bytes(4, "little"))
    report = verify([str(rec)], workers=1)
    assert [(p.check, p.offset) for p in report.problems] == [
        ("padding", 0),
        ("header", second),
        ("header", short),
    ]
    assert "says 1000 labels" in report.problems[1].message

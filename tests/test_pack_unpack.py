"""pack and unpack, through the command line as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import image_bytes, leftovers, make_tree

from imgfmt.cli import cli
from imgfmt.formats.recordio import RecordReader, pack_image_record, unpack_image_record
from imgfmt.ops import pack as pack_module


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.output


def records(path: Path) -> list[tuple[int, tuple[float, ...], bytes]]:
    out = []
    for rec in RecordReader(str(path)):
        header, image = unpack_image_record(rec.payload)
        out.append((header.id, header.labels, image))
    return out


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"cat": 5, "dog": 4, "emu": 3})


def test_pack_folder_writes_rec_idx_list_and_class_map(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "all.rec"
    out.parent.mkdir()
    run("pack", str(photos), str(out), "--pass-through")
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "all.classes.tsv",
        "all.idx",
        "all.lst",
        "all.rec",
    ]
    assert (out.parent / "all.classes.tsv").read_text() == "0\tcat\n1\tdog\n2\temu\n"
    listed = [line.split("\t") for line in (out.parent / "all.lst").read_text().splitlines()]
    recs = records(out)
    # Record order is list order; header id is the list index; labels from the list.
    assert [r[0] for r in recs] == [int(f[0]) for f in listed]
    assert [r[1] for r in recs] == [(float(f[1]),) for f in listed]
    # Pass-through stores the file's bytes unchanged.
    for (_rid, _labels, image), fields in zip(recs, listed):
        assert image == (photos / fields[2]).read_bytes()
    idx = (out.parent / "all.idx").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in idx] == [r[0] for r in recs]


def test_output_is_identical_whatever_the_worker_count(photos: Path, tmp_path: Path) -> None:
    outputs = []
    for workers in ("1", "2", "3"):
        out = tmp_path / f"w{workers}.rec"
        run("pack", str(photos), str(out), "--resize", "32", "--quality", "80", "-j", workers)
        outputs.append((out.read_bytes(), out.with_suffix(".idx").read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_bad_images_are_skipped_reported_and_counted(photos: Path, tmp_path: Path) -> None:
    (photos / "cat" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (photos / "cat" / "empty.jpg").write_bytes(b"")
    good = image_bytes(80, 60, seed=7)
    (photos / "dog" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (photos / "emu" / "text.png").write_text("not an image at all")
    out = tmp_path / "set.rec"
    result = CliRunner().invoke(cli, ["pack", str(photos), str(out), "--resize", "24", "--json"])
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["packed"] == 12 and summary["skipped"] == 4
    skipped = {Path(s["path"]).name: s["reason"] for s in summary["skipped_items"]}
    assert set(skipped) == {"corrupt.jpg", "empty.jpg", "truncated.jpg", "text.png"}
    assert "empty" in skipped["empty.jpg"]
    for name in skipped:
        assert f"skipped {photos}" in result.stderr and name in result.stderr
    # The good images are all there, complete.
    assert len(records(out)) == 12
    # --allow-skip accepts it.
    again = CliRunner().invoke(cli, ["pack", str(photos), str(tmp_path / "b.rec"), "--allow-skip"])
    assert again.exit_code == 0, again.output
    assert "packed 12, skipped 4" in again.stdout


def test_multi_label_lists(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(image_bytes(20, 20, seed=1))
    (tmp_path / "b.jpg").write_bytes(image_bytes(20, 20, seed=2))
    lst_path = tmp_path / "multi.lst"
    lst_path.write_text(
        "0\t1.000000\t0.000000\t1.000000\ta.jpg\n5\t0.000000\t1.000000\t1.000000\tb.jpg\n"
    )
    result = CliRunner().invoke(
        cli, ["pack", str(lst_path), str(tmp_path / "first.rec"), "--pass-through"]
    )
    assert result.exit_code == 0
    assert "only the first is kept" in result.stderr
    assert [r[1] for r in records(tmp_path / "first.rec")] == [(1.0,), (0.0,)]
    run("pack", str(lst_path), str(tmp_path / "all.rec"), "--pass-through", "--pack-label")
    recs = records(tmp_path / "all.rec")
    assert [(r[0], r[1]) for r in recs] == [(0, (1.0, 0.0, 1.0)), (5, (0.0, 1.0, 1.0))]


def test_unpack_then_repack_is_byte_identical(photos: Path, tmp_path: Path) -> None:
    rec = tmp_path / "data" / "train.rec"
    rec.parent.mkdir()
    run("pack", str(photos), str(rec), "--resize", "40")
    run("unpack", str(rec), str(tmp_path / "un"))
    # Folders are named from the class map beside the .rec; names are <id>.<real ext>.
    assert sorted(p.name for p in (tmp_path / "un").iterdir()) == [
        "cat",
        "dog",
        "emu",
        "train.classes.tsv",
        "train.lst",
    ]
    assert all(p.suffix == ".jpg" for p in (tmp_path / "un" / "cat").iterdir())
    again = tmp_path / "again.rec"
    run(
        "pack",
        str(tmp_path / "un" / "train.lst"),
        str(again),
        "--root",
        str(tmp_path / "un"),
        "--pass-through",
    )
    assert again.read_bytes() == rec.read_bytes()
    assert again.with_suffix(".idx").read_bytes() == rec.with_suffix(".idx").read_bytes()


def test_multi_label_round_trip(tmp_path: Path) -> None:
    rec = tmp_path / "m.rec"
    png = image_bytes(16, 16, seed=3, fmt="PNG")
    from imgfmt.formats.recordio import RecordFileWriter

    with RecordFileWriter(str(rec)) as out:
        out.write(pack_image_record((1.0, 0.0, 2.5), 10, png), key=10)
        out.write(pack_image_record((0.0, 1.0, 1.0), 11, png), key=11)
    run("unpack", str(rec), str(tmp_path / "un"))
    assert sorted(p.name for p in (tmp_path / "un" / "_multilabel").iterdir()) == [
        "10.png",
        "11.png",
    ]
    run(
        "pack",
        str(tmp_path / "un" / "m.lst"),
        str(tmp_path / "b.rec"),
        "--root",
        str(tmp_path / "un"),
        "--pass-through",
        "--pack-label",
    )
    assert (tmp_path / "b.rec").read_bytes() == rec.read_bytes()


def test_unpack_selected_ids_with_and_without_index(photos: Path, tmp_path: Path) -> None:
    rec = tmp_path / "s.rec"
    run("pack", str(photos), str(rec), "--pass-through", "--no-shuffle")
    run("unpack", str(rec), str(tmp_path / "some"), "--ids", "3,7-9")
    assert sorted(p.stem for p in (tmp_path / "some").rglob("*.jpg")) == ["3", "7", "8", "9"]
    run("unpack", str(rec), str(tmp_path / "two"), "--limit", "2")
    assert len(list((tmp_path / "two").rglob("*.jpg"))) == 2
    rec.with_suffix(".idx").unlink()
    run("unpack", str(rec), str(tmp_path / "noidx"), "--ids", "0,11")
    assert sorted(p.stem for p in (tmp_path / "noidx").rglob("*.jpg")) == ["0", "11"]


def test_unpack_never_writes_outside_outdir(tmp_path: Path) -> None:
    rec = tmp_path / "evil.rec"
    jpg = image_bytes(8, 8)
    from imgfmt.formats.recordio import RecordFileWriter

    with RecordFileWriter(str(rec)) as out:
        for label in range(5):
            out.write(pack_image_record(float(label), label, jpg), key=label)
        out.write(pack_image_record(-3.5, 5, jpg), key=5)
    (tmp_path / "evil.classes.tsv").write_text(
        "0\t../../escaped\n1\t/etc/owned\n2\tok/nested\n3\tbad\\name\n4\t..\n"
    )
    outdir = tmp_path / "deep" / "out"
    run("unpack", str(rec), str(outdir))
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.jpg"))
    assert made == [
        "deep/out/-3.5/5.jpg",
        "deep/out/0/0.jpg",
        "deep/out/1/1.jpg",
        "deep/out/3/3.jpg",
        "deep/out/4/4.jpg",
        "deep/out/ok/nested/2.jpg",
    ]


def test_shards_by_size_and_chunks(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "sh.rec"
    summary = json.loads(
        run("pack", str(photos), str(out), "--pass-through", "--shard-size", "5k", "--json")
    )
    shards = summary["outputs"]
    count = len(shards)
    assert count > 1
    names = [f"sh-{k:05d}-of-{count:05d}.rec" for k in range(count)]
    assert [Path(s).name for s in shards] == names
    assert summary["combined_index"] == [str(tmp_path / "sh.combined.idx")]
    total = []
    for shard in shards:
        assert Path(shard).with_suffix(".idx").exists()
        total += records(Path(shard))
    assert len(total) == 12 and len({r[0] for r in total}) == 12
    assert not out.exists()
    summary = json.loads(
        run(
            "pack",
            str(photos),
            str(tmp_path / "ch.rec"),
            "--pass-through",
            "--chunks",
            "3",
            "--json",
        )
    )
    assert [Path(p).name for p in summary["outputs"]] == ["ch_0.rec", "ch_1.rec", "ch_2.rec"]
    assert [Path(p).name for p in summary["lists"]] == ["ch_0.lst", "ch_1.lst", "ch_2.lst"]


def test_interrupted_pack_leaves_nothing(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.rec"
    seen = []

    def interrupt(n: int) -> None:
        seen.append(n)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pack_module.pack(str(photos), str(out), workers=2, on_progress=interrupt)
    assert not out.exists() and not out.with_suffix(".idx").exists()
    assert leftovers(tmp_path) == []


def test_sigterm_during_pack_leaves_nothing(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "big", {"a": 150, "b": 150}, size=(320, 240))
    out = tmp_path / "out" / "x.rec"
    out.parent.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imgfmt",
            "pack",
            str(photos),
            str(out),
            "--resize",
            "200",
            "--encoding",
            ".png",
            "-j",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not leftovers(out.parent) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert leftovers(out.parent), "pack never started writing"
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert b"Interrupted" in stderr and b"Traceback" not in stderr
    assert sorted(os.listdir(out.parent)) == []


def test_missing_inputs_give_one_line_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["pack", str(tmp_path / "nope.lst"), str(tmp_path / "o.rec")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path / 'nope.lst'}: no such file or folder (check the path)"
    ]
    result = CliRunner().invoke(cli, ["unpack", str(tmp_path / "nope.rec"), str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    bad = tmp_path / "bad.lst"
    bad.write_text("0\t1.0\ta.jpg\nthis line is broken\n")
    result = CliRunner().invoke(cli, ["pack", str(bad), str(tmp_path / "o.rec")])
    assert result.exit_code == 1
    assert "bad.lst: line 2:" in result.output
    assert not (tmp_path / "o.rec").exists()


def test_damaged_rec_on_unpack_names_record_and_offset(photos: Path, tmp_path: Path) -> None:
    rec = tmp_path / "d.rec"
    run("pack", str(photos), str(rec), "--pass-through", "--no-shuffle")
    offsets = [
        int(line.split("\t")[1]) for line in rec.with_suffix(".idx").read_text().splitlines()
    ]
    data = bytearray(rec.read_bytes())
    data[offsets[2]] ^= 0xFF
    rec.write_bytes(bytes(data))
    rec.with_suffix(".idx").unlink()
    result = CliRunner().invoke(cli, ["unpack", str(rec), str(tmp_path / "u")])
    assert result.exit_code == 3
    warning, error = result.stderr.splitlines()
    assert f"record 2 at byte {offsets[2]}: bad magic" in warning
    assert error.startswith("imgfmt: 1 damaged item was skipped") and "--allow-skip" in error
    # Every intact record after the damage is still unpacked, and listed.
    listed = (tmp_path / "u" / "d.lst").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in listed] == [
        i for i in range(len(offsets)) if i != 2
    ]
    again = CliRunner().invoke(cli, ["unpack", str(rec), str(tmp_path / "v"), "--allow-skip"])
    assert again.exit_code == 0 and "bad magic" in again.stderr


def test_unpack_of_a_rec_cut_at_a_record_head_is_caught_by_its_index(
    photos: Path, tmp_path: Path
) -> None:
    rec = tmp_path / "d.rec"
    run("pack", str(photos), str(rec), "--pass-through", "--no-shuffle")
    offsets = [
        int(line.split("\t")[1]) for line in rec.with_suffix(".idx").read_text().splitlines()
    ]
    rec.write_bytes(rec.read_bytes()[: offsets[-2]])  # a clean cut: framing cannot tell
    result = CliRunner().invoke(cli, ["unpack", str(rec), str(tmp_path / "u")])
    assert result.exit_code == 3
    assert f"the file ends before 2 records its index lists (the first at byte {offsets[-2]})" in (
        result.stderr
    )
    assert len((tmp_path / "u" / "d.lst").read_text().splitlines()) == len(offsets) - 2


def test_unpack_ids_missing_from_a_rec_without_index_are_reported(
    photos: Path, tmp_path: Path
) -> None:
    rec = tmp_path / "d.rec"
    run("pack", str(photos), str(rec), "--pass-through")
    rec.with_suffix(".idx").unlink()
    result = CliRunner().invoke(cli, ["unpack", str(rec), str(tmp_path / "u"), "--ids", "1,999"])
    assert result.exit_code == 3 and "requested ids not in the file: 999" in (result.stderr)
    empty = tmp_path / "empty.rec"
    empty.write_bytes(b"")
    result = CliRunner().invoke(cli, ["unpack", str(empty), str(tmp_path / "e")])
    assert result.exit_code == 1 and "holds no records" in result.stderr
    assert not (tmp_path / "e").exists()


def test_non_finite_labels_are_skipped_by_name(photos: Path, tmp_path: Path) -> None:
    images = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))[:3]
    listing = tmp_path / "n.lst"
    listing.write_text(f"0\tnan\t{images[0]}\n1\t1e400\t{images[1]}\n2\t1\t{images[2]}\n")
    result = CliRunner().invoke(
        cli, ["pack", str(listing), str(tmp_path / "n.rec"), "--root", str(photos)]
    )
    assert result.exit_code == 3
    assert "label nan is not a finite number (index 0 in the list)" in result.stderr
    assert "label inf is not a finite number (index 1 in the list)" in result.stderr
    assert [r.number for r in RecordReader(str(tmp_path / "n.rec"))] == [0]


def test_the_wrong_kind_of_input_is_named_as_such(photos: Path, tmp_path: Path) -> None:
    rec = tmp_path / "d.rec"
    run("pack", str(photos), str(rec), "--pass-through")
    cases = [
        (["pack", str(rec), str(tmp_path / "y.rec")], "is a RecordIO file, but pack reads"),
        (["manifest-gen", str(rec), "-", "--s3-prefix", "s3://b/p"], "but manifest-gen reads"),
        (["manifest-to-lst", str(rec), str(tmp_path / "m")], "is not a manifest"),
        (["unpack", str(tmp_path / "d.lst"), str(tmp_path / "u")], "is a lst file: unpack reads"),
        (["unpack", str(photos), str(tmp_path / "u")], "is a folder: unpack reads"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert not (tmp_path / "u").exists()


def test_pass_through_refuses_options_it_would_ignore_and_non_images(
    photos: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli, ["pack", str(photos), str(tmp_path / "x.rec"), "--pass-through", "--resize", "9"]
    )
    assert result.exit_code == 2 and "--resize does not apply with --pass-through" in result.stderr
    (photos / "cat" / "page.jpg").write_text("<html>404 Not Found</html>")
    result = CliRunner().invoke(
        cli, ["pack", str(photos), str(tmp_path / "x.rec"), "--pass-through"]
    )
    assert result.exit_code == 3
    assert (
        "page.jpg: not an image (unrecognised format; starts with '<html>404 Not Fo')"
        in result.stderr
    )


def test_unpack_refuses_to_overwrite_the_list_beside_the_rec_and_cleans_up(
    photos: Path, tmp_path: Path
) -> None:
    rec = tmp_path / "d.rec"
    run("pack", str(photos), str(rec), "--pass-through")
    before = (tmp_path / "d.lst").read_bytes()
    result = CliRunner().invoke(cli, ["unpack", str(rec), str(tmp_path)])
    assert result.exit_code == 2 and "would overwrite the list beside" in result.stderr
    assert (tmp_path / "d.lst").read_bytes() == before
    result = CliRunner().invoke(cli, ["unpack", str(rec), str(tmp_path / "u"), "--ids", "9999"])
    assert result.exit_code != 0 and not (tmp_path / "u").exists()


def test_encoding_takes_the_extension_with_or_without_its_dot(photos: Path, tmp_path: Path) -> None:
    for spelling in ("png", "PNG", ".png"):
        rec = tmp_path / f"{spelling.strip('.')}.rec"
        run("pack", str(photos), str(rec), "--encoding", spelling, "--resize", "16")
        first = next(iter(RecordReader(str(rec))))
        assert unpack_image_record(first.payload)[1].startswith(b"\x89PNG")


@pytest.mark.parametrize("count", [0, 1, 7, 40, 120, 2001])
@pytest.mark.parametrize("workers", [1, 2, 8])
def test_batches_keep_every_entry_in_order_and_shrink_at_the_end(count: int, workers: int) -> None:
    """Workers finish together: near the end no batch is more than a 2 * workers-th of what is
    left, while the bulk keeps full batches (inter-process overhead)."""
    batches = list(pack_module._batches(range(count), 8, workers))  # type: ignore[arg-type]
    assert [x for batch in batches for x in batch] == list(range(count))
    left = count
    for batch in batches:
        assert 1 <= len(batch) <= 8
        if workers == 1:  # one process: nothing to balance, every batch full but the last
            assert len(batch) == min(8, left)
        else:
            assert len(batch) == 8 or len(batch) <= max(1, left // (2 * workers))
        left -= len(batch)
    full = sum(len(batch) == 8 for batch in batches)
    assert full >= (count - 8 * (2 * workers + 1)) // 8


_encode_batch = pack_module._encode_batch


def _slow_encode_batch(job: object, batch: list) -> list:  # type: ignore[type-arg]
    time.sleep(0.02)  # still queued or running when the consumer stops
    return _encode_batch(job, batch)  # type: ignore[arg-type]


def test_stopping_a_pack_part_way_leaves_no_thread_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error or Ctrl-C mid-pack stops the pool with batches still queued. On Python 3.11
    the pool's manager thread raised (and printed a traceback) in about 1 stop in 12 when the
    caller had cancelled those futures itself; 40 stops here all stay quiet."""
    import threading

    from imgfmt.formats.lst import LstEntry
    from imgfmt.images import ImageOptions

    root = make_tree(tmp_path / "img", {"a": 40})
    entries = [
        LstEntry(i, (0.0,), f"a/{name}") for i, name in enumerate(sorted(os.listdir(root / "a")))
    ]
    from imgfmt.formats.recordio import RecordIO

    job = pack_module._Job(
        root=str(root), options=ImageOptions(resize=32), pack_label=False, fmt=RecordIO()
    )
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    monkeypatch.setattr(pack_module, "BATCH_SIZE", 1)
    monkeypatch.setattr(pack_module, "_encode_batch", _slow_encode_batch)
    for _ in range(40):
        results = pack_module._ordered_results(job, entries, 2)
        next(results)
        results.close()  # the consumer stops: GeneratorExit inside, as an error would
    time.sleep(0.3)  # the manager threads finish on their own
    assert errors == []

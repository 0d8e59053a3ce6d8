"""What imgfmt guarantees when things go wrong: write failures, concurrent runs, hostile input.

Each test fails if its guarantee breaks.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import JPEG_MAGIC, image_bytes, leftovers, make_tree

from imgfmt.cli import cli
from imgfmt.formats.recordio import RecordReader, unpack_image_record


def imgfmt_proc(*args: str, limit_file_size: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command in a child process; optionally cap the size of any file it writes."""

    def cap() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails with EFBIG
        assert limit_file_size is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "imgfmt", *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap if limit_file_size else None,
    )


def test_disk_full_during_pack_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    # More than the 1 MiB write buffer, so the failure comes mid-run, not only at commit.
    # Pass-through does not decode, so incompressible stand-ins make the size quickly.
    photos = tmp_path / "photos"
    for i in range(80):
        (photos / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        (photos / "ab"[i % 2] / f"{i}.jpg").write_bytes(JPEG_MAGIC + os.urandom(40_000))
    out = tmp_path / "out"
    out.mkdir()
    proc = imgfmt_proc(
        "pack", str(photos), str(out / "x.rec"), "--pass-through", limit_file_size=1536 * 1024
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "x." in lines[0] and "Traceback" not in proc.stderr
    assert "too large" in lines[0].lower() or "no space" in lines[0].lower()
    assert sorted(os.listdir(out)) == []


def test_read_only_destination_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    photos = make_tree(tmp_path / "photos", {"a": 2})
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        proc = imgfmt_proc("pack", str(photos), str(out / "x.rec"))
    finally:
        out.chmod(0o700)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and "permission denied" in proc.stderr


def test_unwritable_destination_is_one_line(tmp_path: Path) -> None:
    """A destination inside a regular file (works as root too)."""
    photos = make_tree(tmp_path / "photos", {"a": 2})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = imgfmt_proc("pack", str(photos), str(blocker / "x.rec"))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ")
    assert "Traceback" not in proc.stderr


def test_two_concurrent_packs_to_one_output_do_not_interleave(tmp_path: Path) -> None:
    """Both finish; the .rec and .idx at the destination come from one run, whole."""
    first = make_tree(tmp_path / "first", {"a": 30, "b": 30}, size=(120, 90))
    second = make_tree(tmp_path / "second", {"c": 50}, size=(100, 80))
    out = tmp_path / "x.rec"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imgfmt",
                "pack",
                str(src),
                str(out),
                "--pass-through",
                "-j",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for src in (first, second)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    records = list(RecordReader(str(out)))
    offsets = [
        int(line.split("\t")[1]) for line in out.with_suffix(".idx").read_text().split("\n") if line
    ]
    assert offsets == [r.offset for r in records]  # the .idx belongs to this .rec
    assert len(records) in (60, 50)
    assert leftovers(tmp_path) == []


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge canvas (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_with_the_flag_named(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 3})
    (photos / "a" / "bomb.png").write_bytes(_png_header_only(60000, 60000))
    result = CliRunner().invoke(
        cli, ["pack", str(photos), str(tmp_path / "x.rec"), "--resize", "32"]
    )
    assert result.exit_code == 3
    assert "bomb.png" in result.stderr and "--max-pixels" in result.stderr
    assert "packed 3, skipped 1" in result.stdout
    # The limit is adjustable: a small cap refuses ordinary images too.
    result = CliRunner().invoke(
        cli, ["pack", str(photos), str(tmp_path / "y.rec"), "--max-pixels", "100", "--allow-skip"]
    )
    assert "packed 0" in result.output or result.exit_code == 1


def test_lst_gen_terminates_on_symlink_cycles(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2, "b": 1})
    (photos / "a" / "loop").symlink_to(photos)
    (photos / "b" / "self").symlink_to(photos / "b")
    result = CliRunner().invoke(
        cli, ["lst-gen", str(photos), str(tmp_path / "l"), "--recursive", "--no-shuffle"]
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "l.lst").read_text().splitlines()
    assert [line.split("\t")[-1] for line in lines] == ["a/img0.jpg", "a/img1.jpg", "b/img0.jpg"]


def test_unpack_of_hostile_names_stays_inside_outdir(tmp_path: Path) -> None:
    from helpers import image_bytes

    from imgfmt.formats.recordio import RecordFileWriter, pack_image_record

    rec = tmp_path / "h.rec"
    jpg = image_bytes(8, 8)
    with RecordFileWriter(str(rec)) as out:
        for label in range(4):
            out.write(pack_image_record(float(label), label, jpg), key=label)
    (tmp_path / "h.classes.tsv").write_text(
        "0\t" + "x" * 300 + "\n1\ta/../../b\n2\t/abs\n3\tfine\n"
    )
    outdir = tmp_path / "out"
    result = CliRunner().invoke(cli, ["unpack", str(rec), str(outdir)])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.jpg"))
    assert written == ["out/0/0.jpg", "out/1/1.jpg", "out/2/2.jpg", "out/fine/3.jpg"]
    listed = [line.split("\t")[-1] for line in (outdir / "h.lst").read_text().splitlines()]
    assert listed == ["0/0.jpg", "1/1.jpg", "2/2.jpg", "fine/3.jpg"]
    for path in listed:
        header, image = unpack_image_record(RecordReader(str(rec)).read_key(int(path[-5])))
        assert (outdir / path).read_bytes() == image


# --------------------------------------------------------------------------- SIGKILL mid-run


def _dataset_with_a_blocking_image(tmp_path: Path, count: int, block_at: int) -> tuple[Path, Path]:
    """Incompressible stand-in images of 300 KB and their .lst; image ``block_at`` becomes a
    FIFO, so a pack that reaches it blocks there, part-way, for as long as the test likes."""
    photos = tmp_path / "photos" / "a"
    photos.mkdir(parents=True)
    lines = []
    for i in range(count):
        (photos / f"{i:03d}.jpg").write_bytes(JPEG_MAGIC + os.urandom(300_000))
        lines.append(f"{i}\t0.000000\ta/{i:03d}.jpg\n")
    listing = tmp_path / "all.lst"
    listing.write_text("".join(lines))
    fifo = photos / f"{block_at:03d}.jpg"
    kept = fifo.read_bytes()
    fifo.unlink()
    os.mkfifo(fifo)
    (tmp_path / "kept.bin").write_bytes(kept)
    return listing, fifo


def _kill_when_blocked(args: list[str], written: Callable[[], bool]) -> None:
    """Start ``imgfmt ARGS``, wait until ``written()`` (output went out part-way), SIGKILL it."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "imgfmt", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill takes any worker with it
    )
    deadline = time.monotonic() + 60
    try:
        while not written():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "pack never wrote anything"
            time.sleep(0.02)
    finally:  # also when the test fails: a pack blocked on the FIFO must not outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _unblock(tmp_path: Path, fifo: Path) -> None:
    fifo.unlink()
    fifo.write_bytes((tmp_path / "kept.bin").read_bytes())


def test_sigkill_mid_pack_leaves_nothing_and_a_rerun_is_identical(tmp_path: Path) -> None:
    listing, fifo = _dataset_with_a_blocking_image(tmp_path, count=40, block_at=30)
    out = tmp_path / "out"
    out.mkdir()
    args = ["pack", str(listing), str(out / "x.rec"), "--root", str(tmp_path / "photos"),
            "--pass-through", "-j", "1"]  # fmt: skip

    def temp_has_data() -> bool:
        return any(p.stat().st_size > 0 for p in out.glob(".imgfmt-tmp-*x.rec"))

    _kill_when_blocked(args, temp_has_data)
    # A SIGKILL cannot clean up: its hidden temporary files stay, but no final path exists.
    assert [p.name for p in out.iterdir() if not p.name.startswith(".imgfmt-tmp-")] == []

    _unblock(tmp_path, fifo)
    assert imgfmt_proc(*args).returncode == 0
    clean = tmp_path / "clean"
    clean.mkdir()
    assert imgfmt_proc(*args[:2], str(clean / "x.rec"), *args[3:]).returncode == 0
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith(".imgfmt-tmp-"))
    assert finals == sorted(p.name for p in clean.iterdir()) == ["x.idx", "x.rec"]
    for name in finals:
        assert (out / name).read_bytes() == (clean / name).read_bytes()


def test_sigkill_mid_pack_to_s3_shows_no_object_and_a_rerun_is_identical(
    s3, tmp_path: Path
) -> None:
    # Images are read 8 at a time: 48 before the blocking one are 14 MB, past the first part.
    listing, fifo = _dataset_with_a_blocking_image(tmp_path, count=60, block_at=50)
    args = ["--endpoint-url", s3.endpoint, "pack", str(listing), s3.uri("out/x.rec"),
            "--root", str(tmp_path / "photos"), "--pass-through", "-j", "1"]  # fmt: skip

    def a_part_went_up() -> bool:
        return s3.proxy.count("PUT", "partNumber=1") > 0

    _kill_when_blocked(args, a_part_went_up)
    assert s3.keys("out/") == []  # the upload was never completed: S3 shows nothing
    assert s3.uploads() == ["out/x.rec"]  # its parts wait for a lifecycle rule (README)

    _unblock(tmp_path, fifo)
    assert imgfmt_proc(*args).returncode == 0
    local = tmp_path / "local.rec"
    assert imgfmt_proc(*args[2:4], str(local), *args[5:]).returncode == 0
    assert s3.keys("out/") == ["out/x.idx", "out/x.rec"]
    assert s3.get("out/x.rec") == local.read_bytes()
    assert s3.get("out/x.idx") == local.with_suffix(".idx").read_bytes()


def test_ctrl_c_with_a_worker_stuck_on_a_slow_read_exits_130_at_once(tmp_path: Path) -> None:
    # Ctrl-C goes to the whole process group. Workers ignore it; the main process cancels,
    # terminates the workers (one is blocked opening a FIFO, as on a hung network file
    # system), removes its temporary outputs and exits 130 with one line.
    import signal
    import time

    listing, fifo = _dataset_with_a_blocking_image(tmp_path, count=20, block_at=12)
    for image in (tmp_path / "photos" / "a").glob("*.jpg"):
        if image != fifo:  # real images this time: the workers decode them
            image.write_bytes(image_bytes(64, 48, seed=int(image.stem)))
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgfmt", "pack", str(listing), str(out / "x.rec"),
         "--root", str(tmp_path / "photos"), "--resize", "16", "-j", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    time.sleep(3)  # the good images are done; one worker waits on the FIFO
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "Interrupted; no partial output was left at the destination."
    ]
    assert sorted(os.listdir(out)) == []

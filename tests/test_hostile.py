"""Hostile images: one bad file never stops a run, memory stays bounded, every packed record
decodes where it will be read, and every skip says why in words a user can act on.

The corpus is ``scripts/hostile.py``'s curated one: rare and unsupported formats and variants,
truncated files, headers claiming huge sizes, damaged metadata, text named ``.jpg``. ``make
hostile`` runs its large, mutated companion.
"""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import hostile, image_bytes
from PIL import Image

from imgfmt import decoding, images
from imgfmt.cli import cli
from imgfmt.errors import ImageError
from imgfmt.formats.recordio import (
    IDX_SUFFIX,
    RecordReader,
    RecordWriter,
    pack_image_record,
    unpack_image_record,
)
from imgfmt.images import ImageOptions, process_image
from imgfmt.ops import pack

needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(),
    reason="the patch reaches the workers by fork",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, hostile.Expect]]:
    folder = tmp_path_factory.mktemp("hostile")
    return folder, hostile.write_curated(folder)


def exts_of(folder: Path) -> str:
    return ",".join(sorted({p.suffix.lower() for p in folder.rglob("*") if p.suffix}))


def imgfmt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgfmt", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("mode", ["decoded", "passed"])
def test_every_hostile_file_is_packed_or_skipped_with_its_reason(
    corpus: tuple[Path, dict[str, hostile.Expect]], tmp_path: Path, mode: str
) -> None:
    """Fault 1, 6, 7: any decoder failure is one image's skip with a sorted reason that names
    the variant; valid rare formats are refused by pass-through by name; nothing else is
    printed, and the run completes (exit 0 with --allow-skip)."""
    folder, expected = corpus
    options = ["--resize", "32"] if mode == "decoded" else ["--pass-through"]
    out = tmp_path / "out.rec"
    done = imgfmt(
        "pack",
        str(folder),
        str(out),
        "--exts",
        exts_of(folder),
        "--json",
        "--allow-skip",
        "-j",
        "2",
        *options,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    skipped = {Path(s["path"]).relative_to(folder).as_posix(): s for s in summary["skipped_items"]}
    notes: dict[str, list[str]] = {}
    for note in summary["warnings"]:
        notes.setdefault(Path(note["path"]).relative_to(folder).as_posix(), []).append(
            note["message"]
        )
    for name, expect in expected.items():
        want = getattr(expect, mode)
        text = expect.text if mode == "decoded" else expect.passed_text
        if want == "*":
            continue
        if want == "ok":
            assert name not in skipped, (name, skipped.get(name))
            if text:
                assert any(text in note for note in notes.get(name, [])), (name, notes.get(name))
        else:
            assert name in skipped, name
            assert skipped[name]["kind"] == want, (name, skipped[name])
            assert text in skipped[name]["reason"], (name, skipped[name]["reason"])
    assert summary["packed"] + summary["skipped"] == len(expected)
    # Every line on stderr names a skipped file: no decoder's chatter, no traceback.
    lines = done.stderr.splitlines()
    assert all(line.startswith("warning: skipped ") for line in lines), lines
    assert len(lines) == len(skipped)
    # What was packed decodes, under the same rules; pass-through reads headers only, so the
    # damaged JPEGs and PNGs it stored are what verify --decode finds, and nothing else.
    verified = imgfmt("verify", str(out), "--decode", "--json")
    problems = json.loads(verified.stdout)["problems"]
    damaged = [n for n, e in expected.items() if n.startswith("damaged/") and e.passed == "ok"]
    assert len(problems) == (0 if mode == "decoded" else len(damaged)), problems


def test_tiny_files_claiming_huge_sizes_are_refused_before_any_memory_is_spent(
    corpus: tuple[Path, dict[str, hostile.Expect]], tmp_path: Path
) -> None:
    """Fault 2: a 148-byte BLP claiming 100 million pixels drove a worker past 400 MB; now it
    is refused from its header, and no process of the run grows much."""
    folder, _expected = corpus
    run = hostile.run_watched(
        [
            sys.executable,
            "-m",
            "imgfmt",
            "pack",
            str(folder / "claims"),
            str(tmp_path / "c.rec"),
            "--exts",
            ".blp,.dds,.gif",
            "--resize",
            "64",
            "-j",
            "2",
            "--json",
        ]
    )
    summary = json.loads(str(run["stdout"]))
    assert run["code"] == 1 and summary["packed"] == 0 and summary["skipped"] == 3
    assert int(str(run["peak"])) < 150 * 2**20


@pytest.mark.parametrize(
    ("name", "fmt", "size", "kwargs"),
    [
        ("1-bit PNG", "PNG", (8000, 8000), {"mode": "1", "optimize": True}),
        ("RGB PNG", "PNG", (5000, 5000), {"mode": "RGB", "compress_level": 9}),
        ("gray JPEG at quality 1", "JPEG", (6000, 6000), {"mode": "L", "quality": 1}),
        ("QOI", "QOI", (3000, 3000), {"mode": "RGB"}),
        ("TGA RLE", "TGA", (3000, 3000), {"mode": "L", "compression": "tga_rle"}),
        ("1-bit PBM", "PPM", (6000, 6000), {"mode": "1"}),
        ("DXT1 DDS", "DDS", (4096, 2048), {"mode": "RGBA", "pixel_format": "DXT1"}),
    ],
)
def test_honest_images_at_their_formats_best_compression_pass_the_header_check(
    name: str, fmt: str, size: tuple[int, int], kwargs: dict[str, object]
) -> None:
    """The bound is each codec's best case: a blank image, as small as its encoder makes it,
    is never taken for a lie."""
    mode = str(kwargs.pop("mode"))
    data = hostile.encode(Image.new(mode, size), fmt, **kwargs)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size[0] * image.size[1] > decoding.FREE_PIXELS
        decoding.check_plausible(image, data, name)  # does not raise
        # ... and the same header on a file cut to a tenth is refused.
        with pytest.raises(ImageError, match="its header claims") as caught:
            decoding.check_plausible(image, data[: len(data) // 10], name)
        assert caught.value.kind == "corrupt"


RUNAWAY = """
import sys
from imgfmt import decoding
from imgfmt.cli import main

decoding.BUDGET_BASE, decoding.BUDGET_PER_PIXEL = 16 << 20, 0
main(sys.argv[1:])
"""


def test_a_runaway_decoder_is_stopped_by_the_memory_budget_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    """Fault 2: whatever a decoder allocates beyond the image's budget fails at once (a
    MemoryError in the worker, not the kernel's OOM killer), the image is skipped as too
    large, and the worker packs the next image. (A budget of 16 MB and nothing a pixel
    stands in for a decoder gone wild; in a process of its own, whose heap is fresh.)"""
    photos = tmp_path / "photos" / "a"
    photos.mkdir(parents=True)
    big = Image.effect_noise((3000, 3000), 60).convert("RGB")  # 27 MB decoded
    (photos / "big.png").write_bytes(hostile.encode(big, "PNG", compress_level=1))
    (photos / "small.jpg").write_bytes(image_bytes(64, 48))
    args = ["pack", str(tmp_path / "photos"), str(tmp_path / "x.rec"), "--json", "--allow-skip"]
    for workers in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", RUNAWAY, *args, "-j", workers],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["packed"] == 1
        [skip] = summary["skipped_items"]
        assert skip["path"].endswith("big.png") and skip["kind"] == "too-large"
        assert skip["reason"] == (
            "too large: decoding needed more memory than a 3000x3000 image may use (17 MB); "
            "the file is likely corrupt"
        )


def gif_canvas(width: int, height: int) -> bytes:
    """A GIF whose canvas is ``width`` x ``height`` and whose only frame is 1 x 1 pixel."""
    screen = b"GIF89a" + struct.pack("<2H3B", width, height, 0x80, 0, 0) + bytes(6)
    return screen + b"\x2c" + struct.pack("<4HB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00;"


def bmp_rle8_blank(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP whose pixel data only skips down whole rows ("delta" codes of up to
    255 rows, 4 bytes each), then ends: every pixel index 0."""
    palette = bytes(4 * 256)
    deltas = [255] * (height // 255) + ([height % 255] if height % 255 else [])
    pixels = b"".join(b"\x00\x02\x00" + bytes([rows]) for rows in deltas) + b"\x00\x01"
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 0, 0, 256, 0)
    offset = 14 + len(info) + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return header + info + palette + pixels


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("GIF canvas larger than its frame", gif_canvas(4096, 4096)),
        ("RLE BMP of row skips", bmp_rle8_blank(4096, 4096)),
    ],
)
def test_formats_that_can_describe_large_areas_in_few_bytes_are_not_refused(
    name: str, data: bytes
) -> None:
    """Some codecs hold a large blank area in a few honest bytes: those formats have no
    pixels-per-byte bound, only --max-pixels and the memory budget."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.size[0] * image.size[1] > 16_000_000 and len(data) < 1200
        decoding.check_plausible(image, data, name)  # does not raise
        image.load()  # and it is a real image


@needs_fork
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_decoder_that_crashes_its_worker_costs_only_that_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """A segmentation fault in a decoder (here provoked on one image) skips that image with
    the reason, and every other image is packed, in order."""
    root = tmp_path / "photos"
    for i in range(12):
        (root / "a").mkdir(parents=True, exist_ok=True)
        (root / "a" / f"{i:02d}.jpg").write_bytes(image_bytes(32, 24, seed=i))
    real = pack.process_image

    def crashing(data: bytes, options: ImageOptions, name: str, notes: object = None) -> bytes:
        if name.endswith("07.jpg"):
            import faulthandler

            faulthandler.disable()  # pytest's: it would print the crash
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(data, options, name, notes)  # type: ignore[arg-type]

    monkeypatch.setattr(pack, "process_image", crashing)
    out = tmp_path / "x.rec"
    result = CliRunner().invoke(
        cli,
        ["pack", str(root), str(out), "--resize", "16", "-j", workers, "--no-shuffle", "--json"],
    )
    assert result.exit_code == 3  # completed, an image was skipped
    summary = json.loads(result.stdout)
    assert summary["packed"] == 11
    assert summary["skipped_items"] == [
        {
            "path": str(root / "a" / "07.jpg"),
            "kind": "corrupt",
            "reason": "the decoder crashed on this image: its worker process died "
            "(killed by SIGSEGV)",
        }
    ]
    with RecordReader(str(out)) as reader:
        ids = [unpack_image_record(record.payload)[0].id for record in reader]
    assert ids == [i for i in range(12) if i != 7]


def test_json_holds_one_object_also_when_every_image_is_skipped(
    corpus: tuple[Path, dict[str, hostile.Expect]], tmp_path: Path
) -> None:
    """Fault 4: with --json, stdout holds one object even when the command fails after it
    started, with the error and what was skipped."""
    folder, _expected = corpus
    out = tmp_path / "none.rec"
    result = CliRunner().invoke(
        cli, ["pack", str(folder / "junk"), str(out), "--json", "--allow-skip"]
    )
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 1
    assert summary["error"].endswith(
        "no image could be packed (2 skipped) (see the reasons above; nothing was written)"
    )
    assert sorted(s["kind"] for s in summary["skipped_items"]) == ["not-image", "not-image"]
    assert not out.exists()
    # Failures that are no image's fault too: one object, with the error.
    missing = CliRunner().invoke(
        cli, ["unpack", str(tmp_path / "gone.rec"), str(tmp_path / "u"), "--json"]
    )
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"].startswith(str(tmp_path / "gone.rec"))


def test_quiet_runs_print_no_decoder_chatter_and_verbose_ones_name_the_file(
    corpus: tuple[Path, dict[str, hostile.Expect]], tmp_path: Path
) -> None:
    """Fault 5: what decoders say (Python warnings, Pillow's log, libtiff on stderr) is kept
    per image: hidden by default and with -q, shown with -v next to the file's name."""
    folder, _expected = corpus
    photos = tmp_path / "photos" / "a"
    photos.mkdir(parents=True)
    for name in ("bad-iccp.png", "ancillary-crc.png"):
        (photos / name).write_bytes((folder / "metadata" / name).read_bytes())
    # A TIFF whose strip runs past the end of the file: libtiff prints to the process's
    # stderr, Pillow warns about the tag.
    tiff = hostile.encode(hostile.photo(), "TIFF", compression="tiff_lzw")
    (photos / "cut.tif").write_bytes(
        tiff[: len(tiff) - 200] if tiff[4:8] != b"\0\0\0\x08" else tiff
    )
    args = [
        "pack",
        str(tmp_path / "photos"),
        str(tmp_path / "o.rec"),
        "--exts",
        ".png,.tif",
        "--resize",
        "16",
        "--allow-skip",
    ]
    quiet = imgfmt(*args)
    assert quiet.returncode == 0
    assert all(line.startswith("warning: skipped ") for line in quiet.stderr.splitlines())
    # -q leaves out the decoders' chatter, never the names of the images skipped.
    assert imgfmt("-q", *args).stderr == quiet.stderr
    verbose = imgfmt("-v", *args).stderr
    assert (
        f"{photos / 'bad-iccp.png'}: decoder said: ignored a damaged iCCP chunk (ICC profile) "
        "at byte 33: unknown compression method 1"
    ) in verbose


def test_verify_decode_judges_a_rec_by_the_rule_pass_through_packs_by(tmp_path: Path) -> None:
    """Fault 3: a record that MXNet, DALI or SageMaker cannot decode is a problem in verify
    --decode, even though Pillow decodes it; JPEG and PNG records are clean."""
    base = hostile.photo()
    payloads = {
        "jpeg": hostile.encode(base, "JPEG"),
        "png": hostile.encode(base, "PNG"),
        "gif": hostile.encode(base.quantize(8), "GIF"),
        "webp": hostile.encode(base, "WEBP"),
        "cmyk": hostile.encode(base.convert("CMYK"), "JPEG"),
        "psd-like": b"8BPS" + bytes(40),
    }
    rec = tmp_path / "mixed.rec"
    with open(rec, "wb") as data, open(str(rec)[:-4] + IDX_SUFFIX, "w") as index:
        writer = RecordWriter(data, index, name=str(rec))
        for i, payload in enumerate(payloads.values()):
            writer.write(pack_image_record(0.0, i, payload), i)
    done = imgfmt("verify", str(rec), "--decode")
    assert done.returncode == 1
    lines = [line.split(": ", 2)[2] for line in done.stdout.splitlines()[:-1]]
    rule = "MXNet, NVIDIA DALI and SageMaker read JPEG and PNG only"
    fix = "(re-encode it: imgfmt pack without --pass-through)"
    assert lines == [
        f"format GIF in the dataset: {rule} {fix}",
        f"format WEBP in the dataset: {rule} {fix}",
        "a CMYK (4-component) JPEG in the dataset: not every one of MXNet, NVIDIA DALI and "
        f"SageMaker decodes it {fix}",
        "unsupported image format (PSD): no decoder for it here"
        if "PSD" not in Image.OPEN
        else f"format PSD in the dataset: {rule} {fix}",
    ]
    # The same rule for a JSON Lines dataset (SageMaker batch transform reads JPEG and PNG).
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps(
                {"id": i, "label": 0, "path": f"{k}.img", "image": base64.b64encode(v).decode()}
            )
            + "\n"
            for i, (k, v) in enumerate(payloads.items())
        )
    )
    lines = imgfmt("verify", str(jsonl), "--decode").stdout.splitlines()
    assert [line.split(": ")[1] for line in lines[:-1]] == ["line 3", "line 4", "line 5", "line 6"]


def test_verify_decode_gives_pack_s_reasons(
    corpus: tuple[Path, dict[str, hostile.Expect]], tmp_path: Path
) -> None:
    """Fault 6: the same guards decode in verify as in pack, so a broken PNG header is a CRC
    failure of its IHDR chunk, not "not a recognised image format"."""
    folder, _expected = corpus
    rec = tmp_path / "d.rec"
    names = ["damaged/broken-ihdr.png", "damaged/truncated.jpg", "metadata/bad-iccp.png"]
    with open(rec, "wb") as data, open(str(rec)[:-4] + IDX_SUFFIX, "w") as index:
        writer = RecordWriter(data, index, name=str(rec))
        for i, name in enumerate(names):
            writer.write(pack_image_record(0.0, i, (folder / name).read_bytes()), i)
    lines = imgfmt("verify", str(rec), "--decode").stdout.splitlines()
    assert [line.split(": ", 2)[2] for line in lines[:-1]] == [
        "corrupt PNG: chunk 'IHDR' at byte 8 fails its CRC check",
        "truncated JPEG: image file is truncated (26 bytes not processed)",
    ]


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (
            NotImplementedError("Unknown pixel format flags 8"),
            "unsupported",
            "unsupported DDS variant: Unknown pixel format flags 8",
        ),
        (
            OSError("Unsupported BMP bitfields layout"),
            "unsupported",
            "unsupported DDS variant: Unsupported BMP bitfields layout",
        ),
        (
            OSError("image file is truncated (3 bytes not processed)"),
            "truncated",
            "truncated DDS: image file is truncated (3 bytes not processed)",
        ),
        (EOFError(), "truncated", "truncated DDS: EOFError"),
        (MemoryError(), "too-large", "too large: decoding needed more memory than a 8x8 image"),
        (ValueError("invalid palette size"), "corrupt", "corrupt DDS: invalid palette size"),
        (SyntaxError("broken PNG file"), "corrupt", "corrupt DDS: broken PNG file"),
        (
            struct_error := __import__("struct").error("unpack requires a buffer"),
            "corrupt",
            "corrupt DDS: unpack requires a buffer",
        ),
        (
            OverflowError("signed integer is greater than maximum"),
            "corrupt",
            "corrupt DDS: signed integer is greater than maximum",
        ),
        (KeyError(7), "corrupt", "corrupt DDS: 7"),
        (RecursionError("maximum recursion depth exceeded"), "corrupt", "corrupt DDS"),
    ],
)
def test_any_exception_a_decoder_raises_becomes_one_sorted_image_error(
    error: Exception, kind: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault 1: whatever a decoder raises while decoding one image is that image's
    ImageError, sorted by kind: never another exception."""

    def failing(_image: object, _options: object, _name: str) -> None:
        raise error

    monkeypatch.setattr(images, "_transform", failing)
    data = hostile.encode(Image.new("RGBA", (8, 8)), "DDS")
    with pytest.raises(ImageError) as caught:
        process_image(data, ImageOptions(), "x.dds")
    assert caught.value.kind == kind
    assert str(caught.value).startswith(f"x.dds: {text}")
    assert caught.value.__cause__ is error


def test_keyboard_interrupt_is_not_an_image_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_image: object, _options: object, _name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_transform", interrupted)
    with pytest.raises(KeyboardInterrupt):
        process_image(image_bytes(8, 8), ImageOptions(), "x.jpg")


def test_rec_records_from_the_curated_corpus_read_back(
    tmp_path: Path, corpus: tuple[Path, dict[str, hostile.Expect]]
) -> None:
    """What pack kept of the hostile corpus is a whole, readable .rec (nothing half-written
    next to the skips)."""
    folder, expected = corpus
    out = tmp_path / "r.rec"
    done = imgfmt(
        "pack",
        str(folder),
        str(out),
        "--exts",
        exts_of(folder),
        "--allow-skip",
        "--resize",
        "24",
        "--json",
    )
    summary = json.loads(done.stdout)
    with RecordReader(str(out)) as reader:
        records = list(reader)
    assert len(records) == summary["packed"]
    assert summary["packed"] >= sum(e.decoded == "ok" for e in expected.values())
    for record in records:
        _header, image = unpack_image_record(record.payload)
        with Image.open(io.BytesIO(image)) as decoded:
            assert decoded.format == "JPEG" and min(decoded.size) == 24

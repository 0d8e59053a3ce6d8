"""Hostile image files, made here from what Pillow reads and refuses, and a check that imgfmt
gets through them: every image packed or skipped with a sorted reason, no crash, no traceback,
nothing printed that names no file, and no process above a memory ceiling.

Two corpora:

- ``curated``: one file per kind of trouble (rare and unsupported formats and variants,
  truncated files, headers that claim huge sizes, damaged metadata, text named ``.jpg``),
  each with what ``pack`` must say about it. The test suite checks every one
  (``tests/test_hostile.py``).
- ``mutated``: many files made from valid images of every format Pillow writes by cutting
  them short, flipping bytes, and writing large numbers into their headers (seeded, so the
  same every run). ``make hostile`` packs and verifies them all and checks the outcome.

Usage:
    python scripts/hostile.py build DIR [--mutations N]   # write both corpora under DIR
    python scripts/hostile.py check [--mutations N]        # build, run imgfmt, judge (make hostile)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, features

#: The ceiling ``check`` holds every imgfmt process to (RSS), at the default --max-pixels.
MAX_PROCESS_MB = 400


@dataclass(frozen=True)
class Expect:
    """What ``pack`` must make of a file: ``decoded`` when it re-encodes (``--resize``) and
    ``passed`` with ``--pass-through``. Each is ``"ok"``, a skip kind, or ``"*"`` (either);
    ``text`` must appear in the skip reason, or in a note when the image is packed."""

    decoded: str
    passed: str
    text: str = ""
    passed_text: str = ""


# --- building blocks ------------------------------------------------------------------------


def photo(width: int = 64, height: int = 48, mode: str = "RGB") -> Image.Image:
    """A small image with edges and gradients, so encoders do real work."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    rng = random.Random(width * 7919 + height)
    for _ in range(5):
        x, y = rng.randrange(width), rng.randrange(height)
        box = (x, y, min(width, x + width // 3 + 1), min(height, y + height // 3 + 1))
        image.paste(tuple(rng.randrange(256) for _ in range(3)), box)
    return image.convert(mode)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_with(extra: bytes, corrupt_ihdr: bool = False) -> bytes:
    """A valid 64x48 RGB PNG with ``extra`` chunks inserted after IHDR (or IHDR damaged)."""
    data = encode(photo(), "PNG")
    ihdr_end = 8 + 8 + 13 + 4
    head, rest = data[:ihdr_end], data[ihdr_end:]
    if corrupt_ihdr:
        head = head[:-4] + bytes(4)
    return head + extra + rest


def dds(
    width: int, height: int, pfflags: int, bitcount: int = 24, fourcc: bytes = bytes(4)
) -> bytes:
    """A DDS header (128 bytes) and no pixel data."""
    header = struct.pack("<4s7I", b"DDS ", 124, 0x1007, height, width, 0, 0, 0)
    header += bytes(44)  # reserved
    masks = (0xFF0000, 0xFF00, 0xFF, 0) if pfflags & 0x40 else (0, 0, 0, 0)
    header += struct.pack("<2I4s5I", 32, pfflags, fourcc, bitcount, *masks)
    header += struct.pack("<5I", 0x1000, 0, 0, 0, 0)
    return header


def blp2(width: int, height: int) -> bytes:
    """A BLP2 header (uncompressed palette, no alpha) with an empty palette and no pixels."""
    return b"BLP2" + struct.pack("<i4b2I", 1, 1, 0, 0, 0, width, height) + bytes(16 * 4 * 2)


def gif_claiming(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame claim ``width`` x ``height``; no data."""
    screen = b"GIF89a" + struct.pack("<2H3B", width, height, 0x80, 0, 0) + bytes(6)
    frame = b"\x2c" + struct.pack("<4HB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00;"
    return screen + frame


def bmp_bitfields(masks: tuple[int, int, int]) -> bytes:
    """A 4x4 32-bit BMP with BI_BITFIELDS and the given colour masks."""
    width = height = 4
    pixels = bytes(4 * width * height)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
    info += struct.pack("<3I", *masks)
    offset = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + pixels


def tiff_float64(pages: int = 2, width: int = 8, height: int = 6) -> bytes:
    """A little-endian TIFF of ``pages`` pages of 64-bit floating-point gray samples."""
    strip = struct.pack(f"<{width * height}d", *(i / 7 for i in range(width * height)))
    out = bytearray(b"II*\x00" + struct.pack("<I", 0))
    ifd_offsets = []
    for _page in range(pages):
        data_offset = len(out)
        out += strip
        ifd_offsets.append(len(out))
        tags = [
            (256, 3, 1, width),  # ImageWidth
            (257, 3, 1, height),  # ImageLength
            (258, 3, 1, 64),  # BitsPerSample
            (259, 3, 1, 1),  # Compression: none
            (262, 3, 1, 1),  # Photometric: black is zero
            (273, 4, 1, data_offset),  # StripOffsets
            (277, 3, 1, 1),  # SamplesPerPixel
            (278, 3, 1, height),  # RowsPerStrip
            (279, 4, 1, len(strip)),  # StripByteCounts
            (339, 3, 1, 3),  # SampleFormat: IEEE floating point
        ]
        out += struct.pack("<H", len(tags))
        for tag, kind, count, value in tags:
            packed = struct.pack("<H", value) + bytes(2) if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, count) + packed
        out += struct.pack("<I", 0)  # next IFD, patched below
    struct.pack_into("<I", out, 4, ifd_offsets[0])
    for this, nxt in zip(ifd_offsets, ifd_offsets[1:]):
        count = struct.unpack_from("<H", out, this)[0]
        struct.pack_into("<I", out, this + 2 + 12 * count, nxt)
    return bytes(out)


# --- the curated corpus ---------------------------------------------------------------------


def curated() -> dict[str, tuple[bytes, Expect]]:
    """``name -> (bytes, what pack must make of it)``: one file per kind of trouble."""
    unsupported_pt = "is not supported for pass-through"
    base = photo()
    jpeg = encode(base, "JPEG", quality=90)
    png = encode(base, "PNG")
    files: dict[str, tuple[bytes, Expect]] = {
        # Valid images in the formats every reader decodes.
        "ok/photo.jpg": (jpeg, Expect("ok", "ok")),
        "ok/progressive.jpg": (encode(base, "JPEG", progressive=True), Expect("ok", "ok")),
        "ok/gray.jpg": (encode(base.convert("L"), "JPEG"), Expect("ok", "ok")),
        "ok/rgba.png": (encode(photo(mode="RGBA"), "PNG"), Expect("ok", "ok")),
        "ok/palette.png": (encode(base.quantize(16), "PNG"), Expect("ok", "ok")),
        "ok/interlaced.png": (encode(base, "PNG", interlace=True), Expect("ok", "ok")),
        "ok/sixteen.png": (
            encode(Image.linear_gradient("L").convert("I;16"), "PNG"),
            Expect("ok", "ok"),
        ),
        # Valid images that pass-through must not store: their readers cannot decode them.
        "rare/icon.ico": (
            encode(base, "ICO"),
            Expect("ok", "unsupported", passed_text="format ICO " + unsupported_pt),
        ),
        "rare/targa.tga": (
            encode(base, "TGA"),
            Expect("ok", "unsupported", passed_text="format TGA " + unsupported_pt),
        ),
        "rare/quite-ok.qoi": (
            encode(base, "QOI"),
            Expect("ok", "unsupported", passed_text="format QOI " + unsupported_pt),
        ),
        "rare/bitmap.xbm": (
            encode(base.convert("1"), "XBM"),
            Expect("ok", "unsupported", passed_text="format XBM " + unsupported_pt),
        ),
        "rare/anim.gif": (
            encode(base.quantize(8), "GIF"),
            Expect("ok", "unsupported", passed_text="format GIF " + unsupported_pt),
        ),
        "rare/photo.webp": (
            encode(base, "WEBP"),
            Expect("ok", "unsupported", passed_text="format WEBP " + unsupported_pt),
        ),
        "rare/cmyk.jpg": (
            encode(base.convert("CMYK"), "JPEG"),
            Expect("ok", "unsupported", passed_text="a CMYK (4-component) JPEG " + unsupported_pt),
        ),
        "rare/arithmetic.jpg": (
            jpeg.replace(b"\xff\xc0", b"\xff\xc9", 1),  # the frame header of arithmetic coding
            # Decoding finds Huffman data under an arithmetic frame header; what libjpeg makes
            # of that is its own affair ("*": either outcome).
            Expect("*", "unsupported", passed_text="an arithmetic-coded JPEG " + unsupported_pt),
        ),
        # Formats and variants Pillow itself refuses.
        "variant/dds-unknown-pixel-format.jpg": (
            dds(16, 16, pfflags=8),
            Expect(
                "unsupported",
                "unsupported",
                text="unsupported DDS variant: Unknown pixel format flags 8",
                passed_text="format DDS " + unsupported_pt,
            ),
        ),
        "variant/bitfields-10-10-10.bmp": (
            bmp_bitfields((0x3FF00000, 0x000FFC00, 0x000003FF)),
            Expect(
                "unsupported",
                "unsupported",
                text="unsupported BMP variant: Unsupported BMP bitfields layout",
                passed_text="format BMP " + unsupported_pt,
            ),
        ),
        "variant/heic-header.heic": (
            b"\0\0\0\x18ftypheic" + bytes(32),
            Expect("unsupported", "unsupported", text="unsupported image format (HEIC)"),
        ),
        # Headers that claim more than their file can hold, or more than --max-pixels.
        "claims/dds-150-megapixels.dds": (
            dds(1, 150_000_000, pfflags=0x40),
            Expect("corrupt", "unsupported", text="its header claims 1x150000000 pixels"),
        ),
        "claims/blp-100-megapixels.blp": (
            blp2(1, 100_000_000),
            Expect("corrupt", "unsupported", text="its header claims 1x100000000 pixels"),
        ),
        "claims/gif-4-gigapixels.gif": (
            gif_claiming(65535, 65535),
            Expect("too-large", "unsupported", text="exceeds the limit of 179 megapixels"),
        ),
        # Cut short, or damaged.
        "damaged/truncated.jpg": (jpeg[: len(jpeg) // 2], Expect("truncated", "ok")),
        "damaged/truncated.png": (png[: len(png) // 2], Expect("truncated", "ok")),
        "damaged/zeroed-frame.jpg": (
            b"\xff\xd8\xff" + bytes(64),
            Expect("corrupt", "ok", text="corrupt JPEG: its header cannot be read"),
        ),
        "damaged/broken-ihdr.png": (
            png_with(b"", corrupt_ihdr=True),
            Expect("corrupt", "ok", text="chunk 'IHDR' at byte 8 fails its CRC check"),
        ),
        # Damaged metadata only: decoded without it, with a note (libpng skips it too).
        "metadata/bad-iccp.png": (
            png_with(png_chunk(b"iCCP", b"sRGB\0\x01" + zlib.compress(b"profile"))),
            Expect("ok", "ok", text="ignored a damaged iCCP chunk (ICC profile) at byte 33"),
        ),
        "metadata/ancillary-crc.png": (
            png_with(png_chunk(b"tEXt", b"Comment\0hello", crc=0)),
            Expect("ok", "ok", text="ignored a damaged tEXt chunk at byte 33: its CRC check fails"),
        ),
        "metadata/ztxt-bomb.png": (
            png_with(png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(bytes(4 << 20), 9))),
            Expect("ok", "ok", text="inflates to more than 1,048,576 bytes"),
        ),
        # Not images at all.
        "junk/page.jpg": (
            b"<html><body>404 Not Found</body></html>\n",
            Expect("not-image", "not-image", text="starts with '<html><body>404 '"),
        ),
        "junk/empty.jpg": (b"", Expect("not-image", "not-image", text="empty file (0 bytes)")),
    }
    files["variant/float64-2-pages.tif"] = (
        tiff_float64(),
        Expect("unsupported", "unsupported", passed_text="format TIFF " + unsupported_pt),
    )
    return files


def write_curated(folder: Path) -> dict[str, Expect]:
    """Write the curated corpus under ``folder`` (sub-folders are classes)."""
    expectations = {}
    for name, (data, expect) in curated().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expectations[name] = expect
    return expectations


# --- the mutated corpus ---------------------------------------------------------------------


def seeds() -> list[tuple[str, bytes]]:
    """Valid images of every format and variant Pillow writes here."""
    base = photo(96, 64)
    gray, one = base.convert("L"), base.convert("1")
    made = [
        ("jpg", encode(base, "JPEG")),
        ("jpg", encode(base, "JPEG", progressive=True)),
        ("jpg", encode(base.convert("CMYK"), "JPEG")),
        ("png", encode(base, "PNG")),
        ("png", encode(photo(96, 64, "RGBA"), "PNG", interlace=True)),
        ("png", encode(base.quantize(16), "PNG", bits=4)),
        ("png", encode(Image.linear_gradient("L").convert("I;16"), "PNG")),
        ("png", encode(one, "PNG")),
        ("gif", encode(base.quantize(32), "GIF")),
        ("bmp", encode(base, "BMP")),
        ("bmp", encode(base.quantize(16), "BMP")),
        ("bmp", encode(one, "BMP")),
        ("tif", encode(base, "TIFF")),
        ("tif", encode(base, "TIFF", compression="tiff_lzw")),
        ("tif", encode(base, "TIFF", compression="tiff_adobe_deflate")),
        ("tif", encode(base, "TIFF", compression="packbits")),
        ("tif", encode(base, "TIFF", compression="jpeg")),
        ("tif", encode(one, "TIFF", compression="group4")),
        ("tif", tiff_float64()),
        ("webp", encode(base, "WEBP")),
        ("webp", encode(base, "WEBP", lossless=True)),
        ("tga", encode(base, "TGA")),
        ("tga", encode(base, "TGA", compression="tga_rle")),
        ("pcx", encode(base, "PCX")),
        ("ppm", encode(base, "PPM")),
        ("pgm", encode(gray, "PPM")),
        ("ico", encode(base, "ICO")),
        ("icns", encode(photo(128, 128), "ICNS")),
        ("qoi", encode(base, "QOI")),
        ("dds", encode(photo(64, 64, "RGBA"), "DDS")),
        ("dds", encode(photo(64, 64, "RGBA"), "DDS", pixel_format="DXT1")),
        ("dds", encode(photo(64, 64, "RGBA"), "DDS", pixel_format="DXT5")),
        ("blp", encode(base.quantize(16), "BLP")),
        ("sgi", encode(base, "SGI")),
        ("xbm", encode(one, "XBM")),
        ("im", encode(base, "IM")),
        ("msp", encode(one, "MSP")),
        ("spi", encode(gray.convert("F"), "SPIDER")),
        ("mpo", encode(base, "MPO")),
    ]
    if features.check("jpg_2000"):
        made.append(("jp2", encode(base, "JPEG2000")))
    if features.check("avif"):
        made.append(("avif", encode(base, "AVIF")))
    return made


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One damaged copy: cut short, bytes flipped, or a large number written into the
    header (where formats keep their sizes)."""
    out = bytearray(data)
    how = rng.random()
    if how < 0.3:
        return bytes(out[: rng.randrange(1, len(out))])
    if how < 0.65:
        for _ in range(rng.randrange(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    # Large values in the first 64 bytes: sizes, offsets, counts.
    for _ in range(rng.randrange(1, 3)):
        at = rng.randrange(0, max(1, min(64, len(out) - 4)))
        value = rng.choice([0xFFFF, 0x7FFF, 0x10000, 0xFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 40000])
        out[at : at + 4] = struct.pack(rng.choice(["<I", ">I"]), value)
    return bytes(out[: len(data)])


def write_mutated(folder: Path, count: int, seed: int = 13) -> int:
    """Write ``count`` damaged images, round-robin over the seeds; returns how many."""
    rng = random.Random(seed)
    made = seeds()
    for i in range(count):
        ext, data = made[i % len(made)]
        path = folder / f"m{i % 7}" / f"{i:05d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_mutate(data, rng))
    return count


# --- the check ------------------------------------------------------------------------------

_PEAK_WATCHER = r"""
import os, subprocess, sys, time, json

def tree(pid):
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return found

def rss(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0

import tempfile

with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    proc = subprocess.Popen(sys.argv[1:], stdout=out, stderr=err)  # files: pipes could fill
    peak = 0
    while proc.poll() is None:
        peak = max([peak] + [rss(p) for p in tree(proc.pid)])
        time.sleep(0.005)
    out.seek(0)
    err.seek(0)
    found = {"code": proc.returncode, "peak": peak}
    found.update(stdout=out.read().decode(), stderr=err.read().decode())
print(json.dumps(found))
"""


def run_watched(args: list[str]) -> dict[str, object]:
    """Run ``args``; its exit code, output, and the largest RSS any process of it reached
    (sampled every 5 ms from /proc)."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_WATCHER, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def _judge(name: str, run: dict[str, object], total: int, problems: list[str]) -> None:
    stderr = str(run["stderr"])
    if "Traceback" in stderr or "internal error" in stderr:
        problems.append(f"{name}: a traceback or internal error:\n{stderr[-2000:]}")
    if int(str(run["code"])) not in (0, 1):
        problems.append(f"{name}: exit status {run['code']}")
    stray = [
        line
        for line in stderr.splitlines()
        if line and not line.startswith(("warning: skipped ", "Error: ")) and "skipped" not in line
    ]
    if stray:
        problems.append(f"{name}: {len(stray)} lines on stderr that name no file: {stray[:3]}")
    peak_mb = int(str(run["peak"])) / 2**20
    if peak_mb > MAX_PROCESS_MB:
        problems.append(f"{name}: a process reached {peak_mb:.0f} MB (ceiling {MAX_PROCESS_MB})")
    if total:
        summary = json.loads(str(run["stdout"]))
        counted = summary["packed"] + summary["skipped"]
        if counted != total:
            problems.append(f"{name}: {counted} images packed or skipped of {total}")


def check(mutations: int, workers: int) -> int:
    imgfmt = [sys.executable, "-m", "imgfmt"]
    with tempfile.TemporaryDirectory(prefix="imgfmt-hostile-") as temp:
        root = Path(temp)
        corpus = root / "corpus"
        curated_count = len(write_curated(corpus / "curated"))
        total = curated_count + write_mutated(corpus / "mutated", mutations)
        exts = sorted({p.suffix.lower() for p in corpus.rglob("*") if p.is_file()})
        print(f"hostile corpus: {total} files ({curated_count} curated, {mutations} mutated)")
        problems: list[str] = []
        runs = {
            "pack --resize 64": ["--resize", "64"],
            "pack --pass-through": ["--pass-through"],
            "pack --format recordio-protobuf": ["--format", "recordio-protobuf", "--size", "16x16"],
            "pack .jsonl": [],
        }
        for name, options in runs.items():
            out = root / ("out.jsonl" if name.endswith(".jsonl") else "out.rec")
            for stale in root.glob("out.*"):
                stale.unlink()
            args = [*imgfmt, "pack", str(corpus), str(out), "--exts", ",".join(exts)]
            started = time.perf_counter()
            run = run_watched([*args, *options, "-j", str(workers), "--json", "--allow-skip"])
            seconds = time.perf_counter() - started
            _judge(name, run, total, problems)
            summary = json.loads(str(run["stdout"])) if run["stdout"] else {}
            print(
                f"{name:34} exit {run['code']}  packed {summary.get('packed')}  skipped "
                f"{summary.get('skipped')}  peak {int(str(run['peak'])) / 2**20:.0f} MB  "
                f"{seconds:.1f} s"
            )
            if out.exists() and name != "pack --format recordio-protobuf":
                verified = run_watched(
                    [*imgfmt, "verify", str(out), "--decode", "-j", str(workers)]
                )
                _judge(f"verify --decode after {name}", verified, 0, problems)
                print(
                    f"{'  verify --decode':34} exit {verified['code']}  "
                    f"peak {int(str(verified['peak'])) / 2**20:.0f} MB  "
                    f"{str(verified['stdout']).strip().splitlines()[-1][:90]}"
                )
        for problem in problems:
            print(f"PROBLEM: {problem}")
        print("hostile check:", "FAILED" if problems else "passed")
        return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write the corpora under DIR")
    build.add_argument("dir", type=Path)
    build.add_argument("--mutations", type=int, default=2000)
    run = sub.add_parser("check", help="build the corpora, run imgfmt on them, judge the outcome")
    run.add_argument("--mutations", type=int, default=2000)
    run.add_argument("-j", "--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.command == "build":
        shutil.rmtree(args.dir, ignore_errors=True)
        write_curated(args.dir / "curated")
        write_mutated(args.dir / "mutated", args.mutations)
        print(f"wrote {args.dir}")
        return 0
    return check(args.mutations, args.workers)


if __name__ == "__main__":
    sys.exit(main())

"""Decoding untrusted image files so that none of them can stop, starve or flood a run.

Fed hostile bytes, Pillow's decoders raise nearly any exception (``OSError``,
``SyntaxError``, ``ValueError``, ``NotImplementedError``, ``struct.error``,
``OverflowError``, ``MemoryError``...), allocate whatever a header claims before they find
the data missing, and talk: Python warnings, a logger, and libtiff printing straight to the
process's stderr. Everything in imgfmt that decodes an image does it inside :func:`guarded`:

- **One error type, sorted.** Any exception becomes an ``ImageError`` whose ``kind`` says
  what a user can do about it (:data:`imgfmt.errors.IMAGE_ERROR_KINDS`): not an image,
  an unsupported variant (named), truncated, corrupt, or too large.
- **Headers that cannot be honest are refused before decoding** (:func:`check_plausible`):
  every codec has a best compression ratio, so a 131-byte file cannot hold 16 million
  pixels of DXT1 (2 pixels a byte at most). The table below gives each format's bound.
- **Memory is bounded per image** in imgfmt's worker processes (:func:`memory_budget`):
  the process's data size may grow by :data:`BUDGET_BASE` plus :data:`BUDGET_PER_PIXEL` a
  claimed pixel while the image is decoded, so a decoder that allocates far more than the
  image's size (a corrupt ICNS asked for 8 GB for 256x256 pixels) fails at once with a
  ``MemoryError``, which becomes a ``too-large`` skip, and the worker goes on.
- **What decoders say is kept per image** (``notes``): Python warnings, Pillow's log and
  what native libraries print on stderr are collected for that image, not printed.
- **Damaged metadata is not a damaged image** (:func:`repair_png`): a PNG whose only fault
  is an ancillary chunk (an ICC profile, text) that libpng would skip with a warning is
  decoded without that chunk, with a note saying so.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from imgfmt.errors import ImageError

if TYPE_CHECKING:
    from PIL import Image

NOT_IMAGE = "not-image"
UNSUPPORTED = "unsupported"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
TOO_LARGE = "too-large"

# --- implausible headers --------------------------------------------------------------------

#: Pixels that any header may claim whatever the file's size (2048 x 2048): below this an
#: image costs at most 16 MB as RGBA, so small files of every format decode without a look.
FREE_PIXELS = 1 << 22

#: The most pixels one byte of a file can describe, by Pillow format (``Image.format``): the
#: codec's best case, with margin. Sources, per codec:
#: - JPEG (Huffman): every 8x8 block costs at least one bit (its DC code) -> 512. Arithmetic
#:   coding has no such floor, so those JPEGs are not bounded (:func:`jpeg_frame`).
#: - PNG: deflate expands a byte to at most 1032 bytes, and a pixel is at least 1 bit
#:   (:func:`_png_pixels_per_byte` computes the bound from the header's bit depth).
#: - BMP without compression: 1 bit a pixel (8). (RLE BMPs are not bounded: a "delta" code
#:   skips up to 255 whole rows in 4 bytes.)
#: - DDS and BLP: block compression (DXT/BC) stores 16 pixels in 8 bytes at best (2); BLP1
#:   may hold JPEG (512). Uncompressed variants are denser than that bound anyway.
#: - TGA (RLE): a run of at most 128 pixels per 2 bytes (128); PCX and DCX: 63 bytes of
#:   1-bit planes per 2 bytes (256, 512 with margin); Sun raster: 256 bytes per 3 (1-bit: 684;
#:   1024); MSP: 255 bytes per 3 (1-bit: 680; 1024); QOI: 62 pixels per run byte (64).
#: - PNM, XBM, XPM: raw or text, at least 1 bit a pixel (8).
#: Formats not listed can describe huge areas in a few bytes honestly, so only ``max_pixels``
#: and the memory budget bound them: a GIF's canvas may be far larger than its frames (35
#: bytes for a blank 4096x4096 image), SGI's RLE rows may all share one stored row, TIFF has
#: fax coding and empty strips, FLI a "black frame" chunk; WebP, AVIF and JPEG 2000 code
#: arithmetically; EPS, ICNS, ICO and PSD hold other images.
PIXELS_PER_BYTE = {
    "JPEG": 512,
    "MPO": 512,
    "BMP": 8,
    "DIB": 8,
    "DDS": 8,
    "BLP": 512,
    "TGA": 128,
    "PCX": 512,
    "DCX": 512,
    "SUN": 1024,
    "MSP": 1024,
    "QOI": 64,
    "PPM": 8,
    "XBM": 8,
    "XPM": 8,
}
#: zlib's best ratio: 258-byte matches in 2 bits, about 1032 bytes out per byte in.
DEFLATE_MAX_RATIO = 1032

# JPEG start-of-frame markers (ITU T.81, table B.1): which coding process a JPEG uses.
JPEG_SOF_MARKERS = {
    0xC0: "baseline",
    0xC1: "extended sequential",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "hierarchical",
    0xC6: "hierarchical progressive",
    0xC7: "hierarchical lossless",
    0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded progressive",
    0xCB: "arithmetic-coded lossless",
    0xCD: "arithmetic-coded hierarchical",
    0xCE: "arithmetic-coded hierarchical progressive",
    0xCF: "arithmetic-coded hierarchical lossless",
}
#: JPEG markers without a length: TEM and the restart markers RST0-RST7.
_JPEG_NO_LENGTH = frozenset((0x01, *range(0xD0, 0xD8)))
#: Bytes of a JPEG searched for its frame header (they follow the metadata segments).
JPEG_SEARCH_LIMIT = 1 << 20


def jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """``(sof_marker, precision, components)`` of a JPEG's frame header, or None when the
    bytes are no JPEG or no frame header is found in the first :data:`JPEG_SEARCH_LIMIT`."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, end = 2, min(len(data), JPEG_SEARCH_LIMIT)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None  # not at a marker: the segment lengths do not add up
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in JPEG_SOF_MARKERS:
            if pos + 10 > len(data):
                return None
            return marker, data[pos + 4], data[pos + 9]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            return None
        pos += 2 + length
    return None


def _png_pixels_per_byte(data: bytes) -> float:
    """Deflate's best ratio over the bits of one pixel, from the PNG's IHDR chunk."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
    if len(data) < 26 or data[12:16] != b"IHDR":
        return DEFLATE_MAX_RATIO * 8
    depth, colour = data[24], data[25]
    bits = max(1, depth * channels.get(colour, 1))
    return DEFLATE_MAX_RATIO * 8 / bits


def pixels_per_byte(image: Image.Image, data: bytes) -> float | None:
    """The most pixels a byte of ``image``'s file can hold (None: not bounded)."""
    fmt = image.format or ""
    if fmt in ("PNG", "APNG"):
        return _png_pixels_per_byte(data)
    if fmt in ("JPEG", "MPO"):
        frame = jpeg_frame(data)
        if frame is not None and frame[0] >= 0xC8:
            return None  # arithmetic coding: no floor of bits per block
    if fmt in ("BMP", "DIB") and any(tile[0] == "bmp_rle" for tile in getattr(image, "tile", ())):
        return None  # RLE: a "delta" code skips whole rows
    return PIXELS_PER_BYTE.get(fmt)


def check_plausible(image: Image.Image, data: bytes, name: str) -> None:
    """Refuse an image whose header claims more pixels than its file could hold at its
    codec's best compression: a corrupt or hostile file, refused before anything is
    allocated for it."""
    width, height = image.size
    pixels = width * height
    if pixels <= FREE_PIXELS:
        return
    ratio = pixels_per_byte(image, data)
    if ratio is not None and pixels > ratio * len(data):
        raise ImageError(
            f"corrupt {image.format}: its header claims {width}x{height} pixels, more than "
            f"a {len(data):,}-byte file can hold (at most {ratio:,.0f} pixels a byte)",
            kind=CORRUPT,
            path=name,
        )


# --- memory ---------------------------------------------------------------------------------

#: What one image may add to a worker's data size while it is decoded, converted, resized and
#: encoded: BUDGET_BASE plus BUDGET_PER_PIXEL for every pixel its header claims (the larger
#: of the stored and the output size). Measured needs: 4-5 bytes a pixel for JPEG and PNG
#: (decoded RGBA or RGB plus its converted copy), about 17 for JPEG 2000 (OpenJPEG keeps
#: 32-bit planes); the base covers decoders' tables and a BLP1 whose JPEG reader needed
#: 220 MB for 425x256 pixels. With FREE_PIXELS, a tiny file claiming a large size can make a
#: worker grow by 320 MB at most before the allocation fails.
BUDGET_BASE = 256 << 20
BUDGET_PER_PIXEL = 16

_bounded = False  # set in imgfmt's worker processes (imgfmt.engines.local)


def bound_this_process() -> None:
    """Turn on :func:`memory_budget` in this process: imgfmt's workers do, once each. Not
    for a process that does other work: the limit is the whole process's."""
    global _bounded
    _bounded = sys.platform == "linux"


def _data_size() -> int:
    """The process's data size as RLIMIT_DATA counts it (heap and private writable maps)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[5]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def memory_budget(pixels: int) -> Iterator[None]:
    """While the block runs, this process (if bounded) may grow by the budget of an image of
    ``pixels`` pixels; past it, allocations fail with ``MemoryError``."""
    if not _bounded:
        yield
        return
    import resource

    saved = resource.getrlimit(resource.RLIMIT_DATA)
    limit = _data_size() + BUDGET_BASE + BUDGET_PER_PIXEL * pixels
    if saved[1] != resource.RLIM_INFINITY:
        limit = min(limit, saved[1])
    resource.setrlimit(resource.RLIMIT_DATA, (limit, saved[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, saved)


def budget_text(pixels: int) -> str:
    return f"{(BUDGET_BASE + BUDGET_PER_PIXEL * pixels) / 1e6:,.0f} MB"


# --- what decoders say ----------------------------------------------------------------------

_native_sink: IO[bytes] | None = None


@contextmanager
def _native_stderr(notes: list[str]) -> Iterator[None]:
    """What C libraries (libtiff...) print on file descriptor 2 during the block, as notes."""
    global _native_sink
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no stderr to take over
        return
    if _native_sink is None:
        _native_sink = tempfile.TemporaryFile()
    sink = _native_sink
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        size = os.lseek(sink.fileno(), 0, os.SEEK_CUR)
        if size:
            os.lseek(sink.fileno(), 0, os.SEEK_SET)
            text = os.read(sink.fileno(), min(size, 64 << 10)).decode("utf-8", "replace")
            notes.extend(line.strip() for line in text.splitlines() if line.strip())
            os.ftruncate(sink.fileno(), 0)
            os.lseek(sink.fileno(), 0, os.SEEK_SET)


class _NoteHandler(logging.Handler):
    def __init__(self, notes: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


_pillow_log_quiet = False


def quiet_pillow_log() -> None:
    """Pillow logs a few problems (``logger.error`` in its TIFF plugin) with no handler of
    its own, so Python's last-resort handler prints them, naming no file. A ``NullHandler``
    on the ``PIL`` logger stops only that: handlers an application configures still get
    every record, and :func:`captured` still collects them per image."""
    global _pillow_log_quiet
    if not _pillow_log_quiet:
        logging.getLogger("PIL").addHandler(logging.NullHandler())
        _pillow_log_quiet = True


@contextmanager
def captured(notes: list[str] | None) -> Iterator[None]:
    """Python warnings, Pillow's log and native stderr output during the block, appended to
    ``notes`` instead of printed (each message once). ``None``: nothing is captured.

    Process-wide: use it only where one image is decoded at a time in the process, as in
    imgfmt's worker processes."""
    if notes is None:
        yield
        return
    quiet_pillow_log()
    found: list[str] = []
    pil_log = logging.getLogger("PIL")
    handler = _NoteHandler(found)
    pil_log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught, _native_stderr(found):
            warnings.simplefilter("always")
            yield
    finally:
        pil_log.removeHandler(handler)
        found[:0] = [" ".join(str(w.message).split()) for w in caught]
        for note in found:
            if note not in notes:
                notes.append(note)


# --- sorting failures -----------------------------------------------------------------------

_UNSUPPORTED = re.compile(
    r"unsupported|not supported|not configured|unimplemented|not implemented|cannot handle|"
    r"cannot find loader|ghostscript|not available|unknown (pixel|data|tga|pcx|bitcount|"
    r"[a-z]+ mode|mode|compression|codec|format|color)",
    re.IGNORECASE,
)
_TRUNCATED = re.compile(
    r"truncated|expected to read|not enough (image )?data|premature end|unexpected end|"
    r"end of (file|data|stream)|buffer is not large enough|no more data",
    re.IGNORECASE,
)


def reason_text(err: BaseException) -> str:
    """An exception's message on one line (Pillow's occasionally span several)."""
    return " ".join(str(err).split()) or type(err).__name__


#: Pillow's messages that say only that a decoder failed; what the decoder itself said, if
#: anything, is more use to a reader.
_VAGUE = re.compile(r"decoder error|broken data stream|cannot load this image", re.IGNORECASE)


def classify(
    err: BaseException,
    fmt: str | None,
    name: str,
    size: tuple[int, int] | None = None,
    said: list[str] | None = None,
) -> ImageError:
    """The ``ImageError`` for any exception a decoder raised on ``name`` (a ``fmt`` image of
    ``size``, where the header was read; ``said``: what the decoders said meanwhile)."""
    from PIL import Image

    what = fmt or "image"
    detail = reason_text(err)
    if said and _VAGUE.search(detail):
        telling = [note for note in said if _UNSUPPORTED.search(note)] or said
        detail = f"{detail} ({telling[-1]})"
    if isinstance(err, MemoryError):
        claimed = f"a {size[0]}x{size[1]} image" if size else "this image"
        budget = f" ({budget_text(size[0] * size[1])})" if size else ""
        return ImageError(
            f"too large: decoding needed more memory than {claimed} may use{budget}; the "
            "file is likely corrupt",
            kind=TOO_LARGE,
            path=name,
        )
    if isinstance(err, Image.DecompressionBombError):
        return ImageError(f"too large: {detail}", kind=TOO_LARGE, path=name)
    if isinstance(err, NotImplementedError) or _UNSUPPORTED.search(detail):
        return ImageError(f"unsupported {what} variant: {detail}", kind=UNSUPPORTED, path=name)
    if isinstance(err, EOFError) or _TRUNCATED.search(detail):
        return ImageError(f"truncated {what}: {detail}", kind=TRUNCATED, path=name)
    return ImageError(f"corrupt {what}: {detail}", kind=CORRUPT, path=name)


class Guard:
    """What :func:`guarded` knows of the image so far, for its messages."""

    def __init__(self, fmt: str | None) -> None:
        self.format = fmt
        self.size: tuple[int, int] | None = None

    def opened(self, image: Image.Image) -> None:
        """``image`` (opened, not loaded) is the one decoded: name its format and size in
        failures, and refuse it now if Pillow can read only its header here."""
        from PIL import ImageFile

        self.format, self.size = image.format or self.format, image.size
        if isinstance(image, ImageFile.StubImageFile) and image._handler is None:
            raise NotImplementedError(f"Pillow reads only the header of {image.format} files")
        if image.size[0] < 1 or image.size[1] < 1:
            raise ValueError(f"its header claims {image.size[0]}x{image.size[1]} pixels")


@contextmanager
def guarded(name: str, notes: list[str] | None = None, fmt: str | None = None) -> Iterator[Guard]:
    """Decode inside this block: any exception but an ``ImageError`` (already sorted) or a
    ``KeyboardInterrupt`` leaves it as a sorted ``ImageError`` naming ``name`` (a ``fmt``
    image, until the guard is told better); with ``notes``, what decoders say is collected
    there (see :func:`captured`), and a native library's own words sharpen a vague failure
    ("decoder error -2" from libtiff saying "WEBP compression support is not configured")."""
    guard = Guard(fmt)
    said: list[str] = []
    try:
        with captured(said if notes is not None else None):
            yield guard
    except ImageError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure is one image's skip
        raise classify(err, guard.format, name, guard.size, said) from err
    finally:
        if notes is not None:
            notes.extend(note for note in said if note not in notes)


# --- damaged metadata -----------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Pillow refuses a PNG whose compressed text or ICC profile inflates beyond this
#: (``PngImagePlugin.MAX_TEXT_CHUNK``); libpng skips the chunk instead.
PNG_MAX_INFLATED_CHUNK = 1 << 20
_PNG_COMPRESSED_CHUNKS = {b"iCCP": "ICC profile", b"zTXt": "text", b"iTXt": "text"}


def _png_chunk_fault(kind: bytes, body: bytes) -> str | None:
    """Why Pillow would refuse an ancillary chunk that libpng only skips, or None."""
    if kind not in _PNG_COMPRESSED_CHUNKS:
        return None
    if kind == b"iTXt":
        # keyword \0 compression-flag method language \0 translated \0 text
        keyword_end = body.find(b"\0")
        if keyword_end < 0 or len(body) < keyword_end + 3 or body[keyword_end + 1] == 0:
            return None  # not compressed: Pillow reads it as it is
        method = body[keyword_end + 2]
        rest = body[keyword_end + 3 :]
        for _ in range(2):  # language and translated keyword
            end = rest.find(b"\0")
            if end < 0:
                return None
            rest = rest[end + 1 :]
        compressed = rest
    else:
        keyword_end = body.find(b"\0")
        if keyword_end < 0 or len(body) < keyword_end + 2:
            return "its keyword is not terminated"
        method, compressed = body[keyword_end + 1], body[keyword_end + 2 :]
    if method != 0:
        return f"unknown compression method {method}"
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(compressed, PNG_MAX_INFLATED_CHUNK + 1)
    except zlib.error as err:
        return f"its compressed data is damaged ({err})"
    if inflater.unconsumed_tail:
        return f"it inflates to more than {PNG_MAX_INFLATED_CHUNK:,} bytes"
    return None


def repair_png(data: bytes, name: str, notes: list[str] | None) -> bytes:
    """``data`` with the ancillary chunks that would stop Pillow but not libpng removed (a
    bad CRC; an ICC profile or text that cannot be inflated or inflates too far), each
    named in ``notes``; the bytes themselves when there is none.

    A critical chunk (IHDR, PLTE, IDAT, IEND) with a bad CRC is a corrupt image, as libpng
    (so ``cv2.imread``) sees it: Pillow checks only the chunks before the pixels, and a
    damaged IDAT would decode silently to wrong pixels.
    """
    if not data.startswith(PNG_SIGNATURE):
        return data
    view = memoryview(data)
    offset = len(PNG_SIGNATURE)
    dropped: list[tuple[int, int]] = []
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + 8 + length
        if end + 4 > len(data):
            break  # truncated: Pillow reports it when decoding
        kind = data[offset + 4 : offset + 8]
        (stored_crc,) = struct.unpack_from(">I", data, end)
        critical = not kind[0] & 0x20  # upper-case first letter
        crc_ok = stored_crc == zlib.crc32(view[offset + 4 : end])
        label = kind.decode("latin-1")
        if critical and not crc_ok:
            raise ImageError(
                f"corrupt PNG: chunk {label!r} at byte {offset} fails its CRC check",
                kind=CORRUPT,
                path=name,
            )
        fault = None if critical else ("its CRC check fails" if not crc_ok else None)
        fault = fault or (None if critical else _png_chunk_fault(kind, data[offset + 8 : end]))
        if fault is not None:
            what = _PNG_COMPRESSED_CHUNKS.get(kind)
            described = f"{label} chunk ({what})" if what else f"{label} chunk"
            if notes is not None:
                notes.append(f"ignored a damaged {described} at byte {offset}: {fault}")
            dropped.append((offset, end + 4))
        if kind == b"IEND":
            break
        offset = end + 4
    if not dropped:
        return data
    parts, start = [], 0
    for begin, finish in dropped:
        parts.append(view[start:begin])
        start = finish
    parts.append(view[start:])
    return b"".join(parts)


__all__ = [
    "BUDGET_BASE",
    "BUDGET_PER_PIXEL",
    "CORRUPT",
    "FREE_PIXELS",
    "NOT_IMAGE",
    "PIXELS_PER_BYTE",
    "TOO_LARGE",
    "TRUNCATED",
    "UNSUPPORTED",
    "bound_this_process",
    "captured",
    "check_plausible",
    "classify",
    "guarded",
    "jpeg_frame",
    "memory_budget",
    "repair_png",
]

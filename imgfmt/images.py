"""Decode, orient, convert, crop, resize and encode one image, as im2rec does, with Pillow.

The arithmetic is mxnet 1.9.1 ``tools/im2rec.py`` (``image_encode``) exactly, so output sizes
match it pixel for pixel:

- ``--center-crop``: the centre square of the upright image, margin ``(long - short) // 2``.
- ``--resize N``: if height > width the size becomes ``(N, height * N // width)``, else
  ``(width * N // height, N)``; upscaling included.

Where im2rec decodes with OpenCV we decode with Pillow and follow ``cv2.imread``: ``color=1``
gives 3-channel colour (alpha dropped without compositing, 16-bit reduced by ``>> 8``) and
``color=0`` grayscale, both upright by the EXIF orientation; ``color=-1`` keeps the stored
channels and, like ``cv2.IMREAD_UNCHANGED``, ignores the EXIF orientation. Resizing
antialiases (OpenCV's INTER_LINEAR aliases on large reductions): a shrink under 2x averages 2x2
samples per output pixel, larger ones use Pillow's bilinear filter, and a JPEG that is to
shrink by 2x or more is decoded at reduced size by libjpeg (``draft``).

Pillow is imported on first use: importing this module stays cheap for the commands that only
move bytes. Every failure is an ``ImageError`` naming the image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgfmt import decoding
from imgfmt.errors import ImageError, UsageError

if TYPE_CHECKING:
    from PIL import Image

# Pillow refuses images above 2 * Image.MAX_IMAGE_PIXELS (2 * 89,478,485: a 24-bit RGB image of
# about 1 GB decoded) as decompression bombs; we keep that limit, but make it ours and adjustable
# (--max-pixels). It passes 50-108 MP phone photos and 150 MP medium-format frames.
DEFAULT_MAX_PIXELS = 2 * 89_478_485

JPEG_ENCODING = ".jpg"
PNG_ENCODING = ".png"
JPEG_QUALITY_RANGE = (1, 100)  # libjpeg's quality scale
#: The quality of each encoding when none is given: im2rec's 95 for JPEG, and for PNG the 9
#: that OpenCV made of im2rec's 95 (it clamps the level to 0-9).
DEFAULT_QUALITY = {".jpg": 95, ".png": 9}
PNG_LEVEL_RANGE = (0, 9)  # zlib compression levels
COLOR_MODES = {1: "color", 0: "grayscale", -1: "unchanged"}  # cv2.imread flags im2rec passes
JPEG_SUBSAMPLING_420 = 2  # Pillow's code for 4:2:0 chroma subsampling, OpenCV's default too

# A JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) only while the reduced
# image keeps at least DRAFT_MARGIN times the target size, so the final resize still filters
# or, just under 1, enlarges by at most 1 / DRAFT_MARGIN. Outputs stay within 40-48 dB of full
# decoding (tests/test_images.py) and a 3000x2000 JPEG packs about 2.5x faster: its decode
# drops from 20-26 ms to 9-15 ms, the rest being entropy decoding, which no scale avoids.
# 0.97 rather than 1.0 lets 3000x2000 -> 384x256 decode at 1/8 (375x250, enlarged by 2.4%)
# instead of 1/4: 14 -> 11.5 ms per photo, 0.5 dB further from full decoding (40.8 dB).
DRAFT_MARGIN = 0.97

# Shrinking by REDUCING_GAP * 2 or more first averages whole pixel blocks (Image.reduce), then
# filters: twice as fast as filtering all the way for a 3000x2000 PNG to 256, and within 0.5 dB.
REDUCING_GAP = 2.0

# A shrink by less than this factor (the smaller of the two axes') of a fully decoded image to at
# most SUPERSAMPLE_MAX_PIXELS -- ImageNet's typical 500x375 to 256 is 1.46x -- is supersampled:
# the image is sampled (NEAREST) on a grid twice as fine as the output and each 2x2 block of
# samples averaged (Image.reduce). Pillow's convolving filters are scalar C, and they were half
# of a resize pack's time: for 500x375 to 341x256, BOX takes 0.91 ms and BILINEAR 1.35,
# supersampling 0.48, so the benchmark's 2,000-image pack on 2 cores went from 2.40 to 1.95 s.
# Quality (scripts/resample_quality.py): against a Lanczos reduction of 300 natural-looking
# 500x375 images, 45.4 dB, a little under BOX (46.6) and BILINEAR (46.7) and above OpenCV-style
# point-sampled bilinear, i.e. im2rec (43.7); on aliasing-prone patterns (zone plate, stripes,
# noise, a grid) and on shrinks near 1x it is 2-4 dB closer than BOX (BILINEAR stays closest).
# On the benchmark's 2,000 images, 42.3 dB from im2rec's own pixels (BOX: 42.8).
# Larger shrinks, and those after a reduced-size decode (itself an average), keep BILINEAR: it
# lands closest to im2rec's (aliased) pixels there (tests/test_pack_interop.py).
SUPERSAMPLE_BELOW = 2.0
# The fine grid is 4x the output's pixels: beyond about 2 MP of output, supersampling is no
# faster than BOX (2054x1369: 45 against 39 ms) and its grid costs 4x the memory, so large
# outputs keep BOX.
SUPERSAMPLE_MAX_PIXELS = 1_000_000
# The modes _convert gives that Image.reduce averages (LA and RGBA premultiplied by Pillow):
# it refuses 16-bit images, which are neither supersampled nor pre-reduced (REDUCING_GAP) but
# filtered all the way.
_REDUCIBLE_MODES = frozenset({"L", "RGB", "LA", "RGBA"})

# How Pillow allocates image memory (``Image.core.set_block_size`` / ``set_blocks_max``). By
# default an image is one block of its own size (up to 16 MB): a 500x375 image (750 KB) and its
# resized copies (511 and 349 KB) are each an mmap of their own, and reusing a freed one means
# resizing it, so each image still faulted in ~100 fresh pages (zeroed by the kernel, then TLB
# misses) even with 2 freed blocks kept. In blocks of at most PILLOW_BLOCK_SIZE, every block is
# below glibc's 64 KB mmap threshold (below) and comes from the heap, and PILLOW_BLOCKS_MAX
# freed blocks (4 MB) wait for reuse; the next image's blocks are nearly the same size, so a
# reused one is reallocated in place. Resizing the benchmark's 500x375 JPEGs to 256 took
# 2.18 ms each (93 page faults) and now 2.00 (none); its 2,000-image pack on 2 cores went from
# 2.46 to 2.31 s, its system time from 0.45 to 0.19 s. Blocks hold whole lines: a line wider
# than a block (15,360 RGB pixels) is a block of its own. The environment's
# ``PILLOW_BLOCK_SIZE`` and ``PILLOW_BLOCKS_MAX`` still win.
PILLOW_BLOCK_SIZE = 60 << 10
PILLOW_BLOCKS_MAX = 64

# glibc's malloc serves an allocation from its heap once a free()d mmap chunk of that size
# raised its dynamic mmap threshold; the decoder's and the pipes' 64-256 KB buffers then
# fragment the heap, and a pack worker grew 0.6 MB per 1,000 images (+6 MB for 20,000,
# Python's own memory flat). A fixed threshold (M_MMAP_THRESHOLD, -3) keeps them in mmap:
# flat memory. Pillow's blocks (above) stay just under it, in the heap.
_M_MMAP_THRESHOLD = -3
MALLOC_MMAP_THRESHOLD = 64 << 10

EXIF_ORIENTATION_TAG = 0x0112
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})  # Pillow formats that decode at reduced size
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


@dataclass(frozen=True)
class ImageOptions:
    """What to do to every image: the im2rec record options (docs/formats.md section 5).

    Options that cannot work together raise ``UsageError``; its message names parameters
    in backticks (`resize`), which the command line shows as its flags (``--resize``).
    """

    pass_through: bool = False
    resize: int = 0
    center_crop: bool = False
    quality: int = 95
    encoding: str = JPEG_ENCODING
    color: int = 1
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.encoding not in (JPEG_ENCODING, PNG_ENCODING):
            raise UsageError(f"encoding must be .jpg or .png, not {self.encoding!r}")
        if self.color not in COLOR_MODES:
            raise UsageError(f"color must be 1, 0 or -1, not {self.color!r}")
        low, high = JPEG_QUALITY_RANGE if self.encoding == JPEG_ENCODING else PNG_LEVEL_RANGE
        if not low <= self.quality <= high:
            png = self.encoding == PNG_ENCODING
            what = "PNG compression level" if png else "JPEG quality"
            raise UsageError(
                f"quality {self.quality} is out of range for {self.encoding}: the {what} is "
                f"{low}-{high}",
                # cv2.imencode clamps the level, so im2rec's default 95 meant 9 with .png.
                hint="im2rec used 9 for any larger value: pass quality 9 for the same output"
                if png and self.quality > high
                else None,
            )
        if self.resize < 0:
            raise UsageError(f"resize must be 0 (keep size) or a positive edge, not {self.resize}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise UsageError(f"max_pixels must be positive or None, not {self.max_pixels}")
        if self.pass_through:
            ignored = [
                f.name
                for f in dataclasses.fields(self)
                if f.name in _PROCESSING and getattr(self, f.name) != f.default
            ]
            if ignored:
                names = ", ".join(f"`{name}`" for name in ignored)
                verb = "does" if len(ignored) == 1 else "do"
                raise UsageError(
                    f"{names} {verb} not apply with `pass_through`, which stores every file "
                    "unchanged"
                )


#: The options that say how an image is processed (pass-through ignores them all).
_PROCESSING = ("resize", "center_crop", "quality", "encoding", "color")


_pillow_tuned = False


def _tune_pillow() -> None:
    """Once per process (a forked worker inherits it): image memory in small reusable blocks
    and a fixed glibc mmap threshold, unless the environment sets them."""
    global _pillow_tuned
    if _pillow_tuned:
        return
    _pillow_tuned = True
    from PIL import Image

    if "PILLOW_BLOCK_SIZE" not in os.environ:
        Image.core.set_block_size(PILLOW_BLOCK_SIZE)
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        Image.core.set_blocks_max(PILLOW_BLOCKS_MAX)
    if sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        import ctypes

        try:
            ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
        except (AttributeError, OSError):  # not glibc: its allocator has no such threshold
            pass


def process_image(
    data: bytes, options: ImageOptions, name: str = "<image>", notes: list[str] | None = None
) -> bytes:
    """The record payload for one image file's bytes: decoded, transformed and re-encoded
    as ``options`` say, or ``data`` itself with ``pass_through``.

    Deterministic: the same bytes and options always give the same output. Raises
    ``ImageError`` (naming ``name``, its ``kind`` saying why) for anything that is not a
    usable image, whatever the decoder raised. With ``notes``, what the decoders said about
    the image is collected there instead of printed (see ``imgfmt.decoding.captured``).
    """
    if options.pass_through:
        if not data:
            raise ImageError("empty file (0 bytes)", kind=decoding.NOT_IMAGE, path=name)
        return data
    with _guarded_open(data, options, name, notes) as image:
        result = _transform(image, options, name)
        try:
            return _encode(result, options)
        except (OSError, ValueError) as err:
            raise ImageError(
                f"cannot encode as {options.encoding}: {decoding.reason_text(err)}", path=name
            ) from err


def check_decodes(
    data: bytes,
    name: str = "<image>",
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    notes: list[str] | None = None,
) -> None:
    """Decode ``data`` fully, as ``process_image`` would, and drop the pixels: ``ImageError``
    (sorted by ``kind``) when it does not decode. What ``verify --decode`` runs."""
    with _guarded_open(data, ImageOptions(max_pixels=max_pixels), name, notes) as image:
        image.load()


@contextmanager
def opened(
    data: bytes,
    name: str = "<image>",
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    notes: list[str] | None = None,
) -> Iterator[Image.Image]:
    """``data`` opened (its header read, nothing decoded yet) inside every guard that
    ``process_image`` decodes under: a failure now or while the block decodes is an
    ``ImageError`` (sorted by ``kind``), whatever the decoder raised. For readers that want
    less than the whole image (its size, a hash at reduced scale, a thumbnail)."""
    with _guarded_open(data, ImageOptions(max_pixels=max_pixels), name, notes) as image:
        yield image


@contextmanager
def _guarded_open(
    data: bytes, options: ImageOptions, name: str, notes: list[str] | None
) -> Iterator[Image.Image]:
    """The image of ``data``, opened (not decoded) inside every guard of
    ``imgfmt.decoding``: any failure sorted, its header's size checked against
    ``max_pixels`` and against what the file can hold, the block run under the image's
    memory budget, what decoders say collected in ``notes``."""
    if not data:
        raise ImageError("empty file (0 bytes)", kind=decoding.NOT_IMAGE, path=name)
    _tune_pillow()
    with decoding.guarded(name, notes, format_name(data)) as guard:
        image = _open(decoding.repair_png(data, name, notes), name)
        with image:
            guard.opened(image)
            _check_pixels(*image.size, options, name, "the image")
            decoding.check_plausible(image, data, name)
            with decoding.memory_budget(_pixels_handled(image.size, options)):
                yield image


def sniff_extension(data: bytes) -> str | None:
    """The usual file extension of an encoded image, from its magic bytes; None if unknown."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ".webp"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):  # classic, BigTIFF
        return ".tiff"
    if head.startswith(b"BM") and head[14:15] and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return ".bmp"  # the DIB header size that follows the file header tells it from text
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return ".avif"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"):
            return ".heic"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xffO\xffQ"):
        return ".jp2"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return ".jxl"
    if head.startswith(b"8BPS"):
        return ".psd"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return {b"1": ".pbm", b"4": ".pbm", b"2": ".pgm", b"5": ".pgm"}.get(head[1:2], ".ppm")
    for magic, extension in _MORE_MAGIC:
        if head.startswith(magic):
            return extension
    if head.startswith(b"\0\0\1\0") and head[4:6] != b"\0\0":  # an icon directory, 1+ images
        return ".ico"
    return None


# Formats rarer in datasets, told by their first bytes (each format's own specification).
_MORE_MAGIC = (
    (b"qoif", ".qoi"),
    (b"DDS ", ".dds"),
    (b"BLP1", ".blp"),
    (b"BLP2", ".blp"),
    (b"icns", ".icns"),
    (b"SIMPLE  =", ".fits"),
    (b"\x01\xda", ".sgi"),
    (b"\x59\xa6\x6a\x95", ".ras"),
)


def format_name(data: bytes) -> str | None:
    """The name Pillow gives the format of ``data`` (``JPEG``, ``ICO``...), from its first
    bytes alone; None when they tell nothing."""
    from PIL import Image

    extension = sniff_extension(data)
    if extension is None:
        return None
    return Image.registered_extensions().get(extension) or extension.lstrip(".").upper()


# --- decoding -------------------------------------------------------------------------------

# Pillow's own bomb check reads the global Image.MAX_IMAGE_PIXELS; ours is per ImageOptions. The
# global is switched off only while a header is parsed (or a crop made) and restored at once,
# under a lock, so concurrent calls never see each other's setting and nothing leaks.
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pillow_bomb_check_off() -> Iterator[None]:
    from PIL import Image

    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(data: bytes, name: str) -> Image.Image:
    """The image, opened but not decoded: only its header has been read, whatever its size.
    Pillow's own bomb check is off here: ``max_pixels`` and ``check_plausible`` judge it."""
    from PIL import Image, UnidentifiedImageError

    # JPEG and PNG (nearly every dataset image) go straight to their plugin: Image.open
    # otherwise tries every plugin registered before it, some of which parse the header to
    # refuse it (an open took 0.037 ms, 0.017 ms so). The full search stays for whatever
    # that plugin refuses.
    formats = _PLUGIN_BY_MAGIC.get(data[:3])
    try:
        with _pillow_bomb_check_off():
            if formats is not None:
                with contextlib.suppress(UnidentifiedImageError):
                    return Image.open(io.BytesIO(data), formats=formats)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as err:
        raise _unidentified(data, name) from err


#: The Pillow plugin that reads the images starting with these bytes.
_PLUGIN_BY_MAGIC = {b"\xff\xd8\xff": ("JPEG",), b"\x89PN": ("PNG",)}


#: What Pillow's header parsers raise when the bytes end early.
_SHORT_READ = (struct.error, EOFError)


def _unidentified(data: bytes, name: str) -> ImageError:
    """Why Pillow could not open ``data``: a text file is not a damaged header, nor a format
    Pillow does not read, nor a variant its plugin refuses (which it then names)."""
    from PIL import Image

    extension = sniff_extension(data)
    if extension is None:
        reason = f"not an image (unrecognised format; {describe_start(data)})"
        return ImageError(reason, kind=decoding.NOT_IMAGE, path=name)
    fmt = format_name(data) or extension
    if fmt not in Image.OPEN:
        reason = f"unsupported image format ({fmt}): no decoder for it here"
        return ImageError(reason, kind=decoding.UNSUPPORTED, path=name)
    # Image.open hides why the format's own plugin refused the file: ask the plugin.
    factory, _accept = Image.OPEN[fmt]
    try:
        with _pillow_bomb_check_off():
            factory(io.BytesIO(data), "").close()
    except Exception as err:  # noqa: BLE001 - the plugin's reason, whatever its type
        if isinstance(err, _SHORT_READ) or isinstance(err.__context__, _SHORT_READ):
            reason = f"truncated {fmt}: the file ends inside its header"
            return ImageError(reason, kind=decoding.TRUNCATED, path=name)
        if "not identified" not in str(err):
            return decoding.classify(err, fmt, name)
    return ImageError(f"corrupt {fmt}: its header cannot be read", kind=decoding.CORRUPT, path=name)


def describe_start(data: bytes) -> str:
    """``starts with '<!DOCTYPE html>'`` for text, else the first bytes in hex: what a file
    that is no image holds, for a message."""
    head = data[:16]
    text = head.decode("latin-1")
    if text.isascii() and all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"starts with {text!r}"
    return f"starts with {head[:8].hex(' ')}"


def _pixels_text(count: int) -> str:
    if count >= 10**9:
        return f"{count / 1e9:.3g} gigapixels"
    if count >= 10**6:
        return f"{count / 1e6:.3g} megapixels"
    return f"{count:,} pixels"


def _check_pixels(width: int, height: int, options: ImageOptions, name: str, what: str) -> None:
    limit = options.max_pixels
    if limit is not None and width * height > limit:
        raise ImageError(
            f"too large: {what} {width}x{height} = {_pixels_text(width * height)} exceeds the "
            f"limit of {_pixels_text(limit)}",
            kind=decoding.TOO_LARGE,
            path=name,
            hint="raise it with --max-pixels",
        )


def _center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """im2rec's centre square: margin (long - short) // 2 from the top or the left."""
    if height > width:
        margin = (height - width) // 2
        return (0, margin, width, margin + width)
    margin = (width - height) // 2
    return (margin, 0, margin + height, height)


def _pixels_handled(size: tuple[int, int], options: ImageOptions) -> int:
    """The most pixels one image of stored ``size`` is held as: stored or output size (the
    product does not depend on the EXIF orientation)."""
    width, height = size
    if options.center_crop:
        width = height = min(width, height)
    output = math.prod(_resized_size(width, height, options.resize)) if options.resize else 0
    return max(size[0] * size[1], output)


def _resized_size(width: int, height: int, edge: int) -> tuple[int, int]:
    """im2rec's new (width, height) for --resize: it compares shape[0] > shape[1]."""
    if height > width:
        return (edge, height * edge // width)
    return (width * edge // height, edge)


# EXIF orientation value -> the Pillow transpose that turns the stored pixels upright.
_UPRIGHT_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """The transpose that turns the stored pixels upright by the EXIF orientation, if any."""
    from PIL import Image

    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF, whatever its parser raised:
        return None  # decoders (cv2 included) show the pixels as stored
    name = _UPRIGHT_TRANSPOSE.get(value) if isinstance(value, int) else None
    return Image.Transpose[name] if name else None


def _swaps_axes(method: Image.Transpose) -> bool:
    from PIL import Image

    return method in (
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
    )


def _unrotate_box(
    box: tuple[int, int, int, int], method: Image.Transpose, upright: tuple[int, int]
) -> tuple[int, int, int, int]:
    """``box`` of the upright image, mapped back onto the stored image that ``method`` turns
    upright (``upright`` is the upright image's size)."""
    from PIL import Image

    t = Image.Transpose
    width, height = upright
    inverse = {t.ROTATE_90: t.ROTATE_270, t.ROTATE_270: t.ROTATE_90}.get(method, method)

    def point(x: int, y: int) -> tuple[int, int]:
        # Where the pixel corner (x, y) of the upright image lands under ``inverse``.
        return {
            t.FLIP_LEFT_RIGHT: (width - x, y),
            t.FLIP_TOP_BOTTOM: (x, height - y),
            t.ROTATE_180: (width - x, height - y),
            t.ROTATE_90: (y, width - x),
            t.ROTATE_270: (height - y, x),
            t.TRANSPOSE: (y, x),
            t.TRANSVERSE: (height - y, width - x),
        }[inverse]

    (ax, ay), (bx, by) = point(box[0], box[1]), point(box[2], box[3])
    return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def _transform(image: Image.Image, options: ImageOptions, name: str) -> Image.Image:
    """Decode ``image`` (opened, not loaded) and apply --color, --center-crop and --resize.

    The geometry is planned on the upright image but carried out on the stored one, then the
    (small) result is turned upright: this lets libjpeg decode only the scale needed.
    """
    from PIL import Image

    stored_size = image.size
    if image.format not in _DRAFT_FORMATS:
        image.load()  # now, so that reading EXIF (which may decode a PNG) cannot hide an error
    method = _orientation(image) if options.color != -1 else None
    upright = stored_size[::-1] if method is not None and _swaps_axes(method) else stored_size

    box = (0, 0, *upright)
    if options.center_crop:
        box = _center_crop_box(*upright)
    target = None
    if options.resize:
        target = _resized_size(box[2] - box[0], box[3] - box[1], options.resize)
        _check_pixels(*target, options, name, "the resized image")
    if method is not None:
        box = _unrotate_box(box, method, upright)
        if target and _swaps_axes(method):
            target = (target[1], target[0])

    # libjpeg can decode straight to grayscale (the Y plane, as cv2 does) and at 1/2..1/8 size.
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    draft_size = None
    if target and target[0] * 2 <= crop_w and target[1] * 2 <= crop_h:
        draft_size = (
            math.ceil(stored_size[0] * target[0] * DRAFT_MARGIN / crop_w),
            math.ceil(stored_size[1] * target[1] * DRAFT_MARGIN / crop_h),
        )
    drafted = image.draft("L" if options.color == 0 else image.mode, draft_size)
    scale = drafted[1][2] / stored_size[0] if drafted else 1.0
    image.load()

    result = _convert(image, options)
    if target:
        scaled = (box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale)
        factor = min(crop_w * scale / target[0], crop_h * scale / target[1])
        mild = scale == 1.0 and 1 < factor < SUPERSAMPLE_BELOW
        reducible = result.mode in _REDUCIBLE_MODES
        if mild and reducible and target[0] * target[1] <= SUPERSAMPLE_MAX_PIXELS:
            fine = (target[0] * 2, target[1] * 2)
            result = result.resize(fine, Image.Resampling.NEAREST, box=scaled).reduce(2)
        else:
            resample = Image.Resampling.BOX if mild else Image.Resampling.BILINEAR
            gap = REDUCING_GAP if reducible else None
            result = result.resize(target, resample, box=scaled, reducing_gap=gap)
    elif box != (0, 0, *stored_size):
        with _pillow_bomb_check_off():  # the crop is within the image already allowed
            result = result.crop(box)
    if method is not None:
        result = result.transpose(method)
    return result


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grayscale to 8 bits by keeping the high byte, as libpng's
    strip_16 does for cv2.imread; Pillow's own convert would clip at 255 instead. 16-bit
    samples are shifted as they are (3 bytes a pixel in all, not 8-byte integers)."""
    import numpy as np
    from PIL import Image

    values = np.asarray(image)
    if values.dtype.kind != "u" or values.dtype.itemsize != 2:
        values = values.clip(0, 65535)
    return Image.fromarray((values >> 8).astype(np.uint8), "L")


def _to_16bit(image: Image.Image) -> Image.Image:
    import numpy as np
    from PIL import Image

    if image.mode == "I;16":
        return image
    return Image.fromarray(np.asarray(image).astype(np.int64).clip(0, 65535).astype(np.uint16))


# Modes Pillow converts to a few others only: go through these first.
_CONVERTIBLE_VIA = {"La": "LA", "RGBa": "RGBA", "LAB": "RGB"}


def _convert(image: Image.Image, options: ImageOptions) -> Image.Image:
    """The pixel mode that --color asks for, as far as the encoding can store it."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        if options.color == -1 and options.encoding == PNG_ENCODING:
            return _to_16bit(image)
        image, mode = _to_8bit(image), "L"
    if options.color == 1:
        target = "RGB"
    elif options.color == 0:
        target = "L"
    else:  # unchanged: keep gray as gray and alpha as alpha (PNG only), like IMREAD_UNCHANGED
        alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info
        keep_alpha = alpha and options.encoding == PNG_ENCODING
        if mode in ("1", "L", "LA", "La", "F"):
            target = "LA" if keep_alpha else "L"
        else:
            target = "RGBA" if keep_alpha else "RGB"
    if mode == target:
        return image
    if mode in _CONVERTIBLE_VIA:
        image = image.convert(_CONVERTIBLE_VIA[mode])
    return image.convert(target)


# --- encoding -------------------------------------------------------------------------------


def _encode(image: Image.Image, options: ImageOptions) -> bytes:
    """JPEG or PNG bytes with nothing but pixels: no EXIF, ICC profile or text chunks (an
    orientation tag would turn the already upright pixels again)."""
    image.info = {}
    buffer = io.BytesIO()
    if options.encoding == JPEG_ENCODING:
        image.save(buffer, format="JPEG", quality=options.quality, subsampling=JPEG_SUBSAMPLING_420)
    else:
        image.save(buffer, format="PNG", compress_level=options.quality)
    return buffer.getvalue()

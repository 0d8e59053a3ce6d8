"""imgfmt.images: decoding, --color modes, orientation, im2rec geometry, errors, determinism.

Every test image is made here with Pillow (or by hand, for the damaged ones): nothing binary is
committed. The comparison with OpenCV / im2rec itself is in test_images_interop.py.
"""

from __future__ import annotations

import io
import pickle
import resource
import struct
import sys
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import samples
from PIL import Image, ImageOps, JpegImagePlugin

from imgfmt import images
from imgfmt.errors import ImageError, UsageError
from imgfmt.images import DEFAULT_MAX_PIXELS, ImageOptions, process_image, sniff_extension

# --- helpers ---------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def psnr(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size and a.mode == b.mode
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def photo(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    return samples.make_image(samples.image_rng(seed, 99), width, height)


def quadrants(width: int = 40, height: int = 30) -> Image.Image:
    """Four flat colours: orientation and crops stay recognisable through JPEG."""
    image = Image.new("RGB", (width, height), (230, 30, 30))
    image.paste((30, 230, 30), (width // 2, 0, width, height // 2))
    image.paste((30, 30, 230), (0, height // 2, width // 2, height))
    image.paste((240, 240, 240), (width // 2, height // 2, width, height))
    return image


def with_orientation(image: Image.Image, orientation: int, **options: object) -> bytes:
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION_TAG] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes(), **options)


PNG_ARGS: dict[str, object] = {"encoding": ".png", "quality": 1}
PNG = ImageOptions(encoding=".png", quality=1)  # lossless output: pixels compare exactly


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoding": ".gif"}, "encoding must be .jpg or .png, not '.gif'"),
        ({"color": 2}, "color must be 1, 0 or -1, not 2"),
        ({"quality": 0}, "quality 0 is out of range for .jpg: the JPEG quality is 1-100"),
        ({"quality": 101}, "quality 101 is out of range for .jpg: the JPEG quality is 1-100"),
        (
            {"encoding": ".png", "quality": 95},
            "quality 95 is out of range for .png: the PNG compression level is 0-9"
            " (im2rec used 9 for any larger value: pass quality 9 for the same output)",
        ),
        (
            {"encoding": ".png", "quality": -1},
            "quality -1 is out of range for .png: the PNG compression level is 0-9",
        ),
        ({"resize": -1}, "resize must be 0 (keep size) or a positive edge, not -1"),
        ({"max_pixels": 0}, "max_pixels must be positive or None, not 0"),
    ],
)
def test_options_reject_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        ImageOptions(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_options_defaults_are_im2rec_defaults_and_pickle() -> None:
    options = ImageOptions()
    assert (options.quality, options.encoding, options.color, options.resize) == (95, ".jpg", 1, 0)
    assert options.max_pixels == DEFAULT_MAX_PIXELS >= 50_000_000  # 50 MP phone photos pass
    png = ImageOptions(encoding=".png", quality=0, resize=8, center_crop=True, color=-1)
    assert pickle.loads(pickle.dumps(png)) == png  # worker processes receive it


# --- pass-through and errors -------------------------------------------------------------------


def test_pass_through_returns_the_bytes_unchanged_without_decoding() -> None:
    jpeg = encode(photo(), "JPEG")
    assert process_image(jpeg, ImageOptions(pass_through=True)) is jpeg
    # im2rec's pass-through does no check; neither do we, beyond refusing an empty file.
    assert process_image(b"not an image", ImageOptions(pass_through=True)) == b"not an image"


@pytest.mark.parametrize("pass_through", [False, True])
def test_empty_file_is_an_error(pass_through: bool) -> None:
    with pytest.raises(ImageError) as caught:
        process_image(b"", ImageOptions(pass_through=pass_through), "a/empty.jpg")
    assert str(caught.value) == "a/empty.jpg: empty file (0 bytes)"
    assert caught.value.path == "a/empty.jpg"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"Shot on a sunny day.\n",
            "not an image (unrecognised format; starts with 'Shot on a sunny ')",
        ),
        (
            b"\xff\xd8\xff" + bytes(64),
            "corrupt JPEG: its header cannot be read",
        ),
        (b"GIF89a" + bytes(3), "truncated GIF: the file ends inside its header"),
        (
            b"\0\0\0\x18ftypheic" + bytes(16),
            "unsupported image format (HEIC): no decoder for it here",
        ),
    ],
    ids=["text", "jpeg-magic-then-zeros", "gif-header-only", "heic"],
)
def test_files_pillow_cannot_open_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError) as caught:
        process_image(data, ImageOptions(), "notes.txt")
    assert str(caught.value) == f"notes.txt: {reason}"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_an_error_not_gray_fill(fmt: str) -> None:
    data = encode(photo(), fmt)
    with pytest.raises(ImageError) as caught:
        process_image(data[: len(data) * 6 // 10], ImageOptions(), "cut.img")
    assert str(caught.value).startswith(f"cut.img: truncated {fmt}: image file is truncated")
    assert caught.value.kind == "truncated"
    assert isinstance(caught.value.__cause__, OSError)


def test_corrupt_png_pixel_data_is_caught_by_its_crc() -> None:
    data = bytearray(encode(photo(), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF  # Pillow alone would decode this to wrong pixels without a word
    with pytest.raises(ImageError) as caught:
        process_image(bytes(data), ImageOptions(), "bad.png")
    assert str(caught.value) == (
        f"bad.png: corrupt PNG: chunk 'IDAT' at byte {idat - 4} fails its CRC check"
    )
    assert caught.value.kind == "corrupt"


def test_corrupt_jpeg_header_is_an_error() -> None:
    data = bytearray(encode(photo(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = bytes(4)  # a frame of 0 x 0 pixels
    with pytest.raises(ImageError) as caught:
        process_image(bytes(data), ImageOptions(), "zero.jpg")
    assert str(caught.value) == "zero.jpg: corrupt JPEG: its header cannot be read"


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on damaged metadata
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "EXIF-JPEG"])
def test_damaged_files_raise_image_error_and_nothing_else(fmt: str) -> None:
    """Cut and byte-flipped files (a fixed random sample; 24,000 of them passed when this was
    written) either decode or raise ImageError: no other exception escapes."""
    base = photo(32, 24)
    if fmt == "EXIF-JPEG":
        data = with_orientation(base, 6)
    else:
        data = encode(base.quantize(16) if fmt == "GIF" else base, fmt)
    rng = np.random.default_rng(7)
    outcomes = set()
    for _ in range(60):
        damaged = bytearray(data)
        if rng.random() < 0.4:
            damaged = damaged[: int(rng.integers(1, len(damaged)))]
        else:
            for _ in range(int(rng.integers(1, 6))):
                damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        for options in (ImageOptions(resize=8), ImageOptions(color=-1, encoding=".png", quality=1)):
            try:
                process_image(bytes(damaged), options, "damaged")
                outcomes.add("decoded")
            except ImageError as err:
                assert str(err).startswith("damaged: ") and "\n" not in str(err)
                outcomes.add("refused")
    assert "refused" in outcomes


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (its pixel data is empty)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_any_allocation() -> None:
    bomb = png_declaring(60000, 60000)  # 10.8 GB if decoded
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        process_image(bomb, ImageOptions(), "bomb.png")
    assert time.perf_counter() - started < 1.0
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kb < 50_000  # KB on Linux
    assert str(caught.value) == (
        "bomb.png: too large: the image 60000x60000 = 3.6 gigapixels exceeds the limit of "
        "179 megapixels (raise it with --max-pixels)"
    )
    assert caught.value.kind == "too-large"


def test_max_pixels_is_per_call_and_leaves_pillow_global_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = encode(photo(100, 60), "PNG")
    with pytest.raises(ImageError) as caught:
        process_image(data, ImageOptions(max_pixels=5_999), "x.png")
    assert str(caught.value) == (
        "x.png: too large: the image 100x60 = 6,000 pixels exceeds the limit of 5,999 "
        "pixels (raise it with --max-pixels)"
    )
    # A lower Pillow limit set by the host program neither warns nor fails our calls (open,
    # crop)...
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cropped = process_image(data, ImageOptions(max_pixels=6_000, center_crop=True))
        assert process_image(data, ImageOptions(max_pixels=None))
    # ...and stays what it set.
    assert Image.MAX_IMAGE_PIXELS == 100
    monkeypatch.undo()
    assert decode(cropped).size == (60, 60)


def test_resize_to_a_huge_image_is_refused() -> None:
    needle = encode(Image.new("L", (1, 4000)), "PNG")  # resize 256 -> 256 x 1,024,000
    with pytest.raises(ImageError) as caught:
        process_image(needle, ImageOptions(resize=256, max_pixels=2_000_000), "needle.png")
    assert str(caught.value) == (
        "needle.png: too large: the resized image 256x1024000 = 262 megapixels exceeds the "
        "limit of 2 megapixels (raise it with --max-pixels)"
    )


# --- --color on every kind of source -------------------------------------------------------------


def _sources() -> dict[str, bytes]:
    base = photo()
    rgba = base.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    palette = base.quantize(colors=16)
    gray16 = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    assert gray16.mode == "I;16"
    la = base.convert("LA")
    la.putalpha(Image.linear_gradient("L").resize(base.size))
    return {
        "rgb.jpg": encode(base, "JPEG", quality=95),
        "progressive.jpg": encode(base, "JPEG", quality=95, progressive=True),
        "cmyk.jpg": encode(base.convert("CMYK"), "JPEG", quality=95),
        "gray.jpg": encode(base.convert("L"), "JPEG", quality=95),
        "rgba.png": encode(rgba, "PNG"),
        "palette.png": encode(palette, "PNG", transparency=0),
        "gray16.png": encode(gray16, "PNG"),
        "la.png": encode(la, "PNG"),
    }


SOURCES = _sources()

# Output mode per source for --color -1: what cv2.IMREAD_UNCHANGED keeps, as far as the
# encoding can hold it (JPEG has no alpha and no 16 bits).
UNCHANGED_MODES = {
    "rgb.jpg": ("RGB", "RGB"),
    "progressive.jpg": ("RGB", "RGB"),
    "cmyk.jpg": ("RGB", "RGB"),
    "gray.jpg": ("L", "L"),
    "rgba.png": ("RGBA", "RGB"),
    "palette.png": ("RGBA", "RGB"),
    "gray16.png": ("I;16", "L"),
    "la.png": ("LA", "L"),
}  # (with .png, with .jpg)


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("encoding", [".png", ".jpg"])
@pytest.mark.parametrize("color", [1, 0, -1])
def test_color_modes_on_every_kind_of_source(source: str, encoding: str, color: int) -> None:
    quality = 1 if encoding == ".png" else 90
    out = decode(
        process_image(
            SOURCES[source], ImageOptions(color=color, encoding=encoding, quality=quality)
        )
    )
    expected = {1: "RGB", 0: "L", -1: UNCHANGED_MODES[source][encoding == ".jpg"]}[color]
    assert out.mode == expected
    assert out.size == (64, 48)
    assert out.format == ("PNG" if encoding == ".png" else "JPEG")


def test_color_1_drops_alpha_without_compositing() -> None:
    source = decode(SOURCES["rgba.png"])
    out = decode(process_image(SOURCES["rgba.png"], PNG))
    assert np.array_equal(np.asarray(out), np.asarray(source)[:, :, :3])


def test_color_1_uses_the_palette_colours_ignoring_transparency() -> None:
    source = decode(SOURCES["palette.png"])
    out = decode(process_image(SOURCES["palette.png"], PNG))
    assert np.array_equal(np.asarray(out), np.asarray(source.convert("RGB")))


def test_sixteen_bit_keeps_the_high_byte_like_libpng_strip_16() -> None:
    values = np.asarray(decode(SOURCES["gray16.png"]), dtype=np.uint16)
    gray = decode(
        process_image(SOURCES["gray16.png"], ImageOptions(color=0, encoding=".png", quality=1))
    )
    assert np.array_equal(np.asarray(gray), values >> 8)  # Pillow's convert("L") would clip
    color = decode(process_image(SOURCES["gray16.png"], PNG))
    assert np.array_equal(np.asarray(color), np.repeat((values >> 8)[:, :, None], 3, axis=2))
    kept = decode(
        process_image(SOURCES["gray16.png"], ImageOptions(color=-1, encoding=".png", quality=1))
    )
    assert np.array_equal(np.asarray(kept), values)  # 16 bits survive with .png


def test_unchanged_turns_a_png_transparent_colour_into_alpha() -> None:
    gray = Image.fromarray(np.array([[0, 10], [20, 0]], dtype=np.uint8))
    data = encode(gray, "PNG", transparency=0)
    out = decode(process_image(data, ImageOptions(color=-1, encoding=".png", quality=1)))
    assert out.mode == "LA"  # as cv2.IMREAD_UNCHANGED gives a 4th channel from tRNS
    assert np.asarray(out)[:, :, 1].tolist() == [[0, 255], [255, 0]]


def test_unchanged_keeps_gray_alpha_exactly() -> None:
    source = decode(SOURCES["la.png"])
    out = decode(
        process_image(SOURCES["la.png"], ImageOptions(color=-1, encoding=".png", quality=1))
    )
    assert np.array_equal(np.asarray(out), np.asarray(source))


def test_grayscale_uses_bt601_weights() -> None:
    source = photo()
    out = decode(
        process_image(encode(source, "PNG"), ImageOptions(color=0, encoding=".png", quality=1))
    )
    assert np.array_equal(np.asarray(out), np.asarray(source.convert("L")))


def test_cmyk_jpeg_colours_survive() -> None:
    source = photo()
    out = decode(process_image(encode(source.convert("CMYK"), "JPEG", quality=95), PNG))
    assert psnr(out, source) > 35  # an inverted (Adobe) CMYK mix-up would be far below 10 dB


def test_progressive_jpeg_decodes_like_baseline() -> None:
    baseline = decode(process_image(SOURCES["rgb.jpg"], PNG))
    progressive = decode(process_image(SOURCES["progressive.jpg"], PNG))
    assert psnr(baseline, progressive) > 45


# --- orientation -------------------------------------------------------------------------------


def test_exif_orientation_6_turns_the_image_upright() -> None:
    stored = quadrants(40, 30)
    data = with_orientation(stored, 6)
    out = decode(process_image(data, PNG))
    assert out.size == (30, 40)
    expected = decode(data).transpose(Image.Transpose.ROTATE_270)  # 90° clockwise
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    # The top-left of the upright image is the stored bottom-left (blue) quadrant.
    assert np.asarray(out)[2, 2].argmax() == 2


def test_unchanged_ignores_exif_orientation_like_imread_unchanged() -> None:
    out = decode(process_image(with_orientation(quadrants(40, 30), 6), ImageOptions(color=-1)))
    assert out.size == (40, 30)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("resize", [0, 9])
def test_every_orientation_crops_like_im2rec_on_the_upright_image(
    orientation: int, resize: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our geometry runs on the stored pixels and turns the small result upright; it must be
    the same as turning first and then cropping (margins are odd: any mix-up shows)."""
    monkeypatch.setattr(images, "DRAFT_MARGIN", 1e9)  # full decode: compare geometry alone
    data = with_orientation(photo(41, 28), orientation)
    options = ImageOptions(center_crop=True, resize=resize, encoding=".png", quality=1)
    out = decode(process_image(data, options))
    upright = ImageOps.exif_transpose(decode(data))
    width, height = upright.size
    margin = (max(width, height) - min(width, height)) // 2
    box = (
        (margin, 0, margin + height, height)
        if width >= height
        else (0, margin, width, margin + width)
    )
    expected = upright.crop(box)
    if resize:
        expected = expected.resize((resize, resize), Image.Resampling.BILINEAR)
        assert out.size == (resize, resize)
        # 44.5-44.9 dB measured: our filter reads the pixels just beyond the crop edges (it
        # resizes a window of the whole image) and runs its two passes in the stored order.
        assert psnr(out, expected) > 40
    else:
        assert np.array_equal(np.asarray(out), np.asarray(expected))


# --- im2rec geometry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "center_crop", "resize", "expected"),
    [
        ((500, 375), False, 256, (341, 256)),  # landscape: height -> N, width 500*256//375
        ((375, 500), False, 256, (256, 341)),  # portrait: width -> N
        ((300, 300), False, 256, (256, 256)),  # square
        ((120, 90), False, 256, (341, 256)),  # upscaling too
        ((10, 1000), False, 16, (16, 1600)),
        ((333, 100), False, 7, (23, 7)),  # 333*7//100 = 23.31 -> 23
        ((500, 375), True, 224, (224, 224)),
        ((375, 500), True, 224, (224, 224)),
        ((500, 375), True, 0, (375, 375)),
        ((375, 501), True, 0, (375, 375)),
        ((90, 60), True, 300, (300, 300)),
    ],
)
def test_output_size_follows_im2rec_arithmetic(
    size: tuple[int, int], center_crop: bool, resize: int, expected: tuple[int, int]
) -> None:
    data = encode(photo(*size), "JPEG", quality=90)
    out = decode(process_image(data, ImageOptions(center_crop=center_crop, resize=resize)))
    assert out.size == expected


@pytest.mark.parametrize(
    ("size", "box"), [((501, 40), (230, 0, 270, 40)), ((40, 47), (0, 3, 40, 43))]
)
def test_center_crop_margin_is_floor_of_half_the_difference(
    size: tuple[int, int], box: tuple[int, int, int, int]
) -> None:
    source = photo(*size)
    out = decode(
        process_image(
            encode(source, "PNG"), ImageOptions(center_crop=True, encoding=".png", quality=1)
        )
    )
    assert np.array_equal(np.asarray(out), np.asarray(source.crop(box)))


def test_upscaling_interpolates_smoothly() -> None:
    source = photo(40, 30)
    out = decode(
        process_image(encode(source, "PNG"), ImageOptions(resize=60, encoding=".png", quality=1))
    )
    assert out.size == (80, 60)
    assert psnr(out, source.resize((80, 60), Image.Resampling.BILINEAR)) == float("inf")


# --- reduced-size JPEG decoding ------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_jpeg() -> tuple[Image.Image, bytes]:
    image = samples.make_image(samples.image_rng(3, 1), 1200, 800)
    return image, encode(image, "JPEG", quality=90)


def _loaded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record the size at which every JPEG is actually decoded."""
    sizes: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def load(self: JpegImagePlugin.JpegImageFile):  # type: ignore[no-untyped-def]
        if self.tile:  # not decoded yet (later calls return at once)
            sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    return sizes


@pytest.mark.parametrize(
    ("options", "decoded_at"),
    [
        (ImageOptions(resize=200), (300, 200)),  # 1/4: 300x200 is exactly the target
        (ImageOptions(resize=150), (300, 200)),  # 1/4 again: 1/8 would be smaller than 225x150
        (ImageOptions(resize=100, center_crop=True), (150, 100)),  # 1/8 of the frame
        (ImageOptions(resize=500), (1200, 800)),  # less than 2x smaller: full decode
        (ImageOptions(resize=64, color=0), (150, 100)),
    ],
)
def test_jpeg_is_decoded_at_reduced_size_when_shrinking(
    large_jpeg: tuple[Image.Image, bytes],
    monkeypatch: pytest.MonkeyPatch,
    options: ImageOptions,
    decoded_at: tuple[int, int],
) -> None:
    _, data = large_jpeg
    sizes = _loaded_sizes(monkeypatch)
    process_image(data, options)
    assert sizes == [decoded_at]


@pytest.mark.parametrize(
    "options",
    [
        ImageOptions(resize=200),
        ImageOptions(resize=100, center_crop=True),
        ImageOptions(resize=256, color=0),
    ],
    ids=["resize200", "crop100", "gray256"],
)
def test_reduced_decoding_stays_close_to_full_decoding(
    large_jpeg: tuple[Image.Image, bytes], monkeypatch: pytest.MonkeyPatch, options: ImageOptions
) -> None:
    """Measured 40.0 / 40.9 / 46.8 dB here (and 43-48 dB for 3000x2000 to 256 or 224)."""
    _, data = large_jpeg
    drafted = decode(process_image(data, options))
    monkeypatch.setattr(images, "DRAFT_MARGIN", 1e9)  # never small enough: full decode
    full = decode(process_image(data, options))
    assert drafted.size == full.size
    assert psnr(drafted, full) > 38


def test_reduced_decoding_of_a_rotated_jpeg(large_jpeg: tuple[Image.Image, bytes]) -> None:
    image, _ = large_jpeg
    stored = image.transpose(Image.Transpose.ROTATE_90)  # 800x1200, shown upright by tag 6
    data = with_orientation(stored, 6)
    out = decode(process_image(data, ImageOptions(resize=200, quality=95)))
    assert out.size == (300, 200)  # the upright 1200x800 frame, im2rec's arithmetic
    assert psnr(out, image.resize((300, 200), Image.Resampling.BILINEAR)) > 35


# --- encoding and determinism --------------------------------------------------------------------


def test_jpeg_output_is_420_at_the_requested_quality_with_no_metadata() -> None:
    data = with_orientation(photo(), 6)
    low, high = (process_image(data, ImageOptions(quality=q)) for q in (30, 95))
    assert len(low) < len(high)
    out = decode(high)
    assert JpegImagePlugin.get_sampling(out) == 2  # 4:2:0, as OpenCV's default
    assert "exif" not in out.info  # the pixels are upright already: no tag to turn them again


def test_png_quality_is_the_compression_level() -> None:
    data = encode(photo(), "PNG")
    fast, small = (process_image(data, ImageOptions(encoding=".png", quality=q)) for q in (0, 9))
    assert len(small) < len(fast)
    assert np.array_equal(np.asarray(decode(fast)), np.asarray(decode(small)))


def test_output_is_deterministic_across_calls_and_threads() -> None:
    inputs = [
        (data, ImageOptions(resize=32, center_crop=i % 2 == 0))
        for i, data in enumerate(SOURCES.values())
    ]
    serial = [process_image(data, options) for data, options in inputs]
    assert serial == [process_image(data, options) for data, options in inputs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda item: process_image(*item), inputs * 3))
    assert threaded == serial * 3


# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "extension"),
    [
        ("JPEG", ".jpg"),
        ("PNG", ".png"),
        ("GIF", ".gif"),
        ("BMP", ".bmp"),
        ("WEBP", ".webp"),
        ("TIFF", ".tiff"),
        ("PPM", ".ppm"),
    ],
)
def test_sniff_extension_knows_common_formats(fmt: str, extension: str) -> None:
    assert sniff_extension(encode(photo(16, 12), fmt)) == extension


@pytest.mark.parametrize("data", [b"", b"hello", b"BM", b"BMW owners' notes, 2024", b"\x00" * 32])
def test_sniff_extension_returns_none_for_unknown_bytes(data: bytes) -> None:
    assert sniff_extension(data) is None


def test_module_import_does_not_import_pillow() -> None:
    import subprocess

    code = "import sys, imgfmt.images; print('PIL' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_mild_shrink_is_supersampled_and_larger_ones_stay_bilinear() -> None:
    source = photo(120, 90)
    data = encode(source, "PNG")
    mild = decode(process_image(data, ImageOptions(resize=80, encoding=".png", quality=1)))
    # 2x2 samples on the output grid, averaged: the documented method, to the pixel...
    fine = source.resize((212, 160), Image.Resampling.NEAREST)
    assert psnr(mild, fine.reduce(2)) == float("inf")
    # ...an antialiased reduction (43.6 dB from Lanczos here; BOX 39.7, point sampling 36.3).
    assert psnr(mild, source.resize((106, 80), Image.Resampling.LANCZOS)) > 41
    large = decode(process_image(data, ImageOptions(resize=40, encoding=".png", quality=1)))
    assert psnr(large, source.resize((53, 40), Image.Resampling.BILINEAR)) == float("inf")


def test_mild_shrink_to_a_large_output_filters_with_box() -> None:
    """Beyond SUPERSAMPLE_MAX_PIXELS of output the 4x finer grid costs more than it saves."""
    source = photo(1800, 1200)
    out = decode(process_image(encode(source, "PNG"), ImageOptions(resize=1000, **PNG_ARGS)))
    assert out.size == (1500, 1000)
    assert psnr(out, source.resize((1500, 1000), Image.Resampling.BOX)) == float("inf")


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_mild_shrink_of_every_kind_of_source_keeps_its_mode(source: str) -> None:
    """Supersampling covers L, RGB, LA and RGBA (Image.reduce premultiplies alpha); a 16-bit PNG
    kept 16-bit is filtered with BOX instead."""
    options = ImageOptions(color=-1, encoding=".png", quality=1, resize=40)
    out = decode(process_image(SOURCES[source], options))
    assert (out.size, out.mode) == ((53, 40), UNCHANGED_MODES[source][0])
    upright = decode(SOURCES[source])
    upright = upright.convert(out.mode) if upright.mode in ("P", "CMYK") else upright
    if out.mode == "I;16":
        expected = upright.resize((53, 40), Image.Resampling.BOX)
    else:
        expected = upright.convert(out.mode).resize((106, 80), Image.Resampling.NEAREST).reduce(2)
    assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_supersampling_keeps_the_colour_of_transparent_pixels_out() -> None:
    """Averaged with premultiplied alpha: a fully transparent pixel's colour (green here) must
    not bleed into its opaque red neighbours, as straight averaging would make it."""
    image = Image.new("RGBA", (60, 45), (255, 0, 0, 255))
    for x in range(0, 60, 2):
        image.paste((0, 255, 0, 0), (x, 0, x + 1, 45))  # every other column: transparent green
    options = ImageOptions(color=-1, encoding=".png", quality=1, resize=40)
    out = np.asarray(decode(process_image(encode(image, "PNG"), options)))
    assert out.shape == (40, 53, 4)
    visible = out[:, :, 3] > 0
    assert visible.any()
    assert out[:, :, 1][visible].max() == 0 and out[:, :, 0][visible].min() == 255


def test_supersampling_follows_center_crop_and_exif_orientation() -> None:
    source = photo(150, 100)
    cropped = source.crop((25, 0, 125, 100))
    options = ImageOptions(center_crop=True, resize=80, **PNG_ARGS)
    out = decode(process_image(encode(source, "PNG"), options))
    fine = cropped.resize((160, 160), Image.Resampling.NEAREST)
    assert np.array_equal(np.asarray(out), np.asarray(fine.reduce(2)))
    # Stored turned by 90 degrees with EXIF orientation 6: sampled on the stored image, then
    # turned; within JPEG's loss of the upright image's own reduction.
    stored = with_orientation(source.transpose(Image.Transpose.ROTATE_90), 6)
    upright = decode(process_image(stored, ImageOptions(resize=80, **PNG_ARGS)))
    assert upright.size == (120, 80)
    expected = source.resize((240, 160), Image.Resampling.NEAREST).reduce(2)
    assert psnr(upright, expected) > 35


def test_sixteen_bit_png_kept_16_bit_shrinks_by_any_factor() -> None:
    """Image.reduce refuses 16-bit images: a large shrink filters all the way instead."""
    source = Image.fromarray(np.asarray(photo(400, 300).convert("L"), np.uint16) * 257)
    options = ImageOptions(color=-1, encoding=".png", quality=1, resize=30)
    out = decode(process_image(encode(source, "PNG"), options))
    assert (out.size, out.mode) == ((40, 30), "I;16")
    expected = source.resize((40, 30), Image.Resampling.BILINEAR)
    assert np.abs(np.asarray(out, np.int64) - np.asarray(expected, np.int64)).max() <= 257

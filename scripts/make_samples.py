"""Write a deterministic folder of realistic-looking sample images, one sub-folder per class.

    python scripts/make_samples.py OUTDIR [--classes 4] [--per-class 8] [--size 500x375]
                                          [--seed 0] [--mixed] [--jobs N]

Each image is a smooth, unevenly lit colour gradient, a few soft-edged shapes, surface texture
and sensor-like grain softened as by a lens: JPEG sizes and decode costs are close to real
photos (about 40 KB at 500x375, quality 90), unlike flat colours or pure noise. 2,000 such
images take about 30 s on 2 cores.

``--mixed`` adds the awkward files real folders contain: progressive, CMYK, grayscale and
EXIF-rotated JPEGs, RGBA / palette / 16-bit PNGs, names with spaces, non-ASCII and upper-case
extensions, and a text file that image listing must ignore.

The same arguments always give the same bytes: every image draws from its own seeded
generator, so the order and the number of worker processes do not matter. Tests import
``make_image`` and ``write_mixed_cases`` from this file by path.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES = (
    "cat", "dog", "bird", "fish", "horse", "sheep", "cow", "frog",
    "deer", "fox", "owl", "bear", "duck", "goat", "lion", "wolf",
)  # fmt: skip
JPEG_QUALITY = 90
EXIF_ORIENTATION = 0x0112  # EXIF tag number of Orientation
ROTATED_90_CW = 6  # Orientation value: the viewer must rotate the stored pixels 90° clockwise
CLASS_STREAM, MIXED_STREAM = 0, 1  # first key of image_rng: class images, --mixed files


def class_name(index: int) -> str:
    """The folder name of class ``index``: an animal, then ``class_16``, ``class_17``, ..."""
    return CLASS_NAMES[index] if index < len(CLASS_NAMES) else f"class_{index:02d}"


def _upsampled_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1], shape (height, width, 1): a coarse random grid with
    ``cells`` columns, upsampled."""
    grid = (max(2, round(cells * height / width)), max(2, cells))
    coarse = rng.integers(0, 256, size=grid, dtype=np.uint8)
    resample = Image.Resampling.BICUBIC if cells < 32 else Image.Resampling.BILINEAR
    field = Image.fromarray(coarse).resize((width, height), resample)
    return (np.asarray(field, dtype=np.float32) / 127.5 - 1.0)[:, :, None]


def make_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """One natural-looking RGB image drawn entirely from ``rng`` (same state, same pixels)."""
    # Background: a random colour gradient with uneven lighting, as a smooth upsampled grid.
    grid_w = 5
    grid_h = max(2, round(grid_w * height / width))
    corners = rng.uniform(20, 235, size=(2, 2, 3))
    fx = np.linspace(0.0, 1.0, grid_w)[None, :, None]
    fy = np.linspace(0.0, 1.0, grid_h)[:, None, None]
    gradient = (corners[0, 0] * (1 - fx) + corners[0, 1] * fx) * (1 - fy) + (
        corners[1, 0] * (1 - fx) + corners[1, 1] * fx
    ) * fy
    lighting = rng.uniform(-30, 30, size=(grid_h, grid_w, 3))
    coarse = np.clip(gradient + lighting, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)

    # Objects: soft-edged ellipses and polygons.
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.35) * width, rng.uniform(0.05, 0.35) * height
        softness = float(rng.uniform(0.8, 4.0))
        # Draw and blur only the shape's neighbourhood: blurring whole frames is the slow part.
        pad = int(3 * softness) + 2
        left, top_edge = int(cx - rx) - pad, int(cy - ry) - pad
        layer = Image.new("L", (int(2 * rx) + 2 * pad + 2, int(2 * ry) + 2 * pad + 2), 0)
        draw = ImageDraw.Draw(layer)
        lx, ly = cx - left, cy - top_edge
        if rng.random() < 0.6:
            draw.ellipse((lx - rx, ly - ry, lx + rx, ly + ry), fill=255)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 7))))
            draw.polygon([(lx + rx * np.cos(a), ly + ry * np.sin(a)) for a in angles], fill=255)
        mask = layer.filter(ImageFilter.GaussianBlur(softness))
        color = tuple(int(v) for v in rng.integers(0, 256, size=3))
        canvas.paste(color, (left, top_edge, left + mask.width, top_edge + mask.height), mask)

    # Surface texture and sensor grain over everything (luminance only), softened by the lens.
    texture = _upsampled_noise(rng, width, height, cells=max(8, width // 12))
    grain = _upsampled_noise(rng, width, height, cells=max(2, width // 2))
    luminance = float(rng.uniform(8, 18)) * texture + 14.0 * grain
    pixels = np.asarray(canvas, dtype=np.float32) + luminance
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def image_rng(seed: int, *keys: int) -> np.random.Generator:
    """The generator of one image, keyed by non-negative ints: independent of the order."""
    return np.random.default_rng([seed, *keys])


def jpeg_bytes(image: Image.Image, **save_options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY, **save_options)
    return buf.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _rotated_exif_jpeg(image: Image.Image) -> bytes:
    """A JPEG that stores ``image`` turned 90° counter-clockwise, tagged to display upright."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    return jpeg_bytes(image.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


def _rgba_png(image: Image.Image) -> bytes:
    alpha = Image.linear_gradient("L").resize(image.size)
    rgba = image.copy()
    rgba.putalpha(alpha)
    return png_bytes(rgba)


def _palette_png(image: Image.Image) -> bytes:
    palette = image.quantize(colors=64)
    palette.info["transparency"] = 0  # colour 0 transparent, as in GIF-style PNGs
    return png_bytes(palette)


def _png16(image: Image.Image) -> bytes:
    gray = np.asarray(image.convert("L"), dtype=np.uint16)
    return png_bytes(Image.fromarray(gray * 257))  # full 16-bit range, mode I;16


# The odd files of --mixed: file name -> how to encode the image generated for it.
MIXED_CASES: dict[str, Callable[[Image.Image], bytes]] = {
    "progressive.jpg": lambda im: jpeg_bytes(im, progressive=True),
    "cmyk.jpg": lambda im: jpeg_bytes(im.convert("CMYK")),
    "gray.jpg": lambda im: jpeg_bytes(im.convert("L")),
    "exif rotated.jpg": _rotated_exif_jpeg,
    "rgba.png": _rgba_png,
    "palette.png": _palette_png,
    "gray16.png": _png16,
    "été 1.jpg": jpeg_bytes,
    "photo (2).JPG": jpeg_bytes,
}
NOT_AN_IMAGE = ("notes.txt", b"Shot on a sunny day; labels checked by hand.\n")


def write_mixed_cases(folders: list[Path], width: int, height: int, seed: int) -> list[Path]:
    """Write the --mixed files round-robin over ``folders``; return the paths written."""
    written = []
    for number, (name, encode) in enumerate(MIXED_CASES.items()):
        image = make_image(image_rng(seed, MIXED_STREAM, number), width, height)
        path = folders[number % len(folders)] / name
        path.write_bytes(encode(image))
        written.append(path)
    path = folders[0] / NOT_AN_IMAGE[0]
    path.write_bytes(NOT_AN_IMAGE[1])
    written.append(path)
    return written


def _write_one(task: tuple[str, int, int, int, int, int]) -> int:
    path, seed, class_index, image_index, width, height = task
    rng = image_rng(seed, CLASS_STREAM, class_index, image_index)
    data = jpeg_bytes(make_image(rng, width, height))
    Path(path).write_bytes(data)
    return len(data)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 500x375, got {text!r}") from None
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--size", type=parse_size, default=(500, 375), help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed", action="store_true", help="add odd real-world files")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = parser.parse_args(argv)
    if args.classes < 1 or args.per_class < 0:
        parser.error("--classes must be >= 1 and --per-class >= 0")

    started = time.perf_counter()
    width, height = args.size
    folders = [args.outdir / class_name(c) for c in range(args.classes)]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    tasks = [
        (str(folder / f"{folder.name}_{i:04d}.jpg"), args.seed, c, i, width, height)
        for c, folder in enumerate(folders)
        for i in range(args.per_class)
    ]
    if args.jobs > 1 and len(tasks) > 16:
        with ProcessPoolExecutor(args.jobs) as pool:
            sizes = list(pool.map(_write_one, tasks, chunksize=8))
    else:
        sizes = [_write_one(task) for task in tasks]
    extra = write_mixed_cases(folders, width, height, args.seed) if args.mixed else []
    total = sum(sizes) + sum(p.stat().st_size for p in extra)
    print(
        f"wrote {len(tasks) + len(extra)} files ({len(extra)} odd ones) in {args.classes} "
        f"classes to {args.outdir}: {total / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

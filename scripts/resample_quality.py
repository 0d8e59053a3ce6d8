"""How close imgfmt's mild-shrink resampling (supersampling: NEAREST on a 2x grid, then 2x2
averages) is to a Lanczos reduction, beside Pillow's BOX and BILINEAR and an OpenCV-style
point-sampled bilinear (what im2rec's cv2.resize INTER_LINEAR does). Prints PSNR in dB (higher is
closer) and how far a thin bar's centre moves (geometry). The figures quoted in
imgfmt/images.py and BENCHMARKS.md come from this script.

    .venv/bin/python scripts/resample_quality.py [--images 300]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import make_samples as samples  # beside this script, which Python puts first on sys.path
import numpy as np
from PIL import Image

Size = tuple[int, int]
Method = Callable[[Image.Image, Size], Image.Image]


def supersample(image: Image.Image, size: Size) -> Image.Image:
    fine = (size[0] * 2, size[1] * 2)
    return image.resize(fine, Image.Resampling.NEAREST).reduce(2)


def point_bilinear(image: Image.Image, size: Size) -> Image.Image:
    """Bilinear interpolation at each output pixel's centre, no antialiasing (INTER_LINEAR)."""
    sx, sy = image.width / size[0], image.height / size[1]
    data = (sx, 0, (sx - 1) / 2, 0, sy, (sy - 1) / 2)
    return image.transform(size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)


METHODS: dict[str, Method] = {
    "supersample": supersample,
    "BOX": lambda image, size: image.resize(size, Image.Resampling.BOX),
    "BILINEAR": lambda image, size: image.resize(size, Image.Resampling.BILINEAR),
    "point bilinear": point_bilinear,
}


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def row(label: str, images: list[Image.Image], factor: float) -> str:
    scores: dict[str, list[float]] = {name: [] for name in METHODS}
    for image in images:
        size = (round(image.width / factor), round(image.height / factor))
        reference = image.resize(size, Image.Resampling.LANCZOS)
        for name, method in METHODS.items():
            scores[name].append(psnr(method(image, size), reference))
    cells = "  ".join(f"{name} {np.mean(values):5.1f}" for name, values in scores.items())
    return f"{label:<22} {factor:5.3f}x  {cells}"


def patterns(width: int = 500, height: int = 375) -> dict[str, Image.Image]:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    zone = 127.5 + 127.5 * np.cos(np.pi * ((x - width / 2) ** 2 + (y - height / 2) ** 2) / width)
    stripes = (x % 3 == 0) * 255.0
    noise = np.clip(128 + 60 * np.random.default_rng(1).standard_normal((height, width)), 0, 255)
    grid = np.full((height, width), 255.0)
    grid[::7, :] = 0
    grid[:, ::5] = 0
    return {
        name: Image.fromarray(values.astype(np.uint8)).convert("RGB")
        for name, values in {
            "zone plate": zone,
            "1-in-3 stripes": stripes,
            "noise": noise,
            "grid": grid,
        }.items()
    }


def bar_shift(method: Method, factor: float = 500 / 341) -> float:
    """Largest distance, in output pixels, between a 3-pixel bar's centre and where it belongs."""
    worst = 0.0
    for x0 in range(100, 140):
        values = np.zeros((375, 500), np.uint8)
        values[:, x0 : x0 + 3] = 255
        out = np.asarray(method(Image.fromarray(values).convert("RGB"), (341, 256)))
        line = out[100, :, 0].astype(np.float64)
        centre = float((line * (np.arange(341) + 0.5)).sum() / line.sum())
        worst = max(worst, abs(centre - (x0 + 1.5) / factor))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="natural-looking 500x375 images")
    args = parser.parse_args()
    photos = [
        samples.make_image(samples.image_rng(7, number), 500, 375) for number in range(args.images)
    ]
    print("PSNR against Lanczos, dB (higher is closer)")
    print(row(f"{args.images} images 500x375", photos, 500 / 341))
    for factor in (1.004, 1.1, 1.3, 1.7, 1.95):
        print(row("  same images", photos[:60], factor))
    for name, image in patterns().items():
        for factor in (1.004, 500 / 341):
            print(row(name, [image], factor))
    print("largest shift of a 3-pixel bar's centre, output pixels:")
    print("  " + "  ".join(f"{name} {bar_shift(method):.2f}" for name, method in METHODS.items()))


if __name__ == "__main__":
    main()

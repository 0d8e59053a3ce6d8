"""Benchmark of ``imgfmt.neardup``: ``near_pairs`` over a million hashes, ``dhash`` per image,
and the distances ``dhash`` gives between copies of one image and between different images
(what the default ``--near`` threshold rests on). Prints markdown tables.

    python scripts/bench_neardup.py               # about 2 minutes on 2 cores
    python scripts/bench_neardup.py --quick       # 100,000 hashes, fewer images
    python scripts/bench_neardup.py --classic     # also the classic plan (r + 1 blocks, r <= 4)

1. ``near_pairs``: N hashes in 3 splits (80/10/10%): uniformly random 64-bit values, plus
   3,000 planted near duplicates (a train hash copied into val or test with 0-8 of its bits
   flipped), plus 1% from a few "flat image" hashes (0 and near-0 values, as blank images
   give) spread over the splits. Each threshold ``r`` runs in a fresh subprocess: wall time
   of the one ``near_pairs`` call (across splits only, default limit), and the process's
   peak RSS (``ru_maxrss``; the input alone is given as a baseline). Every planted pair
   within ``r`` that falls in the returned (first ``limit``, by position) pairs is checked.
2. ``dhash`` on 500x375 and 3000x2000 JPEGs (``scripts/make_samples.py`` images): ms per
   image opened from bytes, with ``draft`` (the default) and without (image loaded first).
3. Distances: each of 200 images saved as JPEG quality 95 and 70, resized to 50%, resized to
   a 256 short side at quality 50, and as PNG: the distances between its copies; and between
   the 2,000 different images, all pairs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from make_samples import image_rng, make_image  # noqa: E402

from imgfmt import neardup  # noqa: E402

SPLITS = (0.8, 0.1, 0.1)
PLANTED = 3000
PLANTED_MAX_DISTANCE = 8
FLAT_SHARE = 0.01
THRESHOLDS = (2, 4, 6, 8)
CROPS = (0.02, 0.05)
SEED = 0
#: Runs of each near_pairs call: the machine's timings vary (a shared VM), the best is shown.
REPEATS = 3


def make_hashes(count: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The benchmark's hashes, their splits, and the planted pairs ``[i, j, distance]``."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=count, dtype=np.uint64, endpoint=False)
    bounds = np.cumsum([round(share * count) for share in SPLITS])
    groups = np.searchsorted(bounds, np.arange(count), side="right")
    train = int(bounds[0])
    # Flat images: 0 and seven values a bit or two away from it, anywhere.
    flat_values = np.zeros(8, np.uint64)
    for index in range(1, 8):
        for bit in rng.choice(64, size=1 + index % 2, replace=False):
            flat_values[index] |= np.uint64(1) << np.uint64(bit)
    flat = rng.choice(count, size=round(FLAT_SHARE * count), replace=False)
    hashes[flat] = flat_values[rng.integers(0, len(flat_values), size=len(flat))]
    # Planted: a train image's hash copied into val or test, 0..8 of its bits flipped.
    taken = set(flat.tolist())
    sources = [i for i in rng.choice(train, size=2 * PLANTED, replace=False) if i not in taken]
    copies = rng.choice(np.arange(train, count), 2 * PLANTED, replace=False).tolist()
    copies = [i for i in copies if i not in taken]
    planted = []
    for source, copy in zip(sources[:PLANTED], copies[:PLANTED]):
        flips = int(rng.integers(0, PLANTED_MAX_DISTANCE + 1))
        value = int(hashes[source])
        for bit in rng.choice(64, size=flips, replace=False):
            value ^= 1 << int(bit)
        hashes[copy] = np.uint64(value)
        planted.append((source, copy, flips))
    return hashes, groups, np.array(planted, np.int64)


def child(count: int, max_distance: int, classic: bool) -> dict[str, Any]:
    """One ``near_pairs`` run, in this (fresh) process."""
    hashes, groups, planted = make_hashes(count)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if classic:  # the classic plan, one table per block of r + 1: for comparison only
        blocks = neardup._blocks(max_distance + 1)
        neardup._plan = lambda r, n: neardup._Plan(blocks, 1)  # type: ignore[assignment]
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = neardup.near_pairs(hashes, groups, max_distance)
        timings.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    returned = {(int(i), int(j)): int(d) for i, j, d in result.pairs}
    last = max((i for i, _ in returned), default=-1)
    expected = [(min(i, j), max(i, j), d) for i, j, d in planted.tolist() if d <= max_distance]
    checked = [p for p in expected if p[0] <= last or not result.truncated]
    missing = sum(returned.get((i, j)) != d for i, j, d in checked)
    return {
        "n": count,
        "r": max_distance,
        "plan": "classic" if classic else "chosen",
        "blocks": result.blocks,
        "tables": result.tables,
        "candidates": result.candidates,
        "total": result.total,
        "returned": len(result.pairs),
        "seconds": min(timings),
        "slowest": max(timings),
        "peak_mb": peak,
        "baseline_mb": baseline,
        "planted_checked": len(checked),
        "planted_missing": missing,
    }


def run_child(count: int, max_distance: int, classic: bool) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", str(count), str(max_distance)]
    proc = subprocess.run(
        [*args, *(["--classic"] if classic else [])], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def bench_pairs(count: int, classic: bool) -> None:
    print(
        f"## near_pairs: {count:,} hashes, splits 80/10/10%, across splits, limit "
        f"{neardup.DEFAULT_LIMIT:,}\n"
    )
    print(
        "| N | r | plan | blocks | tables | candidates checked | pairs found | returned "
        "| seconds (best, worst of 3) | peak RSS MB | planted ok |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    baseline = 0.0
    for max_distance in THRESHOLDS:
        runs = [False, True] if classic and max_distance <= 4 else [False]
        for plan in runs:
            row = run_child(count, max_distance, plan)
            baseline = row["baseline_mb"]
            cells = [
                f"{row['n']:,}",
                row["r"],
                row["plan"],
                row["blocks"],
                row["tables"],
                f"{row['candidates']:,}",
                f"{row['total']:,}",
                f"{row['returned']:,}",
                f"{row['seconds']:.2f}, {row['slowest']:.2f}",
                f"{row['peak_mb']:.0f}",
                f"{row['planted_checked'] - row['planted_missing']}/{row['planted_checked']}",
            ]
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)
    print(f"\nBaseline RSS (Python, numpy, the input): {baseline:.0f} MB.\n")


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _hash(data: bytes, draft: bool = True) -> int:
    with Image.open(io.BytesIO(data)) as image:
        if not draft:
            image.load()  # decoded at full size: draft() no longer applies
        return neardup.dhash(image)


def bench_dhash(images: int) -> None:
    print("## dhash per image (opened from bytes, best of 3)\n")
    print("| image | ms with draft | ms without |")
    print("|---|---:|---:|")
    for width, height, count in ((500, 375, images), (3000, 2000, max(4, images // 20))):
        datas = [_jpeg(make_image(image_rng(SEED, 9, i), width, height)) for i in range(count)]
        timings = []
        for draft in (True, False):
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                for data in datas:
                    _hash(data, draft)
                best = min(best, (time.perf_counter() - start) / count * 1000)
            timings.append(best)
        print(f"| {width}x{height} JPEG q90 | {timings[0]:.2f} | {timings[1]:.2f} |")
    print()


def _copies(image: Image.Image) -> dict[str, bytes]:
    """One image as a dataset might hold it twice: re-encoded or resized."""
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    short = 256 / min(image.size)
    small = image.resize((round(image.width * short), round(image.height * short)))
    return {
        "q95": _jpeg(image, 95),
        "q70": _jpeg(image, 70),
        "half": _jpeg(half, 90),
        "256 q50": _jpeg(small, 50),
        "png": _png(image),
    }


def _cropped(image: Image.Image, share: float) -> bytes:
    """``image`` with ``share`` of its width and height cut off, half on each side."""
    dx, dy = round(image.width * share / 2), round(image.height * share / 2)
    return _jpeg(image.crop((dx, dy, image.width - dx, image.height - dy)), 90)


def bench_distances(sources: int, others: int) -> None:
    same: dict[tuple[str, str], list[int]] = {}
    for index in range(sources):
        copies = _copies(make_image(image_rng(SEED, 7, index), 500, 375))
        hashes = {name: _hash(data) for name, data in copies.items()}
        for a, b in combinations(hashes, 2):
            same.setdefault((a, b), []).append(neardup.hamming(hashes[a], hashes[b]))
        image = make_image(image_rng(SEED, 7, index), 500, 375)
        for share in CROPS:
            cropped = _hash(_cropped(image, share))
            same.setdefault((f"{share:.0%} crop", "q95"), []).append(
                neardup.hamming(cropped, hashes["q95"])
            )
    images = [make_image(image_rng(SEED, 8, i), 500, 375) for i in range(others)]
    distinct = np.array([_hash(_jpeg(image)) for image in images], dtype=np.uint64)
    upper = np.triu_indices(len(distinct), 1)
    different = neardup.popcount(distinct[:, None] ^ distinct[None, :])[upper].astype(np.int64)

    print("## dhash distances (500x375 photo-like images)\n")
    print(f"Copies of one image ({sources} images; JPEG q95, q70, 50% resize at q90, 256 short")
    print("side at q50, PNG; crops for comparison): how many pairs are each distance apart.\n")
    print("| copies | " + " | ".join(str(d) for d in range(9)) + " | mean | max |")
    print("|---|" + "---:|" * 11)
    copies = [d for (a, _), distances in same.items() if "crop" not in a for d in distances]
    for label, distances in [
        *((f"{a} vs {b}", distances) for (a, b), distances in same.items()),
        ("**all but crops**", copies),
    ]:
        counts = np.bincount(distances, minlength=9)[:9]
        cells = [label, *counts, f"{np.mean(distances):.2f}", max(distances)]
        print("| " + " | ".join(map(str, cells)) + " |")
    print(f"\nDifferent images ({others:,}, {len(different):,} pairs):\n")
    print("| pairs within | 4 | 5 | 6 | 8 | 10 | 12 | min | 0.1th pct | 1st pct | median |")
    print("|---|" + "---:|" * 10)
    within = [f"{int((different <= d).sum()):,}" for d in (4, 5, 6, 8, 10, 12)]
    percentiles = [f"{p:.0f}" for p in np.percentile(different, [0.1, 1, 50])]
    print("| pairs | " + " | ".join([*within, str(different.min()), *percentiles]) + " |\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 hashes, fewer images")
    parser.add_argument("--classic", action="store_true", help="also time r + 1 blocks")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, classic=args.classic)))
        return 0
    bench_pairs(100_000 if args.quick else 1_000_000, args.classic)
    bench_dhash(50 if args.quick else 200)
    bench_distances(50 if args.quick else 200, 500 if args.quick else 2000)
    return 0


if __name__ == "__main__":
    sys.exit(main())

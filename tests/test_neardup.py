"""imgfmt.neardup: near_pairs against brute force (random, planted, degenerate, property-based,
every index plan), its limit, and dhash's stability, bit order, orientation and modes.

Every image is made here (scripts/make_samples.py's photo-like images, numpy noise, shapes):
nothing binary is committed.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from helpers import samples
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from imgfmt import neardup
from imgfmt.errors import UsageError
from imgfmt.neardup import dhash, hamming, near_pairs, popcount

# --- helpers ---------------------------------------------------------------------------------


def brute_force(
    hashes: np.ndarray, groups: np.ndarray, max_distance: int, across: bool = True
) -> np.ndarray:
    """Every pair, compared (bits counted by np.unpackbits): what near_pairs must give."""
    hashes = np.asarray(hashes).astype(np.uint64)
    groups = np.asarray(groups)
    found = [np.zeros((0, 3), np.int64)]
    for i in range(len(hashes) - 1):
        differ = (hashes[i] ^ hashes[i + 1 :]).view(np.uint8).reshape(-1, 8)
        distance = np.unpackbits(differ, axis=1).sum(axis=1)
        keep = distance <= max_distance
        if across:
            keep &= groups[i + 1 :] != groups[i]
        j = np.flatnonzero(keep) + i + 1
        found.append(np.stack([np.full(len(j), i), j, distance[keep]], axis=1))
    return np.concatenate(found).astype(np.int64)


def planted(count: int, max_distance: int, seed: int) -> np.ndarray:
    """Hashes in clusters: copies of a few bases with 0 to max_distance + 2 bits flipped, some
    zeros and exact copies, and bits that agree far more often than at random (as real
    hashes' do), so that buckets hold many hashes and pairs sit at the edge of the distance."""
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 2**64, size=max(1, count // 6), dtype=np.uint64)
    bases &= np.uint64(0xFFFF_F0F0_00FF_FFFF)  # low-entropy bits: large buckets
    hashes = bases[rng.integers(0, len(bases), size=count)]
    for index in range(count):
        for bit in rng.choice(64, size=int(rng.integers(0, max_distance + 3)), replace=False):
            hashes[index] ^= np.uint64(1) << np.uint64(bit)
    hashes[rng.random(count) < 0.05] = 0
    copies = rng.random(count) < 0.1
    hashes[copies] = hashes[rng.integers(0, count, size=int(copies.sum()))]
    return hashes


@contextmanager
def forced_plan(agree: int | None) -> Iterator[None]:
    """near_pairs with the index cut into max_distance + agree blocks, agree of them to agree
    (0: all pairs compared); None: the plan near_pairs chooses."""
    if agree is None:
        yield
        return

    def plan(max_distance: int, distinct: np.ndarray) -> neardup._Plan:
        if max_distance == 0 or agree == 0:
            return neardup._Plan((), 0 if max_distance else 1)
        return neardup._Plan(neardup._blocks(max_distance + agree), agree)

    with mock.patch.object(neardup, "_plan", plan):
        yield


LAYOUTS = {
    "one group": lambda n: np.zeros(n, np.int64),
    "two groups": lambda n: np.arange(n) % 2,
    "splits 80/10/10": lambda n: np.searchsorted([0.8 * n, 0.9 * n], np.arange(n), side="right"),
    "each its own": lambda n: np.arange(n),
}

# --- near_pairs ------------------------------------------------------------------------------


@pytest.mark.parametrize("max_distance", [0, 1, 3, 4, 7, 10])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("across", [True, False])
def test_near_pairs_equals_brute_force(max_distance: int, layout: str, across: bool) -> None:
    hashes = planted(300, max_distance, seed=max_distance)
    groups = LAYOUTS[layout](len(hashes))
    expected = brute_force(hashes, groups, max_distance, across)
    assert len(expected) or (across and layout == "one group")  # there are pairs to find
    for agree in (None, 0, 1, 2, 3):
        with forced_plan(agree):
            found = near_pairs(hashes, groups, max_distance, across_groups_only=across)
        np.testing.assert_array_equal(found.pairs, expected, err_msg=f"plan agree={agree}")
        assert found.total == len(expected) and not found.truncated


def test_near_pairs_uniform_random_with_planted_pairs() -> None:
    rng = np.random.default_rng(7)
    hashes = rng.integers(0, 2**64, size=3000, dtype=np.uint64)
    for index in range(0, 3000, 10):  # 300 planted copies at 0-6 bits
        hashes[index + 1] = hashes[index]
        for bit in rng.choice(64, size=index % 7, replace=False):
            hashes[index + 1] ^= np.uint64(1) << np.uint64(bit)
    groups = rng.integers(0, 3, size=3000)
    for max_distance in (2, 4, 6):
        found = near_pairs(hashes, groups, max_distance)
        np.testing.assert_array_equal(found.pairs, brute_force(hashes, groups, max_distance))
        assert found.tables >= 1  # an index, not every pair compared
        assert found.candidates < 3000 * 2999 // 20


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3), st.lists(st.integers(0, 63), max_size=6), st.integers(0, 2)),
        max_size=40,
    ),
    bases=st.lists(st.integers(0, 2**64 - 1), min_size=4, max_size=4),
    max_distance=st.integers(0, 16),
    across=st.booleans(),
    agree=st.sampled_from([None, 0, 1, 2, 3]),
    limit=st.integers(0, 50),
)
def test_near_pairs_property(
    data: list[tuple[int, list[int], int]],
    bases: list[int],
    max_distance: int,
    across: bool,
    agree: int | None,
    limit: int,
) -> None:
    """Hashes are a few bases with a few bits flipped (so that pairs are near), in 3 groups."""
    hashes = np.array(
        [bases[base] ^ sum(1 << bit for bit in set(flips)) for base, flips, _ in data], np.uint64
    )
    groups = np.array([group for _, _, group in data], np.int64)
    expected = brute_force(hashes, groups, max_distance, across)
    with forced_plan(agree):
        found = near_pairs(hashes, groups, max_distance, across_groups_only=across, limit=limit)
    np.testing.assert_array_equal(found.pairs, expected[:limit])
    assert found.total == len(expected)
    assert found.truncated == (len(expected) > limit)


def test_empty_and_single() -> None:
    for count in (0, 1):
        found = near_pairs(np.zeros(count, np.uint64), np.zeros(count, np.int64), 4)
        assert found.pairs.shape == (0, 3) and found.pairs.dtype == np.int64
        assert found.total == 0 and not found.truncated


def test_identical_hashes_across_two_groups() -> None:
    hashes = np.full(500, 0xDEADBEEF, np.uint64)
    groups = np.arange(500) % 2
    found = near_pairs(hashes, groups, 3)
    assert found.total == 250 * 250
    np.testing.assert_array_equal(found.pairs, brute_force(hashes, groups, 3))
    found = near_pairs(hashes, groups, 0, across_groups_only=False)
    assert found.total == 500 * 499 // 2 == len(found.pairs)
    assert found.candidates == 0  # one distinct hash: nothing for the index to compare


def test_many_zeros_among_others() -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64, size=400, dtype=np.uint64)
    hashes[rng.random(400) < 0.5] = 0
    hashes[:5] = [1, 3, 1 << 63, 7, 0xF]  # near 0: 1, 2, 1, 3 and 4 bits
    groups = rng.integers(0, 2, size=400)
    for max_distance, across in itertools.product((0, 1, 2, 4), (True, False)):
        found = near_pairs(hashes, groups, max_distance, across_groups_only=across)
        np.testing.assert_array_equal(
            found.pairs, brute_force(hashes, groups, max_distance, across)
        )


def test_many_copies_cost_the_pairs_returned() -> None:
    """100,000 copies of one hash: 2.5e9 pairs across two groups, none within one."""
    count = 100_000
    hashes = np.zeros(count, np.uint64)
    hashes[-3:] = [1, 2, 0xFFFF]  # two near ones, one far
    groups = np.arange(count) % 2
    start = time.perf_counter()
    found = near_pairs(hashes, groups, 2, limit=1000)
    assert time.perf_counter() - start < 5
    assert found.truncated and len(found.pairs) == 1000
    # Every pair of positions of different parity, but the far hash's: 0 pairs with 1, 3, 5...
    partners = [j for j in range(1, count - 1, 2)][:1000]
    np.testing.assert_array_equal(found.pairs[:, 0], 0)
    np.testing.assert_array_equal(found.pairs[:, 1], partners)
    # Zeros at even and odd positions pair up; 1 (odd) with the even zeros and with 2 (even,
    # 2 bits away), 2 with the odd zeros.
    evens, odds = len(range(0, count - 3, 2)), len(range(1, count - 3, 2))
    assert found.total == evens * odds + evens + 1 + odds
    found = near_pairs(hashes, np.zeros(count, np.int64), 2)  # one group: nothing across
    assert found.total == 0 and len(found.pairs) == 0


def test_limit() -> None:
    hashes = planted(200, 4, seed=11)
    groups = np.arange(200) % 3
    expected = brute_force(hashes, groups, 4)
    assert len(expected) > 20
    for limit in (0, 1, 7, len(expected) - 1, len(expected), len(expected) + 5):
        found = near_pairs(hashes, groups, 4, limit=limit)
        np.testing.assert_array_equal(found.pairs, expected[:limit])
        assert found.total == len(expected)
        assert found.truncated == (limit < len(expected))


def test_int64_hashes_are_the_same_bits() -> None:
    hashes = planted(100, 3, seed=5)
    groups = np.arange(100) % 2
    unsigned = near_pairs(hashes, groups, 3)
    signed = near_pairs(hashes.view(np.int64), groups, 3)
    np.testing.assert_array_equal(unsigned.pairs, signed.pairs)
    smaller = near_pairs(np.arange(10, dtype=np.uint8), np.arange(10) % 2, 1)
    np.testing.assert_array_equal(smaller.pairs, brute_force(np.arange(10), np.arange(10) % 2, 1))


@pytest.mark.parametrize(
    ("hashes", "groups", "max_distance", "limit", "message"),
    [
        (np.zeros(3, np.uint64), np.zeros(3), 17, 10, "max_distance must be 0-16 bits of 64"),
        (np.zeros(3, np.uint64), np.zeros(3), -1, 10, "max_distance must be 0-16 bits of 64"),
        (np.zeros(3, np.uint64), np.zeros(3), 2.0, 10, "max_distance must be a whole number"),
        (np.zeros(3, np.uint64), np.zeros(3), True, 10, "max_distance must be a whole number"),
        (np.zeros(3, np.uint64), np.zeros(3), 2, -1, "limit must be a count of pairs"),
        (np.zeros(3, np.uint64), np.zeros(4), 2, 10, "as long as each other"),
        (np.zeros((3, 2), np.uint64), np.zeros(3), 2, 10, "must be 1-D"),
        (np.zeros(3, np.float64), np.zeros(3), 2, 10, "hashes must be uint64"),
        (np.zeros(3, np.uint64), np.array(["a", "b", "c"]), 2, 10, "groups must be integers"),
    ],
)
def test_bad_arguments(
    hashes: np.ndarray, groups: np.ndarray, max_distance: int, limit: int, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        near_pairs(hashes, groups, max_distance, limit=limit)


def test_popcount_and_hamming(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2**64, size=(50, 3), dtype=np.uint64)
    values[0, 0], values[0, 1] = 0, np.uint64(2**64 - 1)
    expected = np.vectorize(lambda v: bin(int(v)).count("1"))(values)
    np.testing.assert_array_equal(popcount(values), expected)
    np.testing.assert_array_equal(neardup._popcount_by_bytes(values), expected)
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(-1, 0) == 64  # int64 storage of all ones
    assert hamming(np.uint64(5), 6) == 2
    # numpy before 2.0 has no bitwise_count: the byte table gives the same pairs.
    hashes, groups = planted(200, 4, seed=2), np.arange(200) % 2
    with_count = near_pairs(hashes, groups, 4)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    np.testing.assert_array_equal(popcount(values), expected)
    np.testing.assert_array_equal(near_pairs(hashes, groups, 4).pairs, with_count.pairs)


def test_plans_are_exact_and_chosen_by_cost() -> None:
    rng = np.random.default_rng(0)
    many = np.unique(rng.integers(0, 2**64, size=200_000, dtype=np.uint64))
    assert neardup._plan(0, many).tables == 0
    assert neardup._plan(4, many[:10]).agree == 0  # a handful: compare every pair
    big = neardup._plan(4, many)
    assert big.agree >= 1 and len(big.blocks) == 4 + big.agree
    # Every block of the 64 bits once, in order.
    for count in range(1, 65):
        blocks = neardup._blocks(count)
        assert [shift for shift, _ in blocks] == list(
            itertools.accumulate([0] + [w for _, w in blocks[:-1]])
        )
        assert sum(width for _, width in blocks) == 64


# --- dhash -----------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def hash_of(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return dhash(image)


def photo(seed: int, width: int = 500, height: int = 375) -> Image.Image:
    return samples.make_image(samples.image_rng(1234, seed), width, height)


def copies(image: Image.Image) -> dict[str, bytes]:
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    return {
        "jpeg q95": encode(image, "JPEG", quality=95),
        "jpeg q70": encode(image, "JPEG", quality=70),
        "50% jpeg": encode(half, "JPEG", quality=90),
        "png": encode(image, "PNG"),
    }


@pytest.mark.parametrize("seed", range(6))
def test_dhash_copies_of_one_image_are_close(seed: int) -> None:
    hashes = {name: hash_of(data) for name, data in copies(photo(seed)).items()}
    for (a, ha), (b, hb) in itertools.combinations(hashes.items(), 2):
        assert hamming(ha, hb) <= neardup.DEFAULT_MAX_DISTANCE, f"{a} vs {b}: {hamming(ha, hb)}"


def different_images() -> list[Image.Image]:
    rng = np.random.default_rng(99)
    noise = Image.fromarray(rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8))
    gradient = Image.linear_gradient("L").rotate(90).resize((400, 300)).convert("RGB")
    shapes = Image.new("RGB", (400, 300), (30, 60, 90))
    draw = ImageDraw.Draw(shapes)
    draw.ellipse((40, 40, 200, 220), fill=(240, 200, 40))
    draw.rectangle((230, 90, 380, 280), fill=(200, 30, 30))
    return [*(photo(seed) for seed in range(10, 16)), noise, gradient, shapes]


def test_dhash_different_images_are_far() -> None:
    hashes = [hash_of(encode(image, "JPEG", quality=90)) for image in different_images()]
    for (a, ha), (b, hb) in itertools.combinations(enumerate(hashes), 2):
        assert hamming(ha, hb) > 10, f"images {a} and {b}: {hamming(ha, hb)} bits"


def test_dhash_bit_order() -> None:
    """Bit 8 * row + col: cell (row, col) darker than the cell to its right."""
    image = Image.new("L", (90, 80), 0)
    image.paste(255, (50, 20, 60, 30))  # cell (row 2, col 5), cells being 10x10 pixels
    assert dhash(image) == 1 << (8 * 2 + 4)  # only cell (2, 4) is darker than its right
    assert dhash(Image.new("L", (90, 80), 128)) == 0  # flat: no cell darker than the next
    left_to_right = Image.linear_gradient("L").rotate(90)  # black on the left
    assert dhash(left_to_right.resize((300, 200))) == 2**64 - 1
    assert dhash(Image.linear_gradient("L")) == 0  # top to bottom: no left-right difference


# EXIF orientation -> the Pillow transpose that shows the stored pixels upright.
SHOWN = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
STORED = {**SHOWN, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}  # inverses


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_dhash_applies_exif_orientation(orientation: int, fmt: str) -> None:
    """A picture stored turned, with the tag that shows it upright, hashes as the upright
    copy; the turned pixels without the tag are another image."""
    upright = photo(3, 400, 300)
    stored = upright if orientation == 1 else upright.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[neardup.EXIF_ORIENTATION_TAG] = orientation
    options = {"quality": 95} if fmt == "JPEG" else {}
    tagged = hash_of(encode(stored, fmt, exif=exif.tobytes(), **options))
    reference = hash_of(encode(upright, fmt, **options))
    assert hamming(tagged, reference) <= (0 if fmt == "PNG" else 2)
    if orientation != 1:
        assert hamming(hash_of(encode(stored, fmt, **options)), reference) > 10


def test_dhash_modes() -> None:
    image = photo(4, 300, 200)
    reference = hash_of(encode(image, "PNG"))
    gray = image.convert("L")
    rgba = image.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    palette = image.quantize(colors=64)
    palette.info["transparency"] = 0
    sixteen = Image.fromarray(np.asarray(gray, np.uint16) * 257)  # I;16, full range
    variants = {
        "L": gray,
        "RGBA": rgba,  # alpha ignored: the stored colours are hashed
        "P": palette,
        "I;16": sixteen,
        "I": sixteen.convert("I"),
        "CMYK": image.convert("CMYK"),
        "LA": rgba.convert("LA"),
        "La": rgba.convert("La"),
        "RGBa": rgba.convert("RGBa"),
        "PA": palette.convert("PA"),
        "1": gray.convert("1"),
        "F": gray.convert("F"),
        "YCbCr": image.convert("YCbCr"),
        "HSV": image.convert("HSV"),
        "LAB": Image.merge("LAB", (gray, gray, gray)),
    }
    for mode, variant in variants.items():
        assert variant.mode == mode
        value = dhash(variant)
        assert 0 <= value < 2**64
        assert dhash(variant) == value, mode  # deterministic
        if mode in ("L", "RGBA", "I;16", "I", "CMYK", "LA", "RGBa", "F", "YCbCr", "LAB"):
            assert hamming(value, reference) <= 2, f"{mode}: {hamming(value, reference)} bits"
    png16 = encode(sixteen, "PNG")
    assert Image.open(io.BytesIO(png16)).mode == "I;16"
    assert hamming(hash_of(png16), reference) <= 2
    cmyk_jpeg = encode(image.convert("CMYK"), "JPEG", quality=95)
    assert hamming(hash_of(cmyk_jpeg), reference) <= 4


def test_dhash_is_deterministic_and_draft_changes_little() -> None:
    for seed in range(4):
        data = encode(photo(seed + 20), "JPEG", quality=90)
        first = hash_of(data)
        assert hash_of(data) == first
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decoded at full size: no draft
            assert hamming(dhash(image), first) <= 2


def test_dhash_tiny_and_large_images() -> None:
    for size in ((1, 1), (3, 2), (9, 8), (2, 300)):
        assert 0 <= dhash(photo(5, *size)) < 2**64
    big = photo(6, 1600, 1200)  # reduced by 22 before the cells are averaged
    small = big.resize((400, 300), Image.Resampling.LANCZOS)
    assert hamming(hash_of(encode(big, "PNG")), hash_of(encode(small, "JPEG", quality=80))) <= 4

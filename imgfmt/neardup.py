"""Near-duplicate images: a 64-bit difference hash per image, and every pair of hashes within
a Hamming distance, found without comparing all pairs. What ``imgfmt stats`` uses to report
leakage between splits: the same photo, resized or re-encoded, in train and in test.

The hash (:func:`dhash`)
    The image as shown (EXIF orientation applied), in grayscale, is cut into a grid of 9x8
    equal cells; bit ``8 * row + col`` (row 0 at the top, col 0 at the left) of the hash is
    set when the mean brightness of cell ``(row, col)`` is lower than that of its right-hand
    neighbour ``(row, col + 1)``. Cell means are exact area averages, whatever the size the
    image was decoded at, so a JPEG that libjpeg decodes at 1/4 or 1/8 scale (``draft``) and
    the same picture decoded at full size, resized or saved as PNG hash alike (see
    ``tests/test_neardup.py`` and ``scripts/bench_neardup.py`` for the distances measured).

The search (:func:`near_pairs`)
    Multi-index hashing with the pigeonhole principle: the 64 bits are cut into ``k`` blocks;
    two hashes at most ``r`` bits apart differ in at most ``r`` blocks, so they agree exactly
    on at least ``q = k - r`` of them. Each *table* is one combination of ``q`` blocks; the
    hashes are sorted by their bits in those blocks and only hashes that agree there (one
    bucket) are compared, by the popcount of their XOR. A pair within ``r`` is found in every
    table whose blocks it agrees on, and kept only in the first of them (its first ``q``
    agreeing blocks): each pair once, with no set of pairs to deduplicate.

    ``q = 1``, ``k = r + 1`` is the classic scheme, one table per block; but with a million
    hashes its blocks are too narrow from ``r = 4`` on: there it compares 360 million
    candidates where ``q = 2`` (15 tables of 2 of 6 blocks) compares 3 million, and at
    ``r = 8`` some 33 billion (estimated) against half a billion for ``q = 3``
    (``scripts/bench_neardup.py``). The plan (``k`` and ``q``) is the one of least expected
    time: sorting per table, plus the candidates, counted on a sample of the hashes
    themselves, since real hashes share bits far more often than random ones. ``q = 0`` (one
    table, every pair a candidate) is the brute force that a few hundred hashes get.

    Identical hashes are collapsed first: the search runs over distinct hashes, and the pairs
    of positions are then generated per (hash, group) *cell*, whole blocks of pairs at a time,
    so 100,000 copies of one hash (all-black images) cost time in proportion to the pairs
    returned, and none when they are all in one group and only pairs across groups are asked.

Guarantees: the result is exact (every pair within the distance, no other, each once, sorted)
and deterministic. The work is about ``tables * n`` for the sort plus the candidates compared,
``C(n, 2)`` times the chance that two hashes share a table's bits: small for varied hashes,
large when many distinct hashes are nearly alike (a dataset of near-blank images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from imgfmt.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image

HASH_BITS = 64
_HASH_MASK = (1 << HASH_BITS) - 1
#: The grid of cells the hash compares: 8 left-right comparisons in each of 8 rows.
GRID_COLUMNS, GRID_ROWS = 9, 8

#: JPEGs are decoded at the smallest of libjpeg's 1/2, 1/4 and 1/8 scales that keeps at least
#: this many pixels per cell along each axis; larger images are first reduced (block means)
#: to about as many. Measured on bench-data's 200 500x375 photo-like images re-encoded and
#: resized: 8 pixels per cell (1/4 scale for them) gives the distances of full decoding (mean
#: 0.26 bits between copies of one image, at most 3) at 0.68 ms an image against 1.34 for full
#: decoding; 1/8 scale (4-7 pixels per cell) took 0.60 ms but gave 0.78 bits, at most 4. A
#: 3000x2000 JPEG is decoded at 1/8 either way: 9.9 ms against 33 (scripts/bench_neardup.py).
PIXELS_PER_CELL = 8
_DRAFT_SIZE = (GRID_COLUMNS * PIXELS_PER_CELL,) * 2  # square: the grid may lie either way

#: Cell means closer than this (in grey levels) count as equal, so that a flat image hashes to
#: 0 whatever the rounding of the float sums (about 1e-12 levels). One grey level in one pixel
#: moves the mean of a cell of a 12-megapixel image by 6e-6.
_TIE_LEVELS = 1e-6

#: The ``max_distance`` that ``imgfmt stats`` uses unless told otherwise. Measured with
#: scripts/bench_neardup.py on 500x375 photo-like images: of 2,000 pairs of copies of one
#: image (JPEG quality 95 and 70, resized to 50% or to a 256 short side at quality 50, PNG),
#: 1,429 hash alike, 12 differ by 3 bits and 1 by 4 (none more); of 2 million pairs of
#: different images none is within 4 bits, 2 within 5 and 32 within 8. Light crops are not
#: what the hash is for, but 96% of 2% crops are within 4 bits too (68% of 5% crops).
DEFAULT_MAX_DISTANCE = 4
#: The largest ``max_distance``, a quarter of the bits: 0.1% of those pairs of different
#: images are within 14 bits already and 1% within 19, so farther matches are mostly chance.
MAX_DISTANCE = 16
#: How many pairs ``near_pairs`` returns at most unless told otherwise: 24 MB of pairs
#: (about 120 MB while they are made).
DEFAULT_LIMIT = 1_000_000


# --- the hash -------------------------------------------------------------------------------

EXIF_ORIENTATION_TAG = 0x0112
#: Orientations whose upright image has its width and height swapped.
_SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
#: Modes Pillow turns into grayscale only by way of another.
_GRAY_VIA = {"La": "LA", "RGBa": "RGBA"}


def dhash(image: Image.Image) -> int:
    """The 64-bit difference hash of ``image`` (opened, loaded or not), an int in [0, 2**64).

    Bit ``8 * row + col`` (``1 << (8 * row + col)``) is set when cell ``(row, col)`` of a 9x8
    grid over the image is darker than cell ``(row, col + 1)``; rows run top to bottom.

    - The image is hashed as shown: its EXIF orientation is applied (as ``imgfmt pack`` does),
      so a photo stored sideways with an orientation tag and its upright copy hash the same;
      an image rotated in its pixels, with no tag, is another image to the hash.
    - Grayscale is the luma ``imgfmt pack --color 0`` would give: alpha is ignored (the stored
      colours count, as ``cv2.imread`` and Pillow's ``convert("RGB")`` see them, so a PNG and
      its JPEG made that way match), a palette by its colours, CMYK by Pillow's conversion,
      16-bit samples by their high byte, LAB by its lightness.
    - A JPEG not yet loaded is decoded at reduced size (``draft``): ``image`` is loaded, in
      grayscale and maybe smaller, afterwards; do not reuse it for its full-size pixels.

    Deterministic. Decoding errors are Pillow's: call it where they are sorted (inside
    ``imgfmt.decoding.guarded``, on an image opened with its size checked, as
    ``imgfmt.images`` does).
    """
    drafted = image.draft("L", _DRAFT_SIZE)
    image.load()
    orientation = _orientation(image)
    gray = _grayscale(image)
    # How far the picture spans, in decoded pixels: a JPEG decoded at 1/s scale is
    # ceil(width / s) pixels wide, the last of them only partly covered.
    extent = (drafted[1][2], drafted[1][3]) if drafted else (float(gray.width), float(gray.height))
    columns, rows = GRID_COLUMNS, GRID_ROWS
    if orientation in _SWAPPED_ORIENTATIONS:
        columns, rows = rows, columns  # the stored image is the upright one on its side
    factor = min(gray.width // (columns * PIXELS_PER_CELL), gray.height // (rows * PIXELS_PER_CELL))
    if factor >= 2:
        gray = gray.reduce(factor)  # block means; a partial last block averages what it has
        extent = (extent[0] / factor, extent[1] / factor)
    # Exact area means (a box filter whose edge pixels count by the share inside the cell).
    # Pillow's BOX resize counts a pixel wholly in the cell its centre falls in: at 1/4 or
    # 1/8 scale a cell edge moves by up to 4 of the original's pixels, and copies of one image
    # differed by 1.1 bits on average (at most 7) against 0.27 (at most 3) here. BILINEAR
    # blurs neighbouring cells together (4x more different images within 8 bits), LANCZOS is
    # close but less stable (0.41, at most 4) and let different images within 4 bits.
    pixels = np.asarray(gray, dtype=np.float64)
    cells = _area_weights(pixels.shape[0], extent[1], rows) @ pixels
    cells = cells @ _area_weights(pixels.shape[1], extent[0], columns).T
    cells = _upright(cells, orientation)
    brighter = cells[:, 1:] - cells[:, :-1] > _TIE_LEVELS
    return int.from_bytes(np.packbits(brighter.ravel(), bitorder="little").tobytes(), "little")


def _area_weights(pixels: int, extent: float, cells: int) -> np.ndarray:
    """(cells, pixels): the share of pixel ``[k, k + 1)`` in each of ``cells`` equal spans of
    ``[0, extent)``, divided by the span, so that ``weights @ values`` are the spans' means."""
    edges = np.linspace(0.0, extent, cells + 1)
    starts = np.arange(pixels, dtype=np.float64)
    overlap = np.minimum(starts + 1, edges[1:, None]) - np.maximum(starts, edges[:-1, None])
    return np.clip(overlap, 0.0, None) / (extent / cells)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8), 1 when there is none or it cannot be read."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF, whatever its parser raised: the
        return 1  # pixels as stored, as decoders (and imgfmt.images) show them
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(grid: np.ndarray, orientation: int) -> np.ndarray:
    """``grid`` (rows, columns) of the stored image, turned as EXIF ``orientation`` says the
    image is to be shown (Pillow's ``ImageOps.exif_transpose``)."""
    if orientation == 2:
        return grid[:, ::-1]
    if orientation == 3:
        return grid[::-1, ::-1]
    if orientation == 4:
        return grid[::-1, :]
    if orientation == 5:
        return grid.T
    if orientation == 6:
        return np.rot90(grid, -1)  # clockwise
    if orientation == 7:
        return grid[::-1, ::-1].T
    if orientation == 8:
        return np.rot90(grid, 1)  # counter-clockwise
    return grid


def _grayscale(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit grayscale ("L"), as ``imgfmt.images`` converts for ``color=0``."""
    from PIL import Image

    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        # The high byte, as libpng's strip_16 gives cv2.imread; Pillow's convert would clip.
        values = np.asarray(image)
        if values.dtype.kind != "u" or values.dtype.itemsize != 2:
            values = values.clip(0, 65535)
        return Image.fromarray((values >> 8).astype(np.uint8))
    if mode == "LAB":
        return image.getchannel("L")  # Pillow converts LAB to nothing; L is its lightness
    if mode in _GRAY_VIA:
        image = image.convert(_GRAY_VIA[mode])
    return image if image.mode == "L" else image.convert("L")


# --- distances ------------------------------------------------------------------------------

_POPCOUNT_TABLE = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)


def popcount(values: np.ndarray) -> np.ndarray:
    """The number of set bits of each uint64 in ``values`` (uint8, same shape).

    ``np.bitwise_count`` where numpy has it (2.0+), else a table of each byte's count."""
    values = np.asarray(values, dtype=np.uint64)
    bitwise_count = getattr(np, "bitwise_count", None)
    if bitwise_count is not None:
        counts: np.ndarray = bitwise_count(values)
        return counts
    return _popcount_by_bytes(values)


def _popcount_by_bytes(values: np.ndarray) -> np.ndarray:
    as_bytes = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1).view(np.uint8)
    counts = _POPCOUNT_TABLE[as_bytes].reshape(-1, 8).sum(axis=1, dtype=np.uint8)
    return counts.reshape(values.shape)


def hamming(a: int, b: int) -> int:
    """The number of bits in which two 64-bit hashes differ (int64 storage accepted)."""
    return ((int(a) ^ int(b)) & _HASH_MASK).bit_count()


# --- pairs within a distance ----------------------------------------------------------------


@dataclass(frozen=True)
class NearPairs:
    """What :func:`near_pairs` found."""

    #: (M, 3) int64 rows ``[i, j, distance]``, ``i < j``, sorted by ``(i, j)``; at most
    #: ``limit`` of them: the first in that order.
    pairs: np.ndarray
    #: How many pairs there are within the distance, those beyond the limit included.
    total: int
    #: How many pairs of distinct hashes the index compared (the search's work).
    candidates: int
    #: Into how many blocks the 64 bits were cut, and how many tables (combinations of blocks
    #: that must agree) the index sorted.
    blocks: int
    tables: int

    @property
    def truncated(self) -> bool:
        """Whether pairs were left out to keep to the limit."""
        return self.total > len(self.pairs)


def near_pairs(
    hashes: np.ndarray,
    groups: np.ndarray,
    max_distance: int,
    *,
    across_groups_only: bool = True,
    limit: int = DEFAULT_LIMIT,
) -> NearPairs:
    """Every pair of positions ``i < j`` whose hashes are at most ``max_distance`` bits apart
    (and, with ``across_groups_only``, whose ``groups`` differ: a split, a label), each once.

    ``hashes``: 1-D uint64 (int64 is read as the same 64 bits); ``groups``: 1-D integers of
    the same length; ``max_distance``: 0 (identical hashes only) to ``MAX_DISTANCE``.

    When there are more than ``limit`` pairs, the first ``limit`` in ``(i, j)`` order are
    returned and ``total`` says how many there are (``truncated`` is true): 100,000 copies of
    one blank image in each of two splits are 10**10 pairs, which no memory holds, yet their
    count is cheap. Time and memory beyond the search grow with the pairs returned, not with
    ``total``: at most about 100 bytes a hash plus 120 a pair returned (220 MB for a million
    hashes and as many pairs). Raises ``UsageError`` for arguments that cannot work.
    """
    values, labels = _checked(hashes, groups, max_distance, limit)
    count = len(values)
    distinct, inverse = np.unique(values, return_inverse=True)
    plan = _plan(max_distance, distinct)
    near, candidates = _distinct_pairs(distinct, max_distance, plan)

    # Cells: the positions of one hash in one group, contiguous in ``order``, ascending.
    order = np.lexsort((labels, inverse))
    cell_starts = _run_starts(inverse[order], labels[order])
    cell_sizes = np.diff(np.append(cell_starts, count))
    cell_hash = inverse[order[cell_starts]]
    cell_group = labels[order[cell_starts]]
    first_cell = np.searchsorted(cell_hash, np.arange(len(distinct) + 1))

    # Pairs of cells whose positions pair up: the cells of one hash (their groups differ)...
    rows = np.arange(len(cell_starts))
    same_a, same_b = _rows(rows, first_cell[cell_hash + 1] - rows - 1)
    # ... and the cells of two near hashes.
    hash_a, hash_b, distance = near.T
    cells_of_hash = np.diff(first_cell)
    which, near_a, near_b = _rectangles(
        first_cell[hash_a], cells_of_hash[hash_a], first_cell[hash_b], cells_of_hash[hash_b]
    )
    cell_a = np.concatenate([same_a, near_a])
    cell_b = np.concatenate([same_b, near_b])
    cell_distance = np.concatenate([np.zeros(len(same_a), np.int64), distance[which]])
    if across_groups_only:
        differ = cell_group[cell_a] != cell_group[cell_b]
        cell_a, cell_b, cell_distance = cell_a[differ], cell_b[differ], cell_distance[differ]
        alone = np.zeros(0, np.int64)
    else:
        alone = np.flatnonzero(cell_sizes >= 2)  # identical hashes within one cell pair up too

    sizes_a, sizes_b, sizes_alone = cell_sizes[cell_a], cell_sizes[cell_b], cell_sizes[alone]
    total = int(np.sum(sizes_a * sizes_b)) + int(np.sum(sizes_alone * (sizes_alone - 1) // 2))
    found = _cell_pairs(
        order, cell_starts, cell_sizes, cell_a, cell_b, cell_distance, alone, total, limit
    )
    return NearPairs(found, total, candidates, len(plan.blocks), plan.tables)


def _checked(
    hashes: np.ndarray, groups: np.ndarray, max_distance: int, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    values, labels = np.asarray(hashes), np.asarray(groups)
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)):
        raise UsageError(f"max_distance must be a whole number of bits, not {max_distance!r}")
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise UsageError(
            f"max_distance must be 0-{MAX_DISTANCE} bits of {HASH_BITS}, not {max_distance}",
            hint="images farther apart than that are seldom the same picture",
        )
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise UsageError(f"limit must be a count of pairs (0 or more), not {limit!r}")
    if values.ndim != 1 or labels.ndim != 1 or len(values) != len(labels):
        raise UsageError(
            f"hashes and groups must be 1-D and as long as each other, not of shapes "
            f"{values.shape} and {labels.shape}"
        )
    if values.dtype.kind == "u":
        values = values.astype(np.uint64)
    elif values.dtype == np.int64:
        values = values.view(np.uint64)
    elif values.size:
        raise UsageError(f"hashes must be uint64 (or int64), not {values.dtype}")
    else:
        values = values.astype(np.uint64)
    if labels.dtype.kind not in "biu" and labels.size:
        raise UsageError(f"groups must be integers, not {labels.dtype}")
    return values, labels.astype(np.int64)


def _run_starts(*keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values (in all of ``keys`` at once) starts."""
    if not len(keys[0]):
        return np.zeros(0, np.int64)
    changed = np.zeros(len(keys[0]) - 1, bool)
    for key in keys:
        changed |= key[1:] != key[:-1]
    return np.concatenate([[0], np.flatnonzero(changed) + 1])


def _rows(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``(s, s + 1 + k)`` for ``k < length`` of each ``(s, length)``: the pairs of
    a sorted run, one row per element (the elements after it)."""
    lengths = np.maximum(lengths, 0)
    firsts = np.repeat(starts, lengths)
    run_offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return firsts, firsts + 1 + (np.arange(len(firsts)) - run_offsets)


def _rectangles(
    a_starts: np.ndarray, a_sizes: np.ndarray, b_starts: np.ndarray, b_sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ``(a, b)`` of the ranges ``a_starts[r] + [0, a_sizes[r])`` and
    ``b_starts[r] + [0, b_sizes[r])``, with its rectangle ``r``."""
    areas = a_sizes * b_sizes
    which = np.repeat(np.arange(len(areas)), areas)
    offsets = np.arange(len(which)) - np.repeat(np.cumsum(areas) - areas, areas)
    across = b_sizes[which]
    return which, a_starts[which] + offsets // across, b_starts[which] + offsets % across


# --- the index over distinct hashes ---------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Cut the hash into ``blocks`` ((shift, width) each); compare hashes that agree on all
    the blocks of one of the ``agree``-sized combinations of them (the tables)."""

    blocks: tuple[tuple[int, int], ...]
    agree: int

    @property
    def tables(self) -> int:
        return math.comb(len(self.blocks), self.agree)


#: The cost model that chooses a plan, in seconds measured on a 2-core machine
#: (scripts/bench_neardup.py): sorting one table costs about this per distinct hash...
_TABLE_COST = 28e-9
#: ... and comparing one candidate pair about this.
_CANDIDATE_COST = 13e-9
#: Plans with more tables than this are not considered (their sorting alone is too slow).
_MAX_TABLES = 1000
#: How often two hashes share a table's bits is measured on this many distinct hashes (a
#: fixed pseudo-random sample) and this many of the plan's tables: real hashes share bits far
#: more often than random ones (4-9x for the 11-bit blocks of photo-like images' hashes).
_PLAN_SAMPLE = 20_000
_PLAN_SAMPLE_TABLES = 16


def _blocks(count: int) -> tuple[tuple[int, int], ...]:
    """The 64 bits cut into ``count`` blocks of near-equal width, low bits first."""
    widths = [HASH_BITS // count + (index < HASH_BITS % count) for index in range(count)]
    shifts = np.cumsum([0, *widths[:-1]])
    return tuple((int(shift), width) for shift, width in zip(shifts, widths))


def _plan(max_distance: int, distinct: np.ndarray) -> _Plan:
    """The plan expected to take the least time over the ``distinct`` hashes."""
    count = len(distinct)
    pairs = count * (count - 1) / 2
    if max_distance == 0:
        return _Plan((), 1)  # distinct hashes are never 0 bits apart: nothing to compare
    best, best_cost = _Plan((), 0), pairs * _CANDIDATE_COST  # compare all pairs
    sample = distinct
    if count > _PLAN_SAMPLE:
        sample = np.random.default_rng(0).choice(distinct, _PLAN_SAMPLE, replace=False)
    for agree in range(1, HASH_BITS - max_distance + 1):
        tables = math.comb(max_distance + agree, agree)
        sorting = tables * count * _TABLE_COST
        if tables > _MAX_TABLES or sorting >= best_cost:
            break  # more blocks to agree on: more tables still
        plan = _Plan(_blocks(max_distance + agree), agree)
        cost = sorting + pairs * _shared(plan, sample) * _CANDIDATE_COST
        if cost < best_cost:
            best, best_cost = plan, cost
    return best


def _shared(plan: _Plan, sample: np.ndarray) -> float:
    """How often two of the hashes share a table's bits, summed over the plan's tables: what
    the ``sample`` shows, or the chance for random hashes if that is more."""
    tables = list(combinations(range(len(plan.blocks)), plan.agree))
    measured = tables[:: max(1, len(tables) // _PLAN_SAMPLE_TABLES)]
    pairs = len(sample) * (len(sample) - 1) / 2
    shared = 0.0
    for table in measured:
        blocks = [plan.blocks[block] for block in table]
        _, sizes = np.unique(_key(sample, blocks), return_counts=True)
        shared += float(np.sum(sizes * (sizes - 1) / 2)) / pairs
    uniform = sum(2.0 ** -sum(plan.blocks[block][1] for block in table) for table in tables)
    return max(shared * len(tables) / len(measured), uniform)


def _distinct_pairs(distinct: np.ndarray, max_distance: int, plan: _Plan) -> tuple[np.ndarray, int]:
    """(M, 3) ``[a, b, distance]`` of the distinct hashes ``distinct[a] < distinct[b]`` at
    most ``max_distance`` apart, each once; and the number of candidates compared."""
    count = len(distinct)
    found = [np.zeros((0, 3), np.int64)]
    candidates = 0
    if count < 2 or (plan.agree and not plan.blocks):
        return found[0], candidates
    for table in combinations(range(len(plan.blocks)), plan.agree):
        order, key = _sorted_by(distinct, [plan.blocks[block] for block in table])
        values = distinct[order]
        # Each hash against the next in its bucket, then the one after...: the pairs of a
        # bucket of s hashes in s - 1 vectorised steps, in memory for one step at a time.
        places = np.flatnonzero(key[1:] == key[:-1])
        step = 1
        while len(places):
            candidates += len(places)
            partners = places + step
            differ = values[places] ^ values[partners]
            distance = popcount(differ)
            close = np.flatnonzero(distance <= max_distance)
            if len(close):
                a, b = order[places[close]], order[partners[close]]
                first = _first_table(differ[close], table, plan.blocks)
                near = [np.minimum(a, b), np.maximum(a, b), distance[close].astype(np.int64)]
                found.append(np.stack(near, axis=1)[first])
            step += 1
            places = places[places < count - step]
            places = places[key[places + step] == key[places]]
    return np.concatenate(found), candidates


def _first_table(
    differ: np.ndarray, table: tuple[int, ...], blocks: tuple[tuple[int, int], ...]
) -> np.ndarray:
    """Whether ``table`` is the first to find each pair (whose hashes' XOR is ``differ``):
    no block before its last one, and not in it, is equal in both."""
    first = np.ones(len(differ), bool)
    for block in range(max(table, default=0)):
        if block not in table:
            shift, width = blocks[block]
            first &= (differ & np.uint64(((1 << width) - 1) << shift)) != 0
    return first


def _key(hashes: np.ndarray, blocks: list[tuple[int, int]]) -> np.ndarray:
    """The bits of ``hashes`` in ``blocks``, side by side from bit 0."""
    key = np.zeros(len(hashes), np.uint64)
    key_bits = 0
    for shift, width in blocks:
        key |= ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)) << np.uint64(key_bits)
        key_bits += width
    return key


def _sorted_by(
    distinct: np.ndarray, blocks: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """The order of the hashes by their bits in ``blocks``, and those bits in that order."""
    count = len(distinct)
    index_bits = max(1, (count - 1).bit_length())
    key = _key(distinct, blocks)
    key_bits = sum(width for _, width in blocks)
    if key_bits + index_bits > HASH_BITS:
        order = np.argsort(key)
        return order, key[order]
    # One sort of key and index packed together: several times faster than argsort.
    packed = np.sort((key << np.uint64(index_bits)) | np.arange(count, dtype=np.uint64))
    order = (packed & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    return order, packed >> np.uint64(index_bits)


# --- from pairs of cells to pairs of positions ----------------------------------------------


def _cell_pairs(
    order: np.ndarray,
    cell_starts: np.ndarray,
    cell_sizes: np.ndarray,
    cell_a: np.ndarray,
    cell_b: np.ndarray,
    cell_distance: np.ndarray,
    alone: np.ndarray,
    total: int,
    limit: int,
) -> np.ndarray:
    """The position pairs of the cell pairs ``(cell_a, cell_b)`` (each position of one cell
    with each of the other's) and of the cells ``alone`` (their positions with each other),
    sorted by ``(i, j)``: the first ``limit`` of the ``total``, generated in proportion to
    the pairs returned."""
    count = len(order)
    if not total or not limit:
        return np.zeros((0, 3), np.int64)
    involved = np.unique(np.concatenate([cell_a, cell_b, alone]))
    cell_of = np.repeat(np.arange(len(cell_starts)), cell_sizes)
    keys = cell_of * count + order  # ascending: cell after cell, positions ascending in each

    def taken(last: int) -> np.ndarray:
        """How many positions of each cell are ``last`` or lower (cells that pair up)."""
        upto = np.zeros(len(cell_starts), np.int64)
        ends = np.searchsorted(keys, involved * count + last, side="right")
        upto[involved] = ends - cell_starts[involved]
        return upto

    n_a, n_b, n_alone = cell_sizes[cell_a], cell_sizes[cell_b], cell_sizes[alone]

    def pairs_upto(last: int) -> int:
        """How many pairs have ``i <= last``: all but those of positions after ``last``."""
        upto = taken(last)
        a_after, b_after = n_a - upto[cell_a], n_b - upto[cell_b]
        alone_after = n_alone - upto[alone]
        return total - int(np.sum(a_after * b_after) + np.sum(alone_after * (alone_after - 1) // 2))

    last = count - 1
    if total > limit:  # the lowest ``last`` with enough pairs: no pair of a later ``i`` is made
        low = 0
        while low < last:
            middle = (low + last) // 2
            if pairs_upto(middle) >= limit:
                last = middle
            else:
                low = middle + 1

    # A pair of cells: A's positions up to ``last`` with all of B's, then A's later ones with
    # B's up to ``last``. A cell alone: one row per position up to ``last``, with those after.
    upto = taken(last)
    k_a, k_b, k_alone = upto[cell_a], upto[cell_b], upto[alone]
    s_a, s_b = cell_starts[cell_a], cell_starts[cell_b]
    row_starts = np.repeat(cell_starts[alone], k_alone)
    row = np.arange(len(row_starts)) - np.repeat(np.cumsum(k_alone) - k_alone, k_alone)
    which, a, b = _rectangles(
        np.concatenate([s_a, s_a + k_a, row_starts + row]),
        np.concatenate([k_a, n_a - k_a, np.ones(len(row), np.int64)]),
        np.concatenate([s_b, s_b, row_starts + row + 1]),
        np.concatenate([n_b, k_b, np.repeat(n_alone, k_alone) - row - 1]),
    )
    distances = np.concatenate([cell_distance, cell_distance, np.zeros(len(row), np.int64)])
    i, j = order[a], order[b]
    i, j = np.minimum(i, j), np.maximum(i, j)
    first = np.argsort(i * count + j)[:limit]  # no two pairs share a key: any sort will do
    return np.stack([i[first], j[first], distances[which[first]]], axis=1)

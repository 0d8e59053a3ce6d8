"""imgfmt.render: the confusion heatmap, its grouping, the contact sheet, thumbnails, encoding.

Pictures are judged by their size, their colours and their bytes (same input, same bytes);
the grouping, the text fitting and the subtitles by their exact values.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from helpers import samples
from PIL import Image

from imgfmt import render
from imgfmt.errors import UsageError
from imgfmt.render import SheetRow, Tile, confusion_heatmap, contact_sheet, group_confusion

# --- helpers ---------------------------------------------------------------------------------


def confusion(classes: int, seed: int = 0, per_class: int = 50) -> np.ndarray:
    """A plausible confusion matrix: most images right, the rest spread at random."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for true in range(classes):
        support = int(rng.integers(per_class // 2, per_class * 2))
        right = int(support * rng.uniform(0.4, 0.95))
        matrix[true, true] = right
        np.add.at(matrix[true], rng.integers(0, classes, support - right), 1)
    return matrix


def names_for(classes: int) -> dict[int, str]:
    return {label: samples.class_name(label) for label in range(classes)}


def heatmap(classes: int, **options: int) -> Image.Image:
    return confusion_heatmap(
        list(range(classes)), names_for(classes), confusion(classes), "val.lst", **options
    )


def png(image: Image.Image) -> bytes:
    return render.encode_image(image, ".png")


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    return {tuple(c) for c in np.asarray(image).reshape(-1, 3).tolist()}


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    return samples.make_image(samples.image_rng(seed, 5), width, height)


# --- group_confusion -------------------------------------------------------------------------


def reference_grouping(labels, matrix, max_classes):
    """group_confusion written the slow, obvious way."""
    errors = {
        label: sum(matrix[i][j] + matrix[j][i] for j in range(len(labels)) if j != i)
        for i, label in enumerate(labels)
    }
    kept = sorted(sorted(labels, key=lambda label: (-errors[label], label))[: max_classes - 1])
    slot = {label: (kept.index(label) if label in kept else len(kept)) for label in labels}
    grouped = np.zeros((len(kept) + 1, len(kept) + 1), dtype=np.int64)
    for i, true in enumerate(labels):
        for j, predicted in enumerate(labels):
            grouped[slot[true], slot[predicted]] += matrix[i][j]
    return [*kept, None], grouped


def test_up_to_max_classes_nothing_is_grouped():
    matrix = confusion(40)
    labels, grouped = group_confusion(list(range(40)), matrix, 40)
    assert labels == list(range(40))
    assert np.array_equal(grouped, matrix)


def test_grouping_keeps_the_classes_most_involved_in_errors():
    labels = list(range(45))
    matrix = np.diag(np.full(45, 100)).astype(np.int64)
    for true in range(5, 44):
        matrix[true, true + 1] = 3  # each of 5..43 mistakes 3 images for the next class
    matrix[44, 0] = 1
    # Off-diagonal row + column sums: 6..43 -> 3 + 3, 44 -> 1 + 3, 5 -> 3 + 0, 0 -> 0 + 1,
    # 1..4 -> 0. The 39 kept are 6..44; 0..5 become "other".
    shown, grouped = group_confusion(labels, matrix, 40)
    assert shown == [*range(6, 45), None]
    assert grouped.shape == (40, 40)
    assert grouped.sum() == matrix.sum()
    assert np.array_equal(grouped[:39, :39], matrix[6:45, 6:45])
    assert grouped[39, 39] == 6 * 100  # 0..5 right
    assert grouped[39, 0] == 3  # 5 -> 6
    assert grouped[38, 39] == 1  # 44 -> 0
    assert grouped[39, 1:39].sum() == 0 and grouped[:38, 39].sum() == 0


def test_grouping_ties_go_to_the_smaller_label():
    labels = [7, 3, 9, 1]  # order of rows, not sorted
    matrix = np.diag([5, 5, 5, 5])  # no errors at all: every class ties at 0
    shown, grouped = group_confusion(labels, matrix, 3)
    assert shown == [3, 1, None]  # the 2 smallest labels, in the order of ``labels``
    assert grouped.tolist() == [[5, 0, 0], [0, 5, 0], [0, 0, 10]]


@pytest.mark.parametrize("classes, max_classes, seed", [(45, 40, 1), (120, 10, 2), (1000, 40, 3)])
def test_grouping_matches_the_reference(classes, max_classes, seed):
    labels = list(range(100, 100 + classes))
    matrix = confusion(classes, seed, per_class=20)
    shown, grouped = group_confusion(labels, matrix, max_classes)
    expected_shown, expected = reference_grouping(labels, matrix.tolist(), max_classes)
    assert shown == expected_shown
    assert np.array_equal(grouped, expected)
    assert grouped.sum() == matrix.sum()
    kept = [labels.index(label) for label in shown[:-1]]
    assert np.array_equal(grouped[:-1, :-1], matrix[np.ix_(kept, kept)])


def test_bad_matrices_and_group_sizes():
    with pytest.raises(ValueError, match=r"for 3 labels is 3 x 3, not 2 x 2"):
        group_confusion([0, 1, 2], np.zeros((2, 2), dtype=int), 40)
    with pytest.raises(ValueError, match="whole numbers, 0 or more"):
        group_confusion([0, 1], [[1, -1], [0, 2]], 40)
    with pytest.raises(ValueError, match="whole numbers"):
        group_confusion([0, 1], [[1.5, 0], [0, 2]], 40)
    with pytest.raises(UsageError) as caught:
        group_confusion([0, 1, 2], np.eye(3, dtype=int), 1)
    assert str(caught.value) == (
        "cannot group a confusion matrix into 1 classes "
        "(show at least 2 classes (one of them the group of all others))"
    )
    with pytest.raises(ValueError, match="at least one class"):
        confusion_heatmap([], {}, np.zeros((0, 0), dtype=int), "empty")


# --- confusion_heatmap -----------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 10, 45, 1000])
def test_heatmap_size_speed_and_determinism(classes):
    started = time.perf_counter()
    first = heatmap(classes)
    elapsed = time.perf_counter() - started
    assert first.mode == "RGB"
    assert 200 <= first.width <= 2000 and 200 <= first.height <= 2000
    assert elapsed < 5  # about 0.2 s for 1000 classes
    assert png(heatmap(classes)) == png(first)


def test_heatmap_grows_with_the_classes_up_to_the_grouping():
    widths = [heatmap(classes).width for classes in (2, 10, 40)]
    assert widths == sorted(widths) and widths[0] < widths[-1]


def test_heatmap_is_coloured_by_share_of_row():
    perfect = confusion_heatmap([0, 1, 2], {0: "a", 1: "b", 2: "c"}, np.diag([5, 9, 400]), "t")
    assert tuple(render.PALETTE[255]) in colours(perfect)  # every diagonal cell is 100%
    assert render.NO_SUPPORT not in colours(perfect)
    empty_row = confusion_heatmap([0, 1], {}, [[3, 1], [0, 0]], "t")  # class 1 has no images
    assert render.NO_SUPPORT in colours(empty_row)
    assert tuple(render.PALETTE[round(0.75 * 255)]) in colours(empty_row)  # 3 of 4


def test_heatmap_without_room_for_text_still_draws():
    image = heatmap(300, max_classes=300)  # cells of 4 px: no names, no counts
    assert image.width <= 2000 and image.height <= 2000


def test_subtitles():
    matrix = confusion(45)
    lines = render._heatmap_notes(matrix, 6, empty_rows=False)
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    assert lines == [
        f"{total:,} images  \u00b7  45 classes  \u00b7  accuracy {correct / total:.1%}",
        "Grouped: 39 of 45 classes shown (those most involved in errors); "
        "the other 6 are summed as \u201cother\u201d.",
    ]
    zeros = np.zeros((2, 2), dtype=np.int64)
    assert render._heatmap_notes(zeros, 0, empty_rows=True) == [
        "0 images  \u00b7  2 classes",
        "Grey rows: no images of that true class.",
    ]


def test_count_texts_fit_their_cells():
    counts = np.array([[57_039, 12], [0, 3]], dtype=np.int64)
    font, texts = render._count_texts(counts, 35)
    assert texts[12] == "12" and texts[3] == "3" and 0 not in texts
    assert font.getlength(texts[57_039]) <= 35 - 6
    assert render._count_texts(counts, 4) is None
    assert [render._compact(n) for n in (999, 1_234, 9_960, 57_039, 1_250_000)] == [
        "999",
        "1.2k",
        "10k",
        "57k",
        "1.2M",
    ]


# --- thumbnails ------------------------------------------------------------------------------

MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "La", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"]
MODES += ["I", "I;16", "I;16B", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_becomes_rgb(mode):
    source = photo(300, 200)
    image = source.convert(mode) if mode not in ("La", "PA") else source.convert("RGBA")
    if mode == "La":
        image = source.convert("LA").convert("La")
    elif mode == "PA":
        image = source.convert("P").convert("PA")
    result = render.thumbnail(image, 64)
    assert result.mode == "RGB"
    assert result.size == (64, 43)


def test_sixteen_bit_and_float_samples_scale_to_eight_bits():
    wide = Image.fromarray(np.full((4, 4), 0xABCD, dtype=np.uint16))
    assert render.thumbnail(wide, 8).getpixel((0, 0)) == (0xAB,) * 3
    narrow = Image.fromarray(np.full((4, 4), 200, dtype=np.int32))  # 8-bit values in "I"
    assert render.thumbnail(narrow, 8).getpixel((0, 0)) == (200,) * 3
    unit = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32))
    assert render.thumbnail(unit, 8).getpixel((0, 0)) == (128,) * 3
    ramp = Image.fromarray(np.array([[-10.0, 30.0]], dtype=np.float32))
    assert [render.thumbnail(ramp, 8).getpixel((x, 0)) for x in (0, 7)] == [(0,) * 3, (255,) * 3]


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert render.thumbnail(clear, 10).getpixel((5, 5)) == (255, 255, 255)
    half = Image.new("RGBA", (10, 10), (0, 0, 0, 128))
    assert render.thumbnail(half, 10).getpixel((5, 5)) == (127, 127, 127)
    keyed = Image.new("P", (10, 10), 3)
    keyed.info["transparency"] = 3
    assert render.thumbnail(keyed, 10).getpixel((5, 5)) == (255, 255, 255)


def test_fitting_keeps_the_aspect_ratio():
    assert render.thumbnail(photo(640, 200), 128).size == (128, 40)
    assert render.thumbnail(photo(90, 200), 128).size == (58, 128)
    assert render.thumbnail(photo(100, 100), 128).size == (100, 100)  # not enlarged by < 2
    digit = render.thumbnail(Image.new("L", (28, 28), 200), 128)
    assert digit.size == (112, 112)  # 4x, pixels kept sharp
    assert render.thumbnail(photo(3000, 1), 128).size == (128, 1)
    with pytest.raises(ValueError):
        render.thumbnail(photo(10, 10), 0)


def test_exif_orientation_is_applied_and_jpegs_decode_small():
    exif = Image.Exif()
    exif[render.EXIF_ORIENTATION_TAG] = 6  # stored sideways: turn 90 degrees clockwise
    data = samples.jpeg_bytes(photo(400, 200), exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as stored:
        result = render.thumbnail(stored, 64)
    assert result.size == (32, 64)
    with Image.open(io.BytesIO(samples.jpeg_bytes(photo(2048, 1024)))) as large:
        render.thumbnail(large, 128)
        assert large.size == (256, 128)  # decoded at 1/8 by libjpeg


# --- contact sheet ---------------------------------------------------------------------------


def sheet_rows(classes: int, tiles: int, cell_image=(160, 120)) -> list[SheetRow]:
    return [
        SheetRow(
            f"{label}  {samples.class_name(label)}  ({40 + label} images)",
            [Tile(photo(*cell_image, seed=label * 100 + n), f"id {n}") for n in range(tiles)],
        )
        for label in range(classes)
    ]


def test_sheet_size_follows_rows_and_tiles():
    base = contact_sheet("ds", "2 classes", sheet_rows(2, 6))
    assert base.width == 2 * render.MARGIN + 6 * 128 + 5 * render.TILE_GAP
    wider = contact_sheet("ds", "2 classes", sheet_rows(2, 7))
    assert wider.width - base.width == 128 + render.TILE_GAP
    assert wider.height == base.height
    taller = contact_sheet("ds", "3 classes", sheet_rows(3, 6))
    row_height = taller.height - base.height
    assert row_height > 128
    four = contact_sheet("ds", "4 classes", sheet_rows(4, 6))
    assert four.height - taller.height == row_height
    small = contact_sheet("ds", "4 classes", sheet_rows(4, 6), cell=64)
    assert small.width == 2 * render.MARGIN + 6 * 64 + 5 * render.TILE_GAP


def test_rows_of_different_lengths_and_narrow_sheets():
    rows = sheet_rows(3, 5)
    rows[1].tiles = rows[1].tiles[:2]
    rows[2].tiles = []  # a class with no images listed: "no images"
    image = contact_sheet("ds", "", rows)
    assert image.width == 2 * render.MARGIN + 5 * 128 + 4 * render.TILE_GAP
    assert contact_sheet("ds", "", sheet_rows(1, 1)).width == render.SHEET_MIN_WIDTH
    assert contact_sheet("only a title", "", []).height > 0


def test_an_unreadable_image_is_a_marked_placeholder():
    rows = [SheetRow("0  cat", [Tile(None, "id 17"), Tile(photo(50, 50), "id 18")])]
    image = contact_sheet("ds", "1 class", rows)
    assert render.PLACEHOLDER in colours(image)
    assert render.PLACEHOLDER_MARK in colours(image)
    readable = contact_sheet("ds", "1 class", [SheetRow("0  cat", [Tile(photo(50, 50), "id 17")])])
    assert render.PLACEHOLDER not in colours(readable)


def test_sheet_takes_every_mode_and_is_deterministic():
    tiles = [Tile(photo(120, 90, seed=n).convert(mode), mode) for n, mode in enumerate(MODES[:-4])]
    tiles.append(Tile(Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)), "16"))
    rows = [SheetRow("modes", tiles), SheetRow("broken", [Tile(None, "id 3")])]
    first = contact_sheet("ds", "modes", rows)
    assert first.mode == "RGB"
    assert png(contact_sheet("ds", "modes", rows)) == png(first)


def test_truncation_fits_and_marks_the_cut():
    font = render._font(12)
    caption = "images/train/golden_retriever/IMG_20230417_184512_very_long_name.jpg"
    cut = render._truncate(caption, font, 128)
    assert cut.endswith("\u2026") and caption.startswith(cut[:-1])
    assert font.getlength(cut) <= 128
    assert font.getlength(render._truncate(caption[: len(cut) + 1], font, 128)) <= 128
    assert render._truncate("id 17", font, 128) == "id 17"
    assert render._truncate(caption, font, 2) == ""


# --- encoding --------------------------------------------------------------------------------


def test_encode_image():
    image = heatmap(3)
    data = render.encode_image(image, ".png")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert render.encode_image(image, ".PNG") == data
    jpeg = render.encode_image(image, ".jpeg")
    assert jpeg.startswith(b"\xff\xd8") and render.encode_image(image, ".jpg") == jpeg
    assert render.encode_image(image.convert("RGBA"), ".jpg") == jpeg
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.size == image.size
    with pytest.raises(UsageError) as caught:
        render.encode_image(image, ".gif")
    assert (
        str(caught.value) == "cannot write a '.gif' picture (name the output .png, .jpg or .jpeg)"
    )

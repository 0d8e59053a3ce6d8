"""Pictures for people: a confusion-matrix heatmap and a contact sheet of thumbnails.

Pure rendering with Pillow and numpy: counts and decoded images in, an RGB ``PIL.Image`` out;
nothing is read or written here. Callers encode with :func:`encode_image` and write the bytes
themselves (atomically). The same inputs give the same pixels: no clocks, no randomness, and
one bundled font (Pillow's Aileron, through ``ImageFont.load_default``).

Text is drawn in that font only, which covers Latin scripts; other scripts show as boxes.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps

from imgfmt.errors import UsageError

#: Output extensions and the Pillow format each is written in.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}

#: JPEG quality of :func:`encode_image`: charts and thumbnails stay clean, a third of PNG's size.
JPEG_QUALITY = 90

#: The classes a heatmap shows one by one before grouping the rest as "other".
DEFAULT_MAX_CLASSES = 40

#: The default side of a contact sheet's square cell, in pixels.
DEFAULT_CELL = 128

# --- look ------------------------------------------------------------------------------------

WHITE = (255, 255, 255)
INK = (31, 35, 40)  # body text: near-black, softer than pure black
MUTED = (87, 96, 106)  # subtitles, captions, tick labels of secondary things
FAINT = (208, 215, 222)  # outlines and separators
BAND = (246, 248, 250)  # the contact sheet's header band
TILE_BACKGROUND = (234, 238, 242)  # behind a thumbnail that does not fill its cell
PLACEHOLDER = (214, 219, 224)  # an image that could not be decoded
PLACEHOLDER_MARK = (164, 44, 44)
NO_SUPPORT = (222, 222, 222)  # a heatmap row whose true class has no images: no fraction to show

MARGIN = 24

# ColorBrewer's 9-class sequential "Blues" (Cynthia Brewer, colorbrewer2.org), white to dark
# blue: ordered by lightness, so it reads in grey print and for colour-blind readers too.
_BLUES = "#f7fbff #deebf7 #c6dbef #9ecae1 #6baed6 #4292c6 #2171b5 #08519c #08306b".split()

# The heatmap's matrix side stays under this many pixels, so with labels, colour bar and
# titles the picture stays under about 2000 x 2000; cells are at most HEATMAP_MAX_CELL.
HEATMAP_MATRIX_BUDGET = 1400
HEATMAP_MAX_CELL = 48
HEATMAP_LABEL_MAX_WIDTH = 220  # longer class names end in an ellipsis
HEATMAP_MAX_WIDTH = 2000  # titles wider than the chart widen it up to this, then are cut
GRID_MIN_CELL = 10  # smaller cells get no white grid line (it would eat the colour)
LABEL_MIN_CELL = 8  # smaller cells get no class names (one per row would overlap)
COUNT_FONT_RANGE = (8, 14)  # cell counts: largest size that fits, never below the smallest
COLOUR_BAR_HEIGHT = 200

# Contact sheet spacing.
TILE_GAP = 12
ROW_GAP = 18
SHEET_MIN_WIDTH = 480

ELLIPSIS = "\u2026"


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise UsageError(
            "this Pillow was built without FreeType, so imgfmt cannot draw text",
            hint="install Pillow from its wheels, which include FreeType",
        )
    return font


def _truncate(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """``text`` cut to fit ``width`` pixels, ending in an ellipsis if anything was cut."""
    if font.getlength(text) <= width:
        return text
    low, high = 0, len(text)  # the longest prefix that fits is in [low, high)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle].rstrip() + ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    if low == 0:
        return ELLIPSIS if font.getlength(ELLIPSIS) <= width else ""
    return text[:low].rstrip() + ELLIPSIS


def _text_height(font: ImageFont.FreeTypeFont) -> int:
    """The line height of ``font``: ascender plus descender, whatever the text."""
    ascent, descent = font.getmetrics()
    return ascent + descent


def _paste_text(
    canvas: Image.Image,
    xy: tuple[int, int],
    text: str,
    font: ImageFont.FreeTypeFont,
    fill: tuple[int, int, int],
    *,
    rotate: bool = False,
) -> None:
    """Draws ``text`` with its top-left corner at ``xy``; ``rotate`` turns it a quarter
    counter-clockwise first, to read from bottom to top."""
    width = max(1, int(np.ceil(font.getlength(text))))
    mask = Image.new("L", (width, _text_height(font)))
    ImageDraw.Draw(mask).text((0, 0), text, font=font, fill=255)
    if rotate:
        mask = mask.transpose(Image.Transpose.ROTATE_90)
    canvas.paste(fill, (*xy, xy[0] + mask.width, xy[1] + mask.height), mask)


# --- colours ---------------------------------------------------------------------------------


def _palette() -> NDArray[np.uint8]:
    """256 RGB colours from white (fraction 0) to dark blue (fraction 1), interpolated
    linearly between the ColorBrewer anchors."""
    anchors = np.array([ImageColor.getrgb(colour)[:3] for colour in _BLUES], dtype=np.float64)
    stops = np.linspace(0.0, 1.0, len(anchors))
    positions = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(positions, stops, anchors[:, c]) for c in range(3)]
    return np.stack(channels, axis=1).round().astype(np.uint8)


def _luminance(rgb: NDArray[Any]) -> NDArray[np.float64]:
    """WCAG relative luminance of sRGB colours (last axis: R, G, B as 0-255)."""
    linear = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(linear <= 0.04045, linear / 12.92, ((linear + 0.055) / 1.055) ** 2.4)
    result: NDArray[np.float64] = linear @ np.array([0.2126, 0.7152, 0.0722])
    return result


PALETTE = _palette()
# Per palette entry: write counts in white (True) or in INK, whichever contrasts more (WCAG
# contrast ratio: (lighter + 0.05) / (darker + 0.05)).
_SHADE_LUMINANCE = _luminance(PALETTE)
_WHITE_TEXT = 1.05 / (_SHADE_LUMINANCE + 0.05) > (_SHADE_LUMINANCE + 0.05) / (
    float(_luminance(np.array(INK))) + 0.05
)


# --- confusion heatmap -----------------------------------------------------------------------


def group_confusion(
    labels: list[int], matrix: ArrayLike, max_classes: int = DEFAULT_MAX_CLASSES
) -> tuple[list[int | None], NDArray[np.int64]]:
    """Shrinks a confusion matrix to at most ``max_classes`` rows and columns.

    ``matrix[i][j]`` counts images of true class ``labels[i]`` predicted as ``labels[j]``.
    Up to ``max_classes`` classes, it comes back as it is. Above, the ``max_classes - 1``
    classes most involved in errors -- the largest sums of their off-diagonal row (missed) and
    column (wrongly predicted), ties to the smaller label -- keep their rows and columns, in
    the order of ``labels``, and all other classes are summed into one last row and column,
    whose label is ``None``. Every count lands somewhere: the total is unchanged, and so are the
    kept classes' cells with each other.
    """
    counts = _check_matrix(labels, matrix)
    if max_classes < 2:
        raise UsageError(
            f"cannot group a confusion matrix into {max_classes} classes",
            hint="show at least 2 classes (one of them the group of all others)",
        )
    if len(labels) <= max_classes:
        return list(labels), counts
    diagonal = np.diagonal(counts)
    errors = counts.sum(axis=1) + counts.sum(axis=0) - 2 * diagonal
    ranked = sorted(range(len(labels)), key=lambda i: (-int(errors[i]), labels[i]))
    kept = np.array(sorted(ranked[: max_classes - 1]))
    others = np.array(sorted(ranked[max_classes - 1 :]))
    rows = np.vstack([counts[kept], counts[others].sum(axis=0, keepdims=True)])
    grouped = np.hstack([rows[:, kept], rows[:, others].sum(axis=1, keepdims=True)])
    shown: list[int | None] = [labels[i] for i in kept]
    return [*shown, None], grouped


def _check_matrix(labels: list[int], matrix: ArrayLike) -> NDArray[np.int64]:
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape != (len(labels), len(labels)):
        raise ValueError(
            f"a confusion matrix for {len(labels)} labels is {len(labels)} x {len(labels)}, "
            f"not {' x '.join(map(str, counts.shape))}"
        )
    if counts.size and (counts.dtype.kind not in "iub" or counts.min() < 0):
        raise ValueError("a confusion matrix holds counts: whole numbers, 0 or more")
    return counts.astype(np.int64)


def _compact(count: int) -> str:
    """4 characters at most: 999, 1.2k, 12k, 123k, 1.2M, 12M..."""
    for limit, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if count >= limit:
            value = count / limit
            return f"{value:.1f}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
    return str(count)


def _count_texts(
    counts: NDArray[np.int64], cell: int
) -> tuple[ImageFont.FreeTypeFont, dict[int, str]] | None:
    """The font for the counts in cells and the text of each count: the largest size at which
    every count fits, written out where it fits and as ``12k`` where not; None if even the
    smallest size fits no text (zeros are left blank)."""
    values = [int(v) for v in np.unique(counts) if v > 0]
    if not values or cell < GRID_MIN_CELL:
        return None
    room = cell - 6
    smallest, largest = COUNT_FONT_RANGE
    for size in range(min(largest, int(cell * 0.36)), smallest - 1, -1):
        font = _font(size)
        if _text_height(font) > room:
            continue
        texts = {}
        for value in values:
            exact = str(value)
            texts[value] = exact if font.getlength(exact) <= room else _compact(value)
        if max(font.getlength(text) for text in texts.values()) <= room:
            return font, texts
    return None


def confusion_heatmap(
    labels: list[int],
    names: dict[int, str],
    matrix: ArrayLike,
    title: str,
    *,
    max_classes: int = DEFAULT_MAX_CLASSES,
) -> Image.Image:
    """A heatmap of a confusion matrix: rows are true classes, columns predicted ones.

    ``matrix[i][j]`` counts images of class ``labels[i]`` predicted as ``labels[j]``; classes
    are named by ``names`` (the label itself where missing). A cell's colour is its share of
    its row -- the diagonal is each class's recall -- from white (0%) to dark blue (100%), with
    a colour bar; a row without images is grey. Counts are written in the cells (zeros left
    blank) while cells are large enough, each row's total to its right. A subtitle gives the
    images, classes and accuracy.

    Above ``max_classes`` classes, :func:`group_confusion` keeps the ``max_classes - 1`` most
    involved in errors and sums the rest into "other (N classes)"; the subtitle says so. The
    matrix side stays under ``HEATMAP_MATRIX_BUDGET`` pixels (cells of up to
    ``HEATMAP_MAX_CELL``), so the picture stays under about 2000 x 2000 pixels.
    """
    if not labels:
        raise ValueError("a confusion matrix needs at least one class")
    original = _check_matrix(labels, matrix)
    shown, counts = group_confusion(labels, original, max_classes)
    n = len(shown)
    grouped_away = len(labels) - n + 1 if shown and shown[-1] is None else 0
    tick_names = [
        f"other ({grouped_away:,} classes)" if label is None else names.get(label, str(label))
        for label in shown
    ]
    cell = max(1, min(HEATMAP_MAX_CELL, HEATMAP_MATRIX_BUDGET // n))
    matrix_side = n * cell

    support = counts.sum(axis=1)
    subtitles = _heatmap_notes(original, grouped_away, empty_rows=bool((support == 0).any()))

    title_font, subtitle_font, axis_font = _font(20), _font(13), _font(13)
    label_font = _font(max(7, min(13, cell - 4)))
    small_font = _font(11)
    show_labels = cell >= LABEL_MIN_CELL
    label_texts = [
        _truncate(name, label_font, HEATMAP_LABEL_MAX_WIDTH) if show_labels else ""
        for name in tick_names
    ]
    label_width = int(max((label_font.getlength(t) for t in label_texts), default=0))
    support_texts = [f"{int(s):,}" for s in support] if show_labels else []
    support_header = "images"
    support_font = _font(min(11, label_font.size))  # no taller than a row's name
    support_width = int(
        max(
            [support_font.getlength(t) for t in support_texts]
            + [small_font.getlength(support_header)]
        )
        if show_labels
        else 0
    )
    bar_caption = "share of true class"
    bar_width = 16
    bar_height = min(COLOUR_BAR_HEIGHT, max(matrix_side, COLOUR_BAR_HEIGHT * 3 // 5))
    bar_block = max(
        bar_width + 8 + int(small_font.getlength("100%")), int(small_font.getlength(bar_caption))
    )
    axis_height = _text_height(axis_font)

    # Horizontal layout, left to right.
    x_axis_title = MARGIN
    x_labels_right = x_axis_title + axis_height + 10 + label_width
    x_matrix = x_labels_right + (8 if show_labels else 0)
    x_support = x_matrix + matrix_side + 10
    x_bar = x_support + (support_width + 24 if show_labels else 14)
    content_width = x_bar + bar_block + MARGIN
    text_width = max(
        [title_font.getlength(title)] + [subtitle_font.getlength(s) for s in subtitles]
    )
    width = int(min(max(content_width, text_width + 2 * MARGIN), HEATMAP_MAX_WIDTH))
    width = max(width, content_width)

    # Vertical layout, top to bottom.
    y_title = MARGIN
    y_subtitles = y_title + _text_height(title_font) + 6
    subtitle_step = _text_height(subtitle_font) + 4
    y_matrix = y_subtitles + subtitle_step * len(subtitles) + 22 + _text_height(small_font)
    y_x_labels = y_matrix + matrix_side + 6
    y_x_axis_title = y_x_labels + label_width + 10
    height = max(y_x_axis_title + axis_height + MARGIN, y_matrix + bar_height + MARGIN)

    canvas = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(canvas)
    text_room = width - 2 * MARGIN
    draw.text((MARGIN, y_title), _truncate(title, title_font, text_room), font=title_font, fill=INK)
    for index, subtitle in enumerate(subtitles):
        draw.text(
            (MARGIN, y_subtitles + index * subtitle_step),
            _truncate(subtitle, subtitle_font, text_room),
            font=subtitle_font,
            fill=MUTED,
        )

    _draw_cells(canvas, (x_matrix, y_matrix), counts, cell, grouped=bool(grouped_away))
    if show_labels:
        for i, text in enumerate(label_texts):
            fill = MUTED if shown[i] is None else INK
            y = y_matrix + i * cell + (cell - 1) / 2
            draw.text((x_labels_right, y), text, font=label_font, fill=fill, anchor="rm")
            draw.text(
                (x_support + support_width, y),
                support_texts[i],
                font=support_font,
                fill=MUTED,
                anchor="rm",
            )
        draw.text(
            (x_support + support_width, y_matrix - 6),
            support_header,
            font=small_font,
            fill=MUTED,
            anchor="rs",
        )
        _draw_column_names(canvas, (x_matrix, y_x_labels), label_texts, label_font, cell)

    # Axis titles, centred on the matrix.
    predicted = "predicted class"
    draw.text(
        (x_matrix + matrix_side / 2, y_x_axis_title),
        predicted,
        font=axis_font,
        fill=INK,
        anchor="ma",
    )
    true_length = int(np.ceil(axis_font.getlength("true class")))
    _paste_text(
        canvas,
        (x_axis_title, y_matrix + max(0, (matrix_side - true_length) // 2)),
        "true class",
        axis_font,
        INK,
        rotate=True,
    )

    _colour_bar(canvas, x_bar, y_matrix, bar_height, bar_width, bar_caption, small_font)
    return canvas


def _draw_cells(
    canvas: Image.Image,
    origin: tuple[int, int],
    counts: NDArray[np.int64],
    cell: int,
    *,
    grouped: bool,
) -> None:
    """The matrix at ``origin``: cells coloured by their share of the row, white grid lines,
    a line setting the last row and column ("other") apart if ``grouped``, counts in the cells
    where they fit."""
    x, y = origin
    n = len(counts)
    side = n * cell
    support = counts.sum(axis=1)
    shades = np.rint(counts / np.maximum(support, 1)[:, None] * 255).astype(np.intp)
    colours = PALETTE[shades]
    colours[support == 0] = NO_SUPPORT
    block = colours.repeat(cell, axis=0).repeat(cell, axis=1)
    if cell >= GRID_MIN_CELL:
        block[cell - 1 :: cell, :] = WHITE
        block[:, cell - 1 :: cell] = WHITE
    canvas.paste(Image.fromarray(block, "RGB"), (x, y))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((x - 1, y - 1, x + side - 1, y + side - 1), outline=FAINT)
    if grouped:
        edge = (n - 1) * cell - 1
        draw.line((x, y + edge, x + side - 2, y + edge), fill=MUTED, width=2)
        draw.line((x + edge, y, x + edge, y + side - 2), fill=MUTED, width=2)
    style = _count_texts(counts, cell)
    if style is None:
        return
    font, texts = style
    centre = (cell - 1) / 2
    for i, j in zip(*np.nonzero(counts)):
        fill = WHITE if _WHITE_TEXT[shades[i, j]] and support[i] else INK
        xy = (x + j * cell + centre, y + i * cell + centre)
        draw.text(xy, texts[int(counts[i, j])], font=font, fill=fill, anchor="mm")


def _draw_column_names(
    canvas: Image.Image,
    origin: tuple[int, int],
    texts: list[str],
    font: ImageFont.FreeTypeFont,
    cell: int,
) -> None:
    """``texts`` under the columns starting at ``origin``, reading bottom to top and ending at
    the top, next to the matrix: drawn across one strip, then turned a quarter."""
    length = int(max(font.getlength(text) for text in texts))
    strip = Image.new("L", (length + 1, len(texts) * cell))
    draw = ImageDraw.Draw(strip)
    for j, text in enumerate(texts):
        draw.text((length, j * cell + (cell - 1) / 2), text, font=font, fill=255, anchor="rm")
    strip = strip.transpose(Image.Transpose.ROTATE_90)
    x, y = origin
    canvas.paste(INK, (x, y, x + strip.width, y + strip.height), strip)


def _heatmap_notes(matrix: NDArray[np.int64], grouped_away: int, *, empty_rows: bool) -> list[str]:
    """The heatmap's subtitle lines: totals and accuracy of the whole ``matrix``, then what was
    grouped and what grey rows mean, where that applies."""
    classes = len(matrix)
    total = int(matrix.sum())
    summary = [f"{total:,} images", f"{classes:,} classes"]
    if total:
        summary.append(f"accuracy {int(np.trace(matrix)) / total:.1%}")
    notes = ["  \u00b7  ".join(summary)]
    if grouped_away:
        notes.append(
            f"Grouped: {classes - grouped_away} of {classes:,} classes shown (those most involved "
            f"in errors); the other {grouped_away:,} are summed as \u201cother\u201d."
        )
    if empty_rows:
        notes.append("Grey rows: no images of that true class.")
    return notes


def _colour_bar(
    canvas: Image.Image,
    x: int,
    y: int,
    height: int,
    width: int,
    caption: str,
    font: ImageFont.FreeTypeFont,
) -> None:
    """The palette as a vertical bar, 100% at the top, with ticks every 25%."""
    draw = ImageDraw.Draw(canvas)
    draw.text((x, y - 6), caption, font=font, fill=MUTED, anchor="ls")
    positions = np.linspace(1.0, 0.0, height)
    column = PALETTE[np.rint(positions * 255).astype(np.intp)]
    bar = np.repeat(column[:, None, :], width, axis=1)
    canvas.paste(Image.fromarray(bar, "RGB"), (x, y))
    draw.rectangle((x - 1, y - 1, x + width, y + height), outline=FAINT)
    for percent in (0, 25, 50, 75, 100):
        tick_y = y + round((1 - percent / 100) * (height - 1))
        draw.line((x + width, tick_y, x + width + 4, tick_y), fill=MUTED)
        draw.text((x + width + 7, tick_y), f"{percent}%", font=font, fill=MUTED, anchor="lm")


# --- contact sheet ---------------------------------------------------------------------------


@dataclass
class Tile:
    """One image of a contact sheet: ``image`` None if it could not be decoded."""

    image: Image.Image | None
    caption: str


@dataclass
class SheetRow:
    """One class of a contact sheet: a heading such as ``"3  cat  (412 images)"`` and its
    tiles, left to right."""

    heading: str
    tiles: list[Tile] = field(default_factory=list)


_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})  # Pillow formats that decode at reduced size
EXIF_ORIENTATION_TAG = 0x0112


def thumbnail(image: Image.Image, cell: int = DEFAULT_CELL) -> Image.Image:
    """``image`` as an RGB picture of at most ``cell`` x ``cell``, for a contact sheet.

    Any mode converts: alpha and transparency are composited on white; 16-bit samples keep
    their high byte (32-bit ones too, unless all fit in 8 bits); floats in [0, 1] are scaled to
    255, other floats stretched from their minimum to their maximum. The aspect ratio is kept: a
    larger image shrinks (Lanczos), and one at most half the cell grows by a whole factor,
    pixels kept sharp (NEAREST), so 28 x 28 digits are visible. The image is turned upright by
    its EXIF orientation; an unloaded JPEG is decoded at reduced size (``draft``, which changes
    ``image`` itself, as ``Image.thumbnail`` does). Decoding errors propagate (Pillow's
    ``OSError``); a caller shows such an image as a ``Tile`` with ``image=None``.

    The result is small (at most 48 KB of pixels at 128) and pickles as it is, so worker
    processes can return it.
    """
    if cell < 1:
        raise ValueError(f"a thumbnail cell is at least 1 pixel, not {cell}")
    if image.format in _DRAFT_FORMATS:
        image.draft(None, (cell, cell))
    orientation = image.getexif().get(EXIF_ORIENTATION_TAG)
    if orientation in range(2, 9):  # 1 is upright already
        image = ImageOps.exif_transpose(image)
    image = _eight_bit(image)
    size = _fitted(image.size, cell)
    if max(image.size) > cell:  # reducing_gap averages whole blocks first: fast, and as good
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    elif size != image.size:
        image = image.resize(size, Image.Resampling.NEAREST)
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, WHITE)
        flat.paste(image.convert("RGB"), mask=image.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit L, RGB or RGBA (RGBA when it has alpha or a transparent colour)."""
    if image.mode == "La":  # premultiplied: Pillow converts it to LA only
        image = image.convert("LA")
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image).astype(np.int64)
        if mode in _SIXTEEN_BIT_MODES or values.size == 0 or values.max() > 255:
            values = values.clip(0, 65535) >> 8
        return Image.fromarray(values.clip(0, 255).astype(np.uint8), "L")
    if mode == "F":
        floats = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low, high = (float(floats.min()), float(floats.max())) if floats.size else (0.0, 0.0)
        if not (0.0 <= low and high <= 1.0):
            floats = (floats - low) / (high - low) if high > low else floats * 0.0
        return Image.fromarray(np.rint(floats * 255).clip(0, 255).astype(np.uint8), "L")
    if mode in ("1", "L") and "transparency" not in image.info:
        return image.convert("L")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")


def _fitted(size: tuple[int, int], cell: int) -> tuple[int, int]:
    width, height = size
    scale = min(cell / width, cell / height)
    if scale < 1:
        return max(1, round(width * scale)), max(1, round(height * scale))
    factor = int(scale) if scale >= 2 else 1
    return width * factor, height * factor


def _placeholder(cell: int, font: ImageFont.FreeTypeFont) -> Image.Image:
    """A grey square crossed out in red, "cannot decode" under the cross."""
    tile = Image.new("RGB", (cell, cell), PLACEHOLDER)
    draw = ImageDraw.Draw(tile)
    label = "cannot decode"
    show_label = font.getlength(label) <= cell - 8 and cell >= 48
    radius = max(3, cell // 6)
    centre_x = cell // 2
    centre_y = cell // 2 - (_text_height(font) // 2 + 2 if show_label else 0)
    stroke = max(2, cell // 40)
    box = (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius)
    draw.ellipse(box, outline=PLACEHOLDER_MARK, width=stroke)
    arm = round(radius * 0.5)
    for dx in (-arm, arm):
        draw.line(
            (centre_x - dx, centre_y - arm, centre_x + dx, centre_y + arm),
            fill=PLACEHOLDER_MARK,
            width=stroke,
        )
    if show_label:
        draw.text(
            (centre_x, centre_y + radius + 6), label, font=font, fill=PLACEHOLDER_MARK, anchor="ma"
        )
    return tile


def contact_sheet(
    title: str, subtitle: str, rows: list[SheetRow], *, cell: int = DEFAULT_CELL
) -> Image.Image:
    """A contact sheet: a header band with ``title`` (the dataset) and ``subtitle`` (counts),
    then one section per row -- its heading, then its tiles left to right.

    Each tile's image is fitted into a ``cell`` x ``cell`` square (:func:`thumbnail`) and centred
    on a neutral background, with its caption under it, cut with an ellipsis to the cell's width.
    A ``None`` image is a grey square crossed out in red ("cannot decode"). Rows may have
    different lengths: the sheet is as wide as the longest (and at least ``SHEET_MIN_WIDTH``);
    a row with no tiles says "no images".
    """
    if cell < 16:
        raise ValueError(f"a contact sheet cell is at least 16 pixels, not {cell}")
    title_font, subtitle_font, heading_font = _font(22), _font(13), _font(15)
    caption_font = _font(12 if cell >= 96 else 11 if cell >= 64 else 10)
    caption_height = _text_height(caption_font)
    heading_height = _text_height(heading_font)
    widest = max((len(row.tiles) for row in rows), default=0)
    tiles_width = widest * cell + max(0, widest - 1) * TILE_GAP
    width = max(SHEET_MIN_WIDTH, tiles_width + 2 * MARGIN)
    text_room = width - 2 * MARGIN

    band_height = MARGIN + _text_height(title_font) + 6 + _text_height(subtitle_font) + 18
    section_tiles = cell + 5 + caption_height
    section_empty = _text_height(caption_font) + 4
    sections = [
        heading_height + 8 + (section_tiles if row.tiles else section_empty) for row in rows
    ]
    height = band_height + sum(sections) + ROW_GAP * (len(rows) + 1) + MARGIN - ROW_GAP

    canvas = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, width - 1, band_height - 1), fill=BAND)
    draw.line((0, band_height - 1, width - 1, band_height - 1), fill=FAINT)
    draw.text((MARGIN, MARGIN), _truncate(title, title_font, text_room), font=title_font, fill=INK)
    draw.text(
        (MARGIN, MARGIN + _text_height(title_font) + 6),
        _truncate(subtitle, subtitle_font, text_room),
        font=subtitle_font,
        fill=MUTED,
    )

    placeholder: Image.Image | None = None
    y = band_height + ROW_GAP
    for index, (row, section) in enumerate(zip(rows, sections)):
        if index:  # a hairline halfway between sections
            line_y = y - ROW_GAP // 2 - 1
            draw.line((MARGIN, line_y, width - MARGIN - 1, line_y), fill=FAINT)
        draw.text(
            (MARGIN, y),
            _truncate(row.heading, heading_font, text_room),
            font=heading_font,
            fill=INK,
        )
        top = y + heading_height + 8
        if not row.tiles:
            draw.text((MARGIN, top), "no images", font=caption_font, fill=MUTED)
        for column, tile in enumerate(row.tiles):
            left = MARGIN + column * (cell + TILE_GAP)
            if tile.image is None:
                if placeholder is None:
                    placeholder = _placeholder(cell, caption_font)
                canvas.paste(placeholder, (left, top))
            else:
                draw.rectangle((left, top, left + cell - 1, top + cell - 1), fill=TILE_BACKGROUND)
                picture = thumbnail(tile.image, cell)
                offset = ((cell - picture.width) // 2, (cell - picture.height) // 2)
                canvas.paste(picture, (left + offset[0], top + offset[1]))
            caption = _truncate(tile.caption, caption_font, cell)
            draw.text(
                (left + cell / 2, top + cell + 5),
                caption,
                font=caption_font,
                fill=MUTED,
                anchor="ma",
            )
        y += section + ROW_GAP
    return canvas


# --- encoding --------------------------------------------------------------------------------


def encode_image(image: Image.Image, ext: str) -> bytes:
    """``image`` encoded for a file ending in ``ext`` (``.png``, ``.jpg`` or ``.jpeg``, any
    case): PNG without the slow ``optimize`` pass, JPEG at quality ``JPEG_QUALITY``. The same
    image gives the same bytes."""
    fmt = IMAGE_FORMATS.get(ext.lower())
    if fmt is None:
        raise UsageError(
            f"cannot write a {ext or 'extension-less'!r} picture",
            hint="name the output .png, .jpg or .jpeg",
        )
    buffer = io.BytesIO()
    if fmt == "JPEG":
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()

"""Commands that show what a dataset holds: stats (with leakage between splits) and
preview (a contact sheet)."""

from __future__ import annotations

import click

from imgfmt.cli._common import (
    EXIT_PROBLEMS,
    FILE,
    FOLDER,
    IMAGE_OUT,
    LIST_IN,
    emit,
    exit_skipped,
    json_option,
    progress,
    root_for,
    workers_option,
)

#: Mirrors ``imgfmt.ops.stats.DEFAULT_NEAR`` and ``DEFAULT_MAX_EXAMPLES`` (not imported:
#: ``--help`` stays fast).
DEFAULT_NEAR = 4
DEFAULT_MAX_EXAMPLES = 20


def root_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--root",
        default=None,
        metavar="PATH",
        type=FOLDER,
        help="Folder the .lst paths are relative to (default: each list's folder).",
    )(func)


def classes_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--classes",
        "class_map",
        default=None,
        metavar="PATH",
        type=FILE,
        help="Class map (label<TAB>name) for class names; default: found beside each input.",
    )(func)


@click.command("stats", short_help="Counts, sizes and formats per input; leakage between inputs.")
@click.argument("paths", nargs=-1, required=True, metavar="IN...", type=LIST_IN)
@click.option(
    "--near",
    type=click.IntRange(0, 16),
    default=DEFAULT_NEAR,
    show_default=True,
    metavar="BITS",
    help="Near duplicates: difference hashes at most BITS of 64 apart (0: same picture hash only).",
)
@click.option(
    "--exact-only",
    is_flag=True,
    help="Compare inputs by image bytes only: faster, no image is decoded.",
)
@click.option(
    "--max-examples",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_EXAMPLES,
    show_default=True,
    metavar="N",
    help="List at most N leaking pairs per pair of inputs (all are counted).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Images larger than N pixels are measured but not decoded for comparison "
    "(decompression-bomb guard; default 178956970, as pack).",
)
@root_option
@classes_option
@workers_option
@json_option
@click.pass_context
def stats_cmd(
    ctx: click.Context,
    paths: tuple[str, ...],
    near: int,
    exact_only: bool,
    max_examples: int,
    max_pixels: int | None,
    root: str | None,
    class_map: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Describe each input: images per class, image formats, width and height
    (min, quartiles, max), file sizes, labels per image, unreadable images.

    With several inputs (the outputs of split), also find leakage: images in
    two inputs, as the same bytes (exact) or the same picture stored otherwise
    (near: resized, re-encoded), each listed with both locations. Any format
    imgfmt reads, local or s3://.

    Exit status 0 when clean, 1 when leakage, unreadable images or damaged
    records were found (so CI can gate on it), 2 for usage errors.

    \b
    Examples:
      imgfmt stats data/train.rec
      imgfmt stats data/split_train.rec data/split_val.rec data/split_test.rec
      imgfmt stats data/photos_train.lst data/photos_val.lst --root photos/ --json
      imgfmt stats s3://bkt/train.rec s3://bkt/test.rec --exact-only
    """
    from imgfmt.images import DEFAULT_MAX_PIXELS
    from imgfmt.ops import stats

    with progress(ctx, "scanning") as (_set_total, advance):
        result = stats.stats(
            list(paths),
            root=root_for(ctx, root),
            class_map=class_map,
            near=None if exact_only else near,
            max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
            max_examples=max_examples,
            workers=workers,
            on_progress=advance,
        )
    emit(as_json, result.to_dict(), stats.format_summary(result))
    if result.leaks or result.problems:
        ctx.exit(EXIT_PROBLEMS)


#: Mirror ``imgfmt.ops.preview``'s defaults (not imported: ``--help`` stays fast).
DEFAULT_PER_CLASS = 8
DEFAULT_CELL = 128
DEFAULT_MAX_CLASSES = 50


def _class_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@click.command("preview", short_help="A contact sheet: N thumbnails per class.")
@click.argument("path", metavar="IN", type=LIST_IN)
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="SHEET",
    type=IMAGE_OUT,
    help="The contact sheet to write: .png or .jpg (local or s3://).",
)
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=DEFAULT_PER_CLASS,
    show_default=True,
    metavar="N",
    help="Images shown per class.",
)
@click.option(
    "--classes",
    default=None,
    metavar="LIST",
    callback=_class_list,
    help="Only these classes, by label or name, comma-separated (e.g. 0,3 or cat,dog).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    metavar="N",
    help="Seed of the choice of images: the same seed gives the same sheet.",
)
@click.option(
    "--cell",
    type=click.IntRange(32, 512),
    default=DEFAULT_CELL,
    show_default=True,
    metavar="PX",
    help="Thumbnail size in pixels.",
)
@click.option(
    "--class-map",
    default=None,
    metavar="PATH",
    type=FILE,
    help="Class map (label<TAB>name) for class names; default: found beside IN.",
)
@click.option(
    "--max-classes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CLASSES,
    show_default=True,
    metavar="N",
    help="Show at most N classes, the first in label order (choose others with --classes).",
)
@root_option
@click.option(
    "--allow-skip", is_flag=True, help="Exit 0 even if some images shown could not be decoded."
)
@workers_option
@json_option
@click.pass_context
def preview_cmd(
    ctx: click.Context,
    path: str,
    output: str,
    per_class: int,
    classes: list[str],
    seed: int,
    cell: int,
    class_map: str | None,
    max_classes: int,
    root: str | None,
    allow_skip: bool,
    workers: int | None,
    as_json: bool,
) -> None:
    """Draw a contact sheet of IN: N images per class, each captioned with its
    id, in rows headed by the class label and name, under a header with the
    dataset's name and counts. Any format imgfmt reads, local or s3://.

    The images are a seeded sample (the same --seed, the same sheet). A .rec
    with its .idx is read through the index in random order until each class
    is full, so a sheet of a large dataset on S3 reads about the records it
    shows. An image that cannot be decoded is drawn as a marked placeholder and
    named (exit status 3); the sheet is still written.

    \b
    Examples:
      imgfmt preview data/train.rec -o sheet.png
      imgfmt preview data/train.rec -o cats.jpg --classes cat,dog --per-class 16
      imgfmt preview data/photos_val.lst --root photos/ -o val.png --seed 7
      imgfmt preview s3://bkt/train.rec -o sheet.png
    """
    from imgfmt.ops import preview

    with progress(ctx, "thumbnails") as (_set_total, advance):
        result = preview.preview(
            path,
            output,
            per_class=per_class,
            classes=classes or None,
            seed=seed,
            root=root_for(ctx, root),
            class_map=class_map,
            cell=cell,
            max_classes=max_classes,
            workers=workers,
            on_progress=advance,
        )
    for line in preview.problem_lines(result):
        click.echo(f"warning: {line}", err=True)
    emit(as_json, result.to_dict(), preview.format_summary(result))
    exit_skipped(ctx, result.problems, "image was/images were", allow_skip)

"""Commands on image lists: lst-gen."""

from __future__ import annotations

import click

from imgfmt.cli._common import (
    FOLDER,
    OUTPUT_FILE,
    Settings,
    emit,
    exts_option,
    filter_options,
    json_option,
    path_filter,
)


@click.command("lst-gen", short_help="List an image folder into a .lst (im2rec --list).")
@click.argument("root", type=FOLDER)
@click.argument("prefix", type=OUTPUT_FILE)
@click.option("--recursive", is_flag=True, help="One class per sub-folder (im2rec --recursive).")
@exts_option
@filter_options
@click.option("--shuffle/--no-shuffle", default=True, show_default=True, help="Shuffle the list.")
@click.option(
    "--seed",
    type=int,
    default=100,
    show_default=True,
    metavar="N",
    help="Shuffle seed (im2rec: 100).",
)
@click.option(
    "--train-ratio",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    metavar="RATIO",
    help="Share of the images in PREFIX_train.lst (below 1: PREFIX_train and PREFIX_val lists).",
)
@click.option(
    "--test-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="RATIO",
    help="Share of the images in PREFIX_test.lst, taken first (as im2rec).",
)
@click.option(
    "--chunks",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Cut the list into N parts as im2rec does: PREFIX_0.lst ... PREFIX_{N-1}.lst.",
)
@json_option
@click.pass_context
def lst_gen(
    ctx: click.Context,
    root: str,
    prefix: str,
    recursive: bool,
    exts: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    shuffle: bool,
    seed: int,
    train_ratio: float,
    test_ratio: float,
    chunks: int,
    as_json: bool,
) -> None:
    """List the images under ROOT into PREFIX.lst (im2rec's --list), byte for byte
    as mxnet's im2rec.py writes it, plus a class map PREFIX.classes.tsv. PREFIX
    '-' writes the one list to stdout (no class map).

    \b
    Example:
      imgfmt lst-gen photos/ data/photos --recursive --train-ratio 0.8 --test-ratio 0.1
      -> data/photos_train.lst, data/photos_val.lst, data/photos_test.lst,
         data/photos.classes.tsv
    """
    from imgfmt.formats import lst

    result = lst.make_lists(
        root,
        prefix,
        recursive=recursive,
        exts=exts,
        select=path_filter(include, exclude),
        shuffle=shuffle,
        seed=seed,
        train_ratio=train_ratio,
        test_ratio=test_ratio,
        chunks=chunks,
    )
    summary = result.to_dict()
    lines = [f"{path}: {count} images" for path, count in result.counts.items()]
    if result.class_map_path is None:
        lines = [f"wrote {result.images} images, {len(result.classes)} classes, to stdout "
                 "(no class map: give a PREFIX for PREFIX.classes.tsv)"]  # fmt: skip
    else:
        lines.append(f"{result.class_map_path}: {len(result.classes)} classes")
    # With PREFIX '-' the list owns stdout: the summary goes to stderr.
    if prefix == "-":
        ctx.ensure_object(Settings).json_to_stderr = True
    emit(as_json, summary, "\n".join(lines), to_stderr=prefix == "-")

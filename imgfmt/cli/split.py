"""The split command: a .lst, .rec, manifest or .jsonl into train/val/test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from imgfmt.cli._common import (
    DRY_RUN_HEADER,
    LIST_IN,
    SPLIT_OUT,
    dry_run_option,
    emit,
    json_option,
    planned_folders,
    progress,
)
from imgfmt.text import count_of

if TYPE_CHECKING:
    from imgfmt.ops.split import SplitResult

#: Beyond this many classes the human summary gives counts per split only (--json has all).
MAX_CLASSES_SHOWN = 20


@click.command("split", short_help="Split a dataset into train/val/test, stratified by class.")
@click.argument("source", metavar="IN", type=LIST_IN)
@click.argument("out_prefix", metavar="OUT_PREFIX", type=SPLIT_OUT)
@click.option(
    "--train-ratio",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.8,
    show_default=True,
    metavar="RATIO",
    help="Share of each class for OUT_PREFIX_train.",
)
@click.option(
    "--test-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="RATIO",
    help="Share for OUT_PREFIX_test (written only if > 0); the rest goes to OUT_PREFIX_val.",
)
@click.option("--seed", type=int, default=100, show_default=True, metavar="N", help="Shuffle seed.")
@click.option(
    "--stratify/--no-stratify",
    default=True,
    show_default=True,
    help="Keep every class's proportion in each split (else cut the shuffled whole).",
)
@click.option(
    "--label-attribute",
    default=None,
    metavar="NAME",
    help="Manifest attribute holding the class (default: the one with a NAME-metadata).",
)
@dry_run_option
@json_option
@click.pass_context
def split_cmd(
    ctx: click.Context,
    source: str,
    out_prefix: str,
    train_ratio: float,
    test_ratio: float,
    seed: int,
    stratify: bool,
    label_attribute: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Split IN (a .lst, a .rec with its .idx, a manifest, a JSON Lines or a
    RecordIO-protobuf dataset) into OUT_PREFIX_train, OUT_PREFIX_val and
    OUT_PREFIX_test with IN's extension, as im2rec names them.

    Each class keeps its proportion in every split, within one item. Items are
    copied unchanged (list, manifest and JSON lines byte for byte, records
    without re-encoding, under their .idx keys) and keep their input order; every
    item lands in exactly one output. Same input, ratios and seed: same outputs.
    A class map found beside IN is copied to OUT_PREFIX.classes.tsv.
    --dry-run reads IN and plans the split, then prints the counts it would
    write, writing nothing.

    \b
    Examples:
      imgfmt split data/all.lst data/photos --train-ratio 0.8 --test-ratio 0.1
      -> data/photos_train.lst, data/photos_val.lst, data/photos_test.lst
      imgfmt split data/all.rec data/photos --dry-run   # counts only
      imgfmt split data/all.rec data/photos    # -> _train/_val .rec + .idx
      imgfmt split labels.manifest out/labels --label-attribute class
    """
    from imgfmt.ops import split

    with progress(ctx, "splitting", "item") as (set_total, advance):
        result = split.split_dataset(
            source,
            out_prefix,
            train_ratio=train_ratio,
            test_ratio=test_ratio,
            seed=seed,
            stratify=stratify,
            label_attribute=label_attribute,
            on_start=set_total,
            on_progress=advance,
            dry_run=dry_run,
        )
    if dry_run:
        emit(as_json, result.to_dict(), _plan(result))
        return
    lines = []
    for out in result.outputs:
        paths = f"{out.path} + {out.index}" if out.index else out.path
        line = f"wrote {paths}: {out.count}"
        if len(out.classes) <= MAX_CLASSES_SHOWN:
            line += " (" + ", ".join(f"{c}: {n}" for c, n in out.classes.items()) + ")"
        lines.append(line)
    if result.class_map:
        lines.append(f"class map: {result.class_map}")
    lines.append(_totals(result))
    emit(as_json, result.to_dict(), "\n".join(lines))


def _totals(result: SplitResult) -> str:
    per_split = ", ".join(f"{out.split} {out.count}" for out in result.outputs)
    how = "stratified by class" if result.stratified else "not stratified"
    return (
        f"{result.total_in} in, {result.total_out} out: {per_split} "
        f"({len(result.classes)} classes, {how}, seed {result.seed}); "
        "nothing lost, nothing duplicated"
    )


def _plan(result: SplitResult) -> str:
    """A split dry run's summary: the run's, said of what would be written."""
    lines = [DRY_RUN_HEADER, *planned_folders(result.folders)]
    for out in result.outputs:
        paths = " + ".join(p for p in (out.path, out.index, out.list) if p)
        line = f"would write {paths} ({count_of(out.count, 'images')}"
        if len(out.classes) <= MAX_CLASSES_SHOWN:
            line += "; " + ", ".join(f"{c}: {n}" for c, n in out.classes.items())
        lines.append(line + ")")
    if result.class_map_source:
        lines.append(
            f"would write {result.class_map} (class map, copied from {result.class_map_source})"
        )
    elif result.class_map:
        lines.append(f"class map: {result.class_map}")
    lines.append(_totals(result))
    return "\n".join(lines)

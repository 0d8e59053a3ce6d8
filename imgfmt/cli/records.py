"""Commands that make, open and convert datasets: pack, unpack and convert."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from imgfmt.cli._common import (
    DATASET_OUT,
    DRY_RUN_HEADER,
    FILE,
    FOLDER,
    LIST_IN,
    dry_run_option,
    emit,
    engine_options,
    exit_skipped,
    exts_option,
    filter_options,
    json_option,
    lazy,
    make_engine,
    parsed_by,
    path_filter,
    planned_folders,
    progress,
    root_for,
    workers_option,
)
from imgfmt.formats import DATASET_FORMATS
from imgfmt.text import count_of, human_bytes

if TYPE_CHECKING:
    from imgfmt.formats.base import IdSelection
    from imgfmt.ops.convert import ConvertResult
    from imgfmt.ops.pack import PackResult
    from imgfmt.ops.unpack import UnpackResult

#: im2rec's --quality defaults to 95 for both encodings; OpenCV clamps a PNG level to 0-9, so
#: 95 means level 9 there. We refuse out-of-range values instead, and default to the same effect
#: (imgfmt.images.DEFAULT_QUALITY; not imported, so that --help stays fast).
DEFAULT_QUALITY = {".jpg": 95, ".png": 9}

#: Beyond this many class folders a dry run of unpack names the first ones only (--json has all).
MAX_FOLDERS_SHOWN = 20


@click.command("pack", short_help="Pack a .lst or a folder into .rec+.idx, .jsonl or shards.")
@click.argument("source", type=LIST_IN)
@click.argument("out_rec", metavar="OUT", type=DATASET_OUT)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(DATASET_FORMATS),
    default=None,
    help="recordio: MXNet .rec + .idx (default; jsonlines when OUT ends in .jsonl, "
    "webdataset for .tar). jsonlines: one JSON object per image, bytes base64-encoded. "
    "recordio-protobuf: SageMaker dense float32 pixel tensors (needs --size). webdataset: "
    "tar shards OUT-000000.tar, ...",
)
@click.option(
    "--size",
    default=None,
    metavar="WxH",
    callback=parsed_by(lazy("formats.rio_protobuf", "parse_size")),
    help="recordio-protobuf: resize every image to exactly W x H pixels (e.g. 28x28).",
)
@click.option(
    "--root",
    default=None,
    metavar="PATH",
    type=FOLDER,
    help="Folder the .lst paths are relative to (default: the list's folder).",
)
@click.option("--pass-through", is_flag=True, help="Store each file's bytes unchanged (no decode).")
@click.option(
    "--resize",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Shorter edge becomes N pixels (0: keep the size).",
)
@click.option("--center-crop", is_flag=True, help="Crop the centre square before resizing.")
@click.option(
    "--quality",
    type=click.IntRange(0, 100),
    default=None,
    metavar="Q",
    help="JPEG quality 1-100 (default 95); with --encoding .png, the PNG compression level "
    "0-9 (default 9: im2rec's 95, as OpenCV clamps it).",
)
@click.option(
    "--encoding",
    type=click.Choice([".jpg", ".png", "jpg", "png"], case_sensitive=False),
    default=".jpg",
    show_default=True,
    callback=lambda _ctx, _param, value: "." + value.lower().lstrip("."),
    help="Encoding of re-encoded images (the dot is optional).",
)
@click.option(
    "--color",
    type=click.Choice(["1", "0", "-1"]),
    default="1",
    show_default=True,
    help="1 colour, 0 grayscale, -1 unchanged (alpha and bit depth kept).",
)
@click.option("--pack-label", is_flag=True, help="Store every label of multi-label lines.")
@click.option(
    "--chunks",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Cut the list into N parts as im2rec does: OUT_0.rec ... OUT_{N-1}.rec.",
)
@click.option(
    "--shard-records",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Shards of N images: OUT-00000-of-000NN.rec + .idx, ...; shard k holds list "
    "positions k*N to (k+1)*N-1, except that a remainder under N/2 joins the last shard "
    "(MXNet refuses a file smaller than its batch). Also writes OUT.combined.idx, the one "
    "index NVIDIA DALI reads all shards through.",
)
@click.option(
    "--shard-size",
    default=None,
    metavar="SIZE",
    callback=parsed_by(lazy("ops.pack", "parse_size")),
    help="Shards of about SIZE each (e.g. 256MB), named and indexed as with --shard-records.",
)
@engine_options("one task per shard: needs --shard-records")
@click.option(
    "--shuffle/--no-shuffle",
    default=True,
    show_default=True,
    help="For a folder SOURCE: shuffle the list it makes (seed --seed).",
)
@click.option("--seed", type=int, default=100, show_default=True, metavar="N", help="Shuffle seed.")
@exts_option
@filter_options
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Refuse images larger than N pixels (decompression-bomb guard; default 178956970).",
)
@click.option("--allow-skip", is_flag=True, help="Exit 0 even if some images were skipped.")
@workers_option
@dry_run_option
@json_option
@click.pass_context
def pack_cmd(
    ctx: click.Context,
    source: str,
    out_rec: str,
    fmt: str | None,
    size: tuple[int, int] | None,
    root: str | None,
    pass_through: bool,
    resize: int,
    center_crop: bool,
    quality: int | None,
    encoding: str,
    color: str,
    pack_label: bool,
    chunks: int,
    shard_records: int | None,
    shard_size: int | None,
    engine: str,
    ray_address: str | None,
    shuffle: bool,
    seed: int,
    exts: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_pixels: int | None,
    allow_skip: bool,
    workers: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Pack SOURCE (a .lst, or an image folder with one sub-folder per class)
    into OUT: OUT.rec and OUT.idx, MXNet RecordIO as im2rec.py writes it; or,
    with --format, a JSON Lines or SageMaker RecordIO-protobuf dataset.

    Bad images are skipped and reported; the exit status is then 3 unless
    --allow-skip. Outputs appear only when complete. --dry-run lists what would
    be written, with the images each output would hold, reading no image.

    \b
    Examples:
      imgfmt pack photos/ data/train.rec --resize 256 --quality 90
      imgfmt pack photos/ data/train.rec --shard-records 1000 --dry-run
      imgfmt pack data/train.lst data/train.rec --root photos/ --pass-through
      imgfmt pack photos/ data/test.jsonl --resize 224
      imgfmt pack digits/ data/digits.rec --format recordio-protobuf --size 28x28 --color 0
      imgfmt pack s3://bkt/train.lst s3://bkt/out/train.rec --shard-records 10000 --engine ray
    """
    from imgfmt import images
    from imgfmt.ops import pack

    # Options that do not fit together (the format's, pass-through's) are the library's to
    # find: its UsageError names them, and the command line shows them as flags (exit 2).
    kwargs: dict[str, Any] = {}
    if max_pixels is not None:
        kwargs["max_pixels"] = max_pixels
    options = images.ImageOptions(
        pass_through=pass_through,
        resize=resize,
        center_crop=center_crop,
        quality=quality if quality is not None else DEFAULT_QUALITY[encoding],
        encoding=encoding,
        color=int(color),
        **kwargs,
    )
    with progress(ctx, "packing") as (set_total, advance):
        result = pack.pack(
            source,
            out_rec,
            root=root_for(ctx, root),
            options=options,
            pack_label=pack_label,
            workers=workers,
            shard_size=shard_size,
            shard_records=shard_records,
            engine=make_engine(engine, ray_address),
            chunks=chunks,
            shuffle=shuffle,
            seed=seed,
            exts=exts,
            select=path_filter(include, exclude),
            on_start=set_total,
            on_progress=advance,
            fmt=fmt,
            size=size,
            dry_run=dry_run,
        )
    if dry_run:
        emit(as_json, result.to_dict(), _pack_plan(result))
        return
    human = [f"wrote {path}" for path in result.lists]
    indexes = dict(zip(result.outputs, result.indexes))
    for path in result.outputs:
        index = f" + {indexes[path]}" if path in indexes else ""
        human.append(f"wrote {path}{index}")
    for path in result.combined_indexes:
        human.append(f"wrote {path} (index of all {result.shards} shards, for NVIDIA DALI)")
    human.append(
        f"packed {result.packed}, skipped {len(result.skipped)}, "
        f"{human_bytes(result.bytes_written)} in {result.seconds:.1f} s"
    )
    emit(as_json, result.to_dict(), "\n".join(human))
    exit_skipped(ctx, len(result.skipped), "image was/images were", allow_skip)


def _pack_plan(result: PackResult) -> str:
    """A pack dry run's summary."""
    lines = [DRY_RUN_HEADER, *planned_folders(result.folders)]
    if result.class_map:
        lines.append(f"would write {result.class_map} (class map)")
    for path in result.lists:
        lines.append(f"would write {path} ({count_of(result.counts[path], 'images')})")
    lines += _planned_outputs(result)
    shards = "all shards" if result.shard_size else f"all {result.shards} shards"
    for path in result.combined_indexes:
        lines.append(f"would write {path} (index of {shards}, for NVIDIA DALI)")
    lines.append(f"would pack {count_of(result.packed, 'images')} (none read yet)")
    return "\n".join(lines)


@click.command("unpack", short_help="Write a dataset's images back to a folder, with a .lst.")
@click.argument("source", metavar="IN", type=FILE)
@click.argument("outdir", type=FOLDER)
@click.option(
    "--ids",
    default=None,
    callback=parsed_by(lazy("ops.unpack", "parse_ids")),
    metavar="IDS",
    help="Only these ids, e.g. 3,7,100-200 (a range takes the ids in it that exist; a single "
    "id that does not is an error).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, metavar="N", help="At most N records."
)
@click.option(
    "--classes",
    "class_map",
    default=None,
    metavar="PATH",
    type=FILE,
    help="Class map (label<TAB>name) to name folders; default: found beside IN.",
)
@click.option(
    "--allow-skip", is_flag=True, help="Exit 0 even if damaged records or lines were skipped."
)
@workers_option
@dry_run_option
@json_option
@click.pass_context
def unpack_cmd(
    ctx: click.Context,
    source: str,
    outdir: str,
    ids: IdSelection | None,
    limit: int | None,
    class_map: str | None,
    allow_skip: bool,
    workers: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Write the images of IN (a .rec, a RecordIO-protobuf .rec or a .jsonl) to
    OUTDIR, and a list OUTDIR/<IN stem>.lst that packs back to the same dataset.

    A .rec's images go to OUTDIR/<class>/<id>.<ext>, unchanged; a .jsonl's to
    OUTDIR/<their own path>; a RecordIO-protobuf file's pixel tensors become
    PNGs, OUTDIR/<class>/<record number>.png. --ids selects by id (record
    number for RecordIO-protobuf).

    A damaged record or line is reported and skipped, and every intact image is
    still written (the list names exactly those); the exit status is then 3
    unless --allow-skip. --dry-run reads IN (decoding nothing) and says how many
    images would go into which folders, writing nothing. A .jsonl's base64 and a
    RecordIO-protobuf file's PNGs are made by -j workers (default: all cores).

    \b
    Examples:
      imgfmt unpack data/train.rec unpacked/
      imgfmt unpack data/train.rec some/ --ids 3,7,100-200
      imgfmt unpack data/train.rec unpacked/ --limit 100 --dry-run
      imgfmt pack unpacked/train.lst again.rec --root unpacked/ --pass-through
      imgfmt unpack data/test.jsonl images/
      imgfmt unpack data/digits.rec digits/
    """
    from imgfmt.ops import unpack

    with progress(ctx, "unpacking") as (set_total, advance):
        result = unpack.unpack(
            source,
            outdir,
            ids=ids,
            limit=limit,
            class_map=class_map,
            on_start=set_total,
            on_progress=advance,
            dry_run=dry_run,
            workers=workers,
        )
    if dry_run:
        emit(as_json, result.to_dict(), _unpack_plan(result))
        return
    human = (
        f"wrote {count_of(result.written, 'images')} ({human_bytes(result.bytes_written)}) "
        f"in {count_of(len(result.classes), 'folders')} under {outdir}\nwrote {result.list_path}"
    )
    emit(as_json, result.to_dict(), human)
    exit_skipped(ctx, len(result.damaged), "damaged item was/damaged items were", allow_skip)


def _unpack_plan(result: UnpackResult) -> str:
    """An unpack dry run's summary."""
    from imgfmt import storage

    lines = [DRY_RUN_HEADER, *planned_folders(result.folders)]
    folders = list(result.classes.items())
    for folder, count in folders[:MAX_FOLDERS_SHOWN]:
        path = result.outdir if folder == "." else storage.join(result.outdir, folder)
        lines.append(f"would write {path.rstrip('/')}/ ({count_of(count, 'images')})")
    if len(folders) > MAX_FOLDERS_SHOWN:
        lines.append(f"... and {len(folders) - MAX_FOLDERS_SHOWN} more folders (--json lists all)")
    lines.append(f"would write {result.list_path} ({count_of(result.written, 'images')})")
    if result.class_map:
        lines.append(f"would write {result.class_map} (class map)")
    lines.append(
        f"would unpack {count_of(result.written, 'images')} "
        f"({human_bytes(result.bytes_written)}) into {count_of(len(folders), 'folders')} "
        f"under {result.outdir}; {len(result.damaged)} damaged"
    )
    return "\n".join(lines)


@click.command("convert", short_help="Convert between dataset formats (.rec, .jsonl, .tar, ...).")
@click.argument("source", metavar="IN", type=FILE)
@click.argument("out", metavar="OUT", type=DATASET_OUT)
@click.option(
    "--format",
    "to",
    type=click.Choice(DATASET_FORMATS),
    default=None,
    help="Format of OUT (default: from its extension: .rec recordio, .jsonl jsonlines, "
    ".tar webdataset).",
)
@click.option(
    "--from",
    "source_format",
    type=click.Choice(DATASET_FORMATS),
    default=None,
    help="Format of IN (default: from its name and content).",
)
@click.option(
    "--size",
    default=None,
    metavar="WxH",
    callback=parsed_by(lazy("formats.rio_protobuf", "parse_size")),
    help="recordio-protobuf: decode every image to exactly W x H pixels (e.g. 28x28).",
)
@click.option(
    "--shard-records",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="webdataset: N samples a shard (OUT-000000.tar, OUT-000001.tar, ...).",
)
@click.option(
    "--shard-size",
    default=None,
    metavar="SIZE",
    callback=parsed_by(lazy("ops.pack", "parse_size")),
    help="webdataset: roll over to the next shard before it passes SIZE (e.g. 256MB).",
)
@click.option(
    "--resize",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Re-encode: shorter edge becomes N pixels (0: keep the size).",
)
@click.option("--center-crop", is_flag=True, help="Re-encode: crop the centre square first.")
@click.option(
    "--quality",
    type=click.IntRange(0, 100),
    default=None,
    metavar="Q",
    help="Re-encode: JPEG quality 1-100 (default 95), PNG level 0-9 with --encoding .png.",
)
@click.option(
    "--encoding",
    type=click.Choice([".jpg", ".png", "jpg", "png"], case_sensitive=False),
    default=None,
    callback=lambda _ctx, _param, value: value and "." + value.lower().lstrip("."),
    help="Re-encode as JPEG or PNG.",
)
@click.option(
    "--color",
    type=click.Choice(["1", "0", "-1"]),
    default=None,
    help="Re-encode: 1 colour, 0 grayscale, -1 unchanged (recordio-protobuf: 1 or 0, default 0).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Refuse images larger than N pixels when decoding (default 178956970).",
)
@click.option(
    "--allow-skip", is_flag=True, help="Exit 0 even if some items were skipped or damaged."
)
@workers_option
@dry_run_option
@json_option
@click.pass_context
def convert_cmd(
    ctx: click.Context,
    source: str,
    out: str,
    to: str | None,
    source_format: str | None,
    size: tuple[int, int] | None,
    shard_records: int | None,
    shard_size: int | None,
    resize: int,
    center_crop: bool,
    quality: int | None,
    encoding: str | None,
    color: str | None,
    max_pixels: int | None,
    allow_skip: bool,
    workers: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Convert the dataset IN into OUT, from any format imgfmt reads to any it
    writes: MXNet RecordIO (.rec + .idx), SageMaker RecordIO-protobuf,
    JSON Lines (.jsonl) and WebDataset tar shards (.tar).

    Images go across unchanged where OUT's readers decode them, and are
    re-encoded where asked (--resize, --quality, ...) or needed (a GIF into a
    .rec, whose readers decode JPEG and PNG only). Ids, labels and paths are
    carried. Bad items are skipped and reported, damaged records or lines of IN
    too; the exit status is then 3 unless --allow-skip. OUT appears only when
    complete. --dry-run counts IN's items (through its index if it has one) and
    names the outputs, converting and writing nothing.

    \b
    Examples:
      imgfmt convert data/train.rec shards/train.tar --shard-records 10000
      imgfmt convert data/train.rec shards/train.tar --shard-records 10000 --dry-run
      imgfmt convert data/train.rec data/train.jsonl
      imgfmt convert shards/train.tar data/train.rec --resize 256
      imgfmt convert data/train.rec data/digits.rec --format recordio-protobuf --size 28x28
    """
    from imgfmt import images
    from imgfmt.ops import convert

    # The format's own options; the library says which do not fit (as flags, exit 2).
    given = {"size": size, "shard_records": shard_records, "shard_size": shard_size}
    write_options: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    image_options = None
    if resize or center_crop or quality is not None or encoding or color:
        enc = encoding or images.JPEG_ENCODING
        kwargs: dict[str, Any] = {} if max_pixels is None else {"max_pixels": max_pixels}
        image_options = images.ImageOptions(
            resize=resize,
            center_crop=center_crop,
            quality=quality if quality is not None else DEFAULT_QUALITY[enc],
            encoding=enc,
            color=int(color or "1"),
            **kwargs,
        )
    with progress(ctx, "converting", "item") as (set_total, advance):
        result = convert.convert(
            source,
            out,
            to=to,
            source_format=source_format,
            options=image_options,
            write_options=write_options,
            max_pixels=max_pixels if max_pixels is not None else images.DEFAULT_MAX_PIXELS,
            workers=workers,
            on_start=set_total,
            on_progress=advance,
            dry_run=dry_run,
        )
    if dry_run:
        emit(as_json, result.to_dict(), _convert_plan(result))
        return
    human = [f"wrote {path}" for path in result.outputs]
    if result.class_map:
        human.append(f"wrote {result.class_map} (the class map, copied)")
    human.append(
        f"converted {result.converted} ({result.source_format} -> {result.format}, "
        f"{result.reencoded} re-encoded), skipped {len(result.skipped)}, damaged "
        f"{len(result.damaged)}, {human_bytes(result.bytes_written)} in {result.seconds:.1f} s"
    )
    emit(as_json, result.to_dict(), "\n".join(human))
    problems = len(result.skipped) + len(result.damaged)
    exit_skipped(ctx, problems, "item was/items were", allow_skip)


def _planned_outputs(result: PackResult | ConvertResult) -> list[str]:
    """A dry run's lines for the dataset files: each with its index and images, or the
    pattern of shards cut by size."""
    lines = []
    indexes = dict(zip(result.outputs, result.indexes))
    for path in result.outputs:
        files = f"{path} + {indexes[path]}" if path in indexes else path
        images = count_of(result.counts.get(path, 0), "images")
        if result.shard_size:
            size = human_bytes(result.shard_size)
            lines.append(f"would write shards of about {size}, {files} ({images} in all)")
        else:
            lines.append(f"would write {files} ({images})")
    return lines


def _convert_plan(result: ConvertResult) -> str:
    """A convert dry run's summary."""
    how = "through its index" if result.counted_by == "index" else "by reading it"
    lines = [
        DRY_RUN_HEADER,
        f"{result.source}: {count_of(result.items, 'items')} ({result.source_format}, "
        f"counted {how})",
        *planned_folders(result.folders),
    ]
    lines += _planned_outputs(result)
    if result.class_map:
        lines.append(f"would write {result.class_map} (the class map, copied)")
    lines.append(
        f"would convert {count_of(result.converted, 'items')} ({result.source_format} -> "
        f"{result.format}); skip {len(result.skipped)}, damaged {len(result.damaged)} "
        "(no image decoded yet)"
    )
    return "\n".join(lines)

"""Commands on SageMaker augmented manifests: manifest-gen and manifest-to-lst."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from imgfmt.cli._common import FOLDER, LIST_IN, MANIFEST_IN, OUTPUT_FILE, json_option
from imgfmt.errors import UsageError


class _LibraryChecked(click.ParamType):
    """A parameter checked by an ``imgfmt.formats.manifest`` function; its UsageError exits 2."""

    def __init__(self, name: str, check_name: str) -> None:
        self.name = name
        self._check_name = check_name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        from imgfmt.formats import manifest

        try:
            return getattr(manifest, self._check_name)(value)
        except UsageError as err:
            self.fail(str(err), param, ctx)


LABEL_ATTRIBUTE = _LibraryChecked("attribute", "check_label_attribute")
S3_PREFIX = _LibraryChecked("s3-prefix", "check_s3_prefix")
JOB_NAME = _LibraryChecked("job-name", "check_job_name")
CREATION_DATE = _LibraryChecked("date", "parse_creation_date")


def _summary(as_json: bool, summary: dict[str, Any], human: str, to_stderr: bool) -> None:
    # With OUT "-" the manifest owns stdout, so the summary goes to stderr.
    text = json.dumps(summary, ensure_ascii=False) if as_json else human
    click.echo(text, err=to_stderr)


@click.command(
    "manifest-gen", short_help="Write a SageMaker augmented manifest for a folder or .lst."
)
@click.argument("source", metavar="SRC", type=LIST_IN)
@click.argument("out", metavar="OUT.manifest", type=OUTPUT_FILE)
@click.option(
    "--s3-prefix",
    type=S3_PREFIX,
    default=None,
    help="S3 folder the images are (or will be) uploaded to: source-ref is this + "
    "'/' + the image path relative to the root. Required for a local SRC.",
)
@click.option(
    "--label-attribute",
    type=LABEL_ATTRIBUTE,
    default="class",
    show_default=True,
    help="Name of the label attribute (AttributeNames: source-ref and this). "
    "Must not end in -ref or contain -metadata.",
)
@click.option(
    "--job-name",
    type=JOB_NAME,
    default="imgfmt",
    show_default=True,
    help='Written as job-name "labeling-job/NAME" in the metadata.',
)
@click.option(
    "--multi-label",
    is_flag=True,
    help="Write the multi-label form (label array, class-map). A .lst is then read as "
    "multi-hot: one 0/1 column per class.",
)
@click.option(
    "--root",
    default=None,
    metavar="PATH",
    type=FOLDER,
    help="For a folder SRC: the folder --s3-prefix stands for (default: SRC). "
    "A .lst's paths are already relative to its root and are used unchanged.",
)
@click.option(
    "--creation-date",
    type=CREATION_DATE,
    default=None,
    metavar="ISO-DATE",
    help="creation-date of every line, e.g. 2026-01-01T00:00:00 (UTC). "
    "Default: now. Fix it for reproducible output.",
)
@json_option
def manifest_gen(
    source: str,
    out: str,
    s3_prefix: str | None,
    label_attribute: str,
    job_name: str,
    multi_label: bool,
    root: str | None,
    creation_date: datetime | None,
    as_json: bool,
) -> None:
    """Write a SageMaker augmented manifest (JSON Lines, one image a line) for SRC,
    in the format SageMaker Ground Truth writes for image classification.

    SRC is an image folder with one sub-folder per class (listed in im2rec's
    order, not shuffled; class names are the folder names) or a .lst (class
    names from its class map PREFIX.classes.tsv if there is one, else the class
    number). OUT - writes the manifest to stdout (the summary then goes to stderr).

    \b
    Examples:
      imgfmt manifest-gen photos/ data/train.manifest --s3-prefix s3://bucket/photos
      imgfmt manifest-gen data/train.lst - --s3-prefix s3://bucket/photos --label-attribute label
      imgfmt manifest-gen data/tags.lst tags.manifest --s3-prefix s3://bucket/p --multi-label
    """
    from imgfmt.formats import manifest

    result = manifest.make_manifest(
        source,
        out,
        s3_prefix=s3_prefix,
        label_attribute=label_attribute,
        job_name=job_name,
        multi_label=multi_label,
        root=root,
        creation_date=creation_date,
    )
    kind = "multi-label" if multi_label else "single-label"
    human = (
        f"wrote {result.lines} {kind} lines, {len(result.classes)} classes, "
        f"to {'stdout' if out == '-' else out}"
    )
    _summary(as_json, result.to_dict(), human, to_stderr=out == "-")


@click.command("manifest-to-lst", short_help="Turn an augmented manifest back into a .lst.")
@click.argument("source", metavar="MANIFEST", type=MANIFEST_IN)
@click.argument("prefix", type=OUTPUT_FILE)
@click.option(
    "--label-attribute",
    type=LABEL_ATTRIBUTE,
    default=None,
    help="The label attribute to read. Default: the key with a '<key>-metadata' sibling.",
)
@click.option(
    "--s3-prefix",
    type=S3_PREFIX,
    default=None,
    help="Strip this from each source-ref to get the .lst path. Default: the longest "
    "folder common to every source-ref.",
)
@json_option
def manifest_to_lst(
    source: str,
    prefix: str,
    label_attribute: str | None,
    s3_prefix: str | None,
    as_json: bool,
) -> None:
    """Turn an image classification manifest back into PREFIX.lst and a class map
    PREFIX.classes.tsv, so it can be packed (PREFIX '-': the list alone to stdout).
    Indices are 0, 1, ... in manifest order; multi-label lines become multi-hot
    lines (one 0/1 column per class).

    \b
    Examples:
      imgfmt manifest-to-lst output.manifest data/train --s3-prefix s3://bucket/photos
      imgfmt pack data/train.lst data/train.rec --root photos/
    """
    from imgfmt.formats import manifest

    result = manifest.manifest_to_lst(
        source, prefix, label_attribute=label_attribute, s3_prefix=s3_prefix
    )
    where = "stdout" if prefix == "-" else result.list_path
    human = f"{where}: {result.lines} images (paths relative to {result.s3_prefix})"
    if result.class_map_path is not None:
        human += f"\n{result.class_map_path}: {len(result.classes)} classes"
    _summary(as_json, result.to_dict(), human, to_stderr=prefix == "-")

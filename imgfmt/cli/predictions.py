"""The predictions command: batch transform output joined back to the images sent."""

from __future__ import annotations

import click

from imgfmt.cli._common import Settings, echo_json, json_option


@click.command("predictions")
@click.argument("pred", metavar="PRED")
@click.argument("source", metavar="SRC")
@click.option(
    "--classes",
    "class_map",
    default=None,
    help="Class map (label<TAB>name) for class names; default: found beside SRC.",
)
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="OUT.csv",
    help="Write one row per image (path, true_label, predicted, predicted_name, probability, "
    "top5) to OUT.csv; '-' for stdout (the summary then goes to stderr).",
)
@json_option
@click.pass_context
def predictions_cmd(
    ctx: click.Context,
    pred: str,
    source: str,
    class_map: str | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Join PRED, a batch transform output (application/jsonlines, lines of
    {"prediction": [p0, p1, ...]}, one per input record, in input order), to SRC,
    the .lst, manifest or JSON Lines dataset that was sent.

    Prints accuracy, top-5 accuracy and recall per class when SRC has true labels.
    A count mismatch or a malformed line is an error naming the line.

    \b
    Examples:
      imgfmt predictions test.jsonl.out data/test.lst
      imgfmt predictions test.jsonl.out data/test.lst -o rows.csv --json
      imgfmt predictions out/test.manifest.out test.manifest --classes data/all.classes.tsv
    """
    from imgfmt.ops import predictions

    to_stderr = output == "-"  # stdout holds the CSV
    ctx.ensure_object(Settings).json_to_stderr = to_stderr
    result = predictions.evaluate(pred, source, class_map=class_map, output=output)
    if as_json:
        echo_json(ctx, result.to_dict())
    else:
        click.echo(predictions.format_summary(result), err=to_stderr)

"""The predictions command: batch transform output joined back to the images sent."""

from __future__ import annotations

import click

from imgfmt.cli._common import (
    FILE,
    IMAGE_OUT,
    OUTPUT_FILE,
    PREDICTIONS_IN,
    Settings,
    echo_json,
    json_option,
    progress,
)

#: Mirrors ``imgfmt.ops.predictions.TOP_K`` (not imported: ``--help`` stays fast).
TOP_K = 5


@click.command("predictions", short_help="Join batch-transform output to the images: a report.")
@click.argument("pred", metavar="PRED", type=PREDICTIONS_IN)
@click.argument("source", metavar="SRC", type=FILE)
@click.option(
    "--classes",
    "class_map",
    default=None,
    metavar="PATH",
    type=FILE,
    help="Class map (label<TAB>name) for class names; default: found beside SRC.",
)
@click.option(
    "-o",
    "--output",
    default=None,
    type=OUTPUT_FILE,
    metavar="OUT.csv",
    help="Write one row per image (path, true_label, predicted, predicted_name, probability, "
    "top5) to OUT.csv; '-' for stdout (the summary then goes to stderr).",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=TOP_K,
    show_default=True,
    metavar="K",
    help="Top-k accuracy counts an image when its true class is among its K most probable.",
)
@click.option(
    "--confusion",
    "confusion_csv",
    default=None,
    type=OUTPUT_FILE,
    metavar="CM.csv",
    help="Write the confusion matrix as CSV (rows true, columns predicted, cells "
    "label:name); '-' for stdout.",
)
@click.option(
    "--plot",
    default=None,
    type=IMAGE_OUT,
    metavar="CM.png",
    help="Draw the confusion matrix as a heatmap image (.png or .jpg); over 40 classes, the "
    "39 most confused are shown and the rest grouped.",
)
@json_option
@click.pass_context
def predictions_cmd(
    ctx: click.Context,
    pred: str,
    source: str,
    class_map: str | None,
    output: str | None,
    top_k: int,
    confusion_csv: str | None,
    plot: str | None,
    as_json: bool,
) -> None:
    """Join PRED, a batch transform output (application/jsonlines, lines of
    {"prediction": [p0, p1, ...]}, one per input record, in input order), to SRC,
    the .lst, manifest or JSON Lines dataset that was sent.

    When SRC has true labels, prints a classification report: precision,
    recall, F1 and support per class, accuracy, macro and weighted averages
    (as scikit-learn's classification_report), top-k accuracy and the most
    frequent confusions. A count mismatch or a malformed line is an error
    naming the line.

    \b
    Examples:
      imgfmt predictions test.jsonl.out data/test.lst
      imgfmt predictions test.jsonl.out data/test.lst -o rows.csv --json
      imgfmt predictions test.jsonl.out data/test.lst --confusion cm.csv --plot cm.png
      imgfmt predictions out/test.manifest.out test.manifest --classes data/all.classes.tsv
    """
    from imgfmt.ops import predictions

    if output == "-" and confusion_csv == "-":
        raise click.UsageError("only one of -o and --confusion can be '-' (stdout)")
    to_stderr = "-" in (output, confusion_csv)  # stdout holds a CSV
    ctx.ensure_object(Settings).json_to_stderr = to_stderr
    with progress(ctx, "joining") as (_set_total, advance):
        result = predictions.evaluate(
            pred,
            source,
            class_map=class_map,
            output=output,
            top_k=top_k,
            confusion_csv=confusion_csv,
            plot=plot,
            on_progress=advance,
        )
    if as_json:
        echo_json(ctx, result.to_dict())
    else:
        click.echo(predictions.format_summary(result), err=to_stderr)

"""Batch transform predictions joined back to the images they were made for.

A SageMaker batch transform of an image classification model, with ``Accept:
application/jsonlines`` and ``AssembleWith: Line``, writes one line per input record, in
input order (docs/formats.md section 7)::

    {"prediction": [0.02, 0.91, 0.07]}

the probability of each class, by class index. :func:`evaluate` pairs line *n* with the
*n*-th image of the dataset that was sent (a ``.lst``, a manifest or a JSON Lines image
dataset), writes a row per image and sums up the images with a true label as a
classification report: per class precision, recall, F1 and support, accuracy, macro and
weighted averages (as scikit-learn's ``classification_report``; ``imgfmt.metrics``),
top-k accuracy, the most frequent confusions, and the confusion matrix as CSV and as a
heatmap image.

Choices:

- The predicted class is the index of the highest probability; a tie goes to the lower index
  (as ``numpy.argmax``). Top-k lists are ordered by probability, then index.
- Top-k accuracy counts an image when its true class is among its k most probable (all of
  them when there are fewer than k classes). Where probabilities tie at the k-th place the
  lower index is taken (scikit-learn's ``top_k_accuracy_score`` takes the higher one).
- The true label is the first label of a ``.lst`` line, the class index of a manifest line
  (the first, for multi-label lines) or the first label of a JSON Lines image. It must be a
  whole number naming one of the prediction's classes; anything else is an error, since no
  accuracy could be right.
- The report's classes are those that occur as a true or as a predicted label (as
  scikit-learn's); a class never predicted has precision 0, one never true recall 0.
- Nothing is guessed about a count mismatch (a missing line would shift every later pair):
  it is one error giving both counts.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from imgfmt import formats, storage
from imgfmt.errors import FormatError, UsageError, excerpt, not_utf8
from imgfmt.formats import lst
from imgfmt.formats.base import label_text
from imgfmt.storage import AtomicOutputs, open_input

if TYPE_CHECKING:
    from imgfmt.metrics import ClassificationReport

#: How many of the most probable classes the top-k column and accuracy consider, by default.
TOP_K = 5

#: The most frequent confusions listed in the summary.
TOP_CONFUSIONS = 10

#: Extensions the confusion matrix image may have.
PLOT_EXTENSIONS = (".png", ".jpg", ".jpeg")

#: The key of a batch transform output line (docs/formats.md section 7).
PREDICTION_KEY = "prediction"

#: The rows' columns, in order.
CSV_COLUMNS = ("path", "true_label", "predicted", "predicted_name", "probability", "top5")

#: How a prediction line must look, for error hints.
LINE_FORMAT = 'each line is {"prediction": [p0, p1, ...]}, one per input record, in order'

#: Longest excerpt of a bad line quoted in a message.
QUOTE_LIMIT = 60


@dataclass(frozen=True)
class SourceItem:
    """One image of the dataset that was sent: its path (or URI) and true label, if any."""

    path: str
    label: float | None


@dataclass
class PredictionsResult:
    """What :func:`evaluate` found. Accuracies are None when no image has a true label."""

    predictions: str
    source: str
    source_kind: str
    images: int = 0
    num_classes: int = 0
    labelled: int = 0
    correct: int = 0
    top_k_correct: int = 0
    top_k: int = TOP_K
    #: The classification report of the images with a true label (None without any).
    report: ClassificationReport | None = None
    names: dict[int, str] = field(default_factory=dict)
    output: str | None = None
    confusion_csv: str | None = None
    plot: str | None = None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def top_k_accuracy(self) -> float | None:
        return self.top_k_correct / self.labelled if self.labelled else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "predictions": self.predictions,
            "source": self.source,
            "source_kind": self.source_kind,
            "images": self.images,
            "num_classes": self.num_classes,
            "labelled": self.labelled,
            "correct": self.correct,
            "accuracy": self.accuracy,
            f"top{self.top_k}_correct": self.top_k_correct,
            f"top{self.top_k}_accuracy": self.top_k_accuracy,
            **self._report_dict(),
            "output": self.output,
            "confusion_csv": self.confusion_csv,
            "plot": self.plot,
        }

    def _report_dict(self) -> dict[str, Any]:
        if self.report is None:
            return {"per_class": [], "macro_avg": None, "weighted_avg": None, "confusions": []}
        report = self.report.to_dict(self.names)
        correct = dict(zip(self.report.labels, self.report.matrix.diagonal().tolist()))
        for row in report["per_class"]:
            row["correct"] = correct[row["label"]]
        confusions = [
            {"true": c.true, "true_name": self.names.get(c.true), "predicted": c.predicted,
             "predicted_name": self.names.get(c.predicted), "images": c.images}
            for c in self.report.top_confusions(TOP_CONFUSIONS)
        ]  # fmt: skip
        return {"per_class": report["per_class"], "macro_avg": report["macro_avg"],
                "weighted_avg": report["weighted_avg"], "confusions": confusions}  # fmt: skip


# --------------------------------------------------------------------------- predictions


def _quote(text: str) -> str:
    return excerpt(text.strip(), QUOTE_LIMIT)


def parse_prediction(raw: str, name: str, number: int) -> np.ndarray:
    """The probabilities of one output line (float64); ``FormatError`` naming ``name`` and
    the line."""
    where = f"line {number}"
    if not_utf8(raw):
        raise FormatError("not valid UTF-8", path=name, where=where, hint=LINE_FORMAT)
    if not raw.strip():
        raise FormatError("blank line", path=name, where=where, hint=LINE_FORMAT)
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FormatError(
            f"not valid JSON ({reason}): {_quote(raw)}", path=name, where=where, hint=LINE_FORMAT
        ) from None
    if not isinstance(obj, dict) or PREDICTION_KEY not in obj:
        raise FormatError(
            f'no "{PREDICTION_KEY}" in {_quote(raw)}', path=name, where=where, hint=LINE_FORMAT
        )
    values = obj[PREDICTION_KEY]
    if not isinstance(values, list):
        raise FormatError(
            f'"{PREDICTION_KEY}" is not an array of probabilities: {_quote(raw)}',
            path=name,
            where=where,
            hint=LINE_FORMAT,
        )
    if not values:
        raise FormatError(
            f'"{PREDICTION_KEY}" is an empty array', path=name, where=where, hint=LINE_FORMAT
        )
    # One pass in C for the usual line of floats; the slow path names the bad value.
    if all(type(v) is float or type(v) is int for v in values):  # noqa: E721 - bool is out
        array = np.asarray(values, dtype=np.float64)
        if np.isfinite(array).all():
            return array
    for position, value in enumerate(values):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or not math.isfinite(value):
            raise FormatError(
                f"probability {position} is {json.dumps(value)}, not a finite number",
                path=name,
                where=where,
                hint=LINE_FORMAT,
            )
    raise AssertionError("unreachable: a non-finite value was found above")


def iter_predictions(path: str) -> Iterator[np.ndarray]:
    """The probability vectors of a batch transform output, line by line, all the same length."""
    width = 0
    with open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape") as handle:
        for number, raw in enumerate(handle, start=1):
            values = parse_prediction(raw, path, number)
            if width and len(values) != width:
                raise FormatError(
                    f"{len(values)} probabilities, but line 1 has {width}",
                    path=path,
                    where=f"line {number}",
                    hint="every line must hold one probability per class",
                )
            width = len(values)
            yield values


def top_classes(
    probabilities: Sequence[float] | np.ndarray, k: int = TOP_K
) -> list[tuple[int, float]]:
    """The ``k`` most probable ``(class, probability)``, by probability then lower index."""
    values = np.asarray(probabilities, dtype=np.float64)
    if k < len(values):  # only the k largest need sorting: a cut at the k-th value first
        kth = np.partition(values, len(values) - k)[len(values) - k]
        candidates = np.flatnonzero(values >= kth)  # ties at the cut are all kept
    else:
        candidates = np.arange(len(values))
    order = candidates[np.lexsort((candidates, -values[candidates]))][:k]
    return [(int(i), float(values[i])) for i in order]


# --------------------------------------------------------------------------- sources


#: SRC extensions: what a batch transform could have been sent.
SOURCE_EXTENSIONS = (".lst", ".jsonl", ".json", ".manifest")


def read_source(path: str) -> tuple[str, Iterator[SourceItem], dict[int, str]]:
    """The format of ``path`` (``lst``, ``manifest`` or ``jsonlines``: by extension and
    content), its images in order, and the class names it holds itself (a manifest's)."""
    if not path.lower().endswith(SOURCE_EXTENSIONS):
        raise UsageError(
            f"cannot tell what {path!r} is from its extension",
            hint="SRC must be the .lst, manifest (.manifest, .json, .jsonl) or JSON Lines "
            "dataset that was sent",
        )
    if not path.lower().endswith(".lst"):
        with open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape") as handle:
            first = next((line for line in handle if line.strip()), "")
        if not first.lstrip().startswith("{"):
            raise FormatError(
                "the first line is not a JSON object",
                path=path,
                where="line 1",
                hint="SRC must be the .lst, manifest or JSON Lines dataset that was sent",
            )
    document = formats.for_check(path)
    listed, names = document.listing(path)
    items = (SourceItem(where, labels[0] if labels else None) for where, labels in listed)
    return document.name, items, names


# --------------------------------------------------------------------------- evaluation


def _label_text(value: float | None) -> str:
    return "" if value is None else label_text(value)


def _class_of(label: float, number: int, width: int, source: str) -> int:
    if not label.is_integer() or not 0 <= label < width:
        raise FormatError(
            f"true label {_label_text(label)} is not a class of the predictions (0 to {width - 1})",
            path=source,
            where=f"image {number + 1}",
            hint="the predictions must come from a model of these classes",
        )
    return int(label)


def _count(items: Iterable[Any]) -> int:
    return sum(1 for _ in items)


def _mismatch(predictions: str, source: str, n_pred: int, n_src: int) -> FormatError:
    return FormatError(
        f"{n_pred} prediction line{'s' if n_pred != 1 else ''} but {n_src} image"
        f"{'s' if n_src != 1 else ''} in {source}",
        path=predictions,
        hint="batch transform writes one line per input record, in input order: "
        "pass the dataset that was sent, complete",
    )


def evaluate(
    predictions: str,
    source: str,
    *,
    class_map: str | None = None,
    output: str | None = None,
    top_k: int = TOP_K,
    confusion_csv: str | None = None,
    plot: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PredictionsResult:
    """Join ``predictions`` (batch transform output) to ``source`` (the dataset sent).

    ``class_map``: a ``label<TAB>name`` file; default, the one found beside ``source``, else
    the names a manifest holds. ``output``: a CSV path (``-`` for stdout), one row per image
    with :data:`CSV_COLUMNS`. ``confusion_csv``: the confusion matrix as CSV (rows true,
    columns predicted; ``imgfmt.metrics``). ``plot``: the matrix as a heatmap image (``.png``
    or ``.jpg``; more than 40 classes are grouped). Files given are written together, whole,
    or not at all.
    """
    from imgfmt.metrics import Confusion

    if top_k < 1:
        raise UsageError(f"top_k must be at least 1, not {top_k}")
    if plot is not None and storage.splitext(plot)[1].lower() not in PLOT_EXTENSIONS:
        raise UsageError(f"cannot tell the image format of {plot!r}", hint="name it .png or .jpg")
    for path in (output, confusion_csv, plot):
        if path is not None and path != storage.STREAM:
            storage.ensure_output_folder(path)
    kind, items, names = read_source(source)
    map_path = class_map if class_map is not None else lst.find_class_map(source)
    if map_path is not None:
        names = lst.read_class_map(map_path)
    result = PredictionsResult(predictions, source, kind, top_k=top_k, names=names)
    confusion = Confusion()

    def rows() -> Iterator[list[str]]:
        pred_iter = iter_predictions(predictions)
        for number, item in enumerate(items):
            probabilities = next(pred_iter, None)
            if probabilities is None:
                raise _mismatch(predictions, source, number, number + 1 + _count(items))
            width = len(probabilities)
            result.num_classes = width
            top = top_classes(probabilities, top_k)
            predicted, probability = top[0]
            if item.label is not None:
                true = _class_of(item.label, number, width, source)
                result.labelled += 1
                confusion.add(true, predicted)
                result.correct += predicted == true
                if any(i == true for i, _p in top):
                    result.top_k_correct += 1
            result.images += 1
            if on_progress:
                on_progress(1)
            yield [
                item.path,
                _label_text(item.label),
                str(predicted),
                names.get(predicted, ""),
                repr(probability),
                ";".join(f"{i}:{p!r}" for i, p in top),
            ]
        extra = _count(pred_iter)
        if extra:
            raise _mismatch(predictions, source, result.images + extra, result.images)
        if result.images == 0:
            raise FormatError(
                "no images", path=source, hint="SRC must be the dataset that was sent"
            )

    with AtomicOutputs() as outputs:
        if output is None:
            for _row in rows():
                pass
        else:  # a file, or "-": standard output (storage.STREAM)
            _write_csv(outputs.open(output, "w"), rows())
            result.output = None if output == storage.STREAM else output
        if result.labelled:
            result.report = confusion.report()
            _write_matrix(result, outputs, confusion_csv, plot)
        elif confusion_csv or plot:
            raise FormatError(
                "no image has a true label: there is no confusion matrix to write",
                path=source,
                hint="drop --confusion and --plot, or pass the labelled dataset",
            )
    return result


def _write_matrix(
    result: PredictionsResult, outputs: AtomicOutputs, csv_path: str | None, plot: str | None
) -> None:
    report = result.report
    assert report is not None
    if csv_path is not None:
        report.write_confusion_csv(outputs.open(csv_path, "w"), result.names)
        result.confusion_csv = csv_path
    if plot is not None:
        from imgfmt import render

        title = f"{storage.basename(result.predictions)} against {storage.basename(result.source)}"
        image = render.confusion_heatmap(list(report.labels), result.names, report.matrix, title)
        outputs.open(plot, "wb").write(render.encode_image(image, storage.splitext(plot)[1]))
        result.plot = plot


def _write_csv(handle: IO[str], rows: Iterable[list[str]]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)


def format_summary(result: PredictionsResult) -> str:
    """The human summary: counts, accuracies, the classification report (as scikit-learn
    prints it) and the most frequent confusions."""
    lines = [f"wrote {path}" for path in (result.output, result.confusion_csv, result.plot)
             if path and path != "-"]  # fmt: skip
    lines.append(
        f"{result.images} image{'s' * (result.images != 1)}, {result.num_classes} "
        f"class{'es' * (result.num_classes != 1)}, "
        f"{result.labelled} with a true label ({os.path.basename(result.source)})"
    )
    report = result.report
    if report is None:
        return "\n".join(lines)
    k = result.top_k
    lines.append(f"accuracy {result.accuracy:.4f} ({result.correct}/{result.labelled})")
    lines.append(
        f"top-{k} accuracy {result.top_k_accuracy:.4f} ({result.top_k_correct}/{result.labelled})"
    )
    lines.append("")
    lines.append(report.to_text(result.names).rstrip("\n"))
    confusions = report.top_confusions(TOP_CONFUSIONS)
    if confusions:
        lines.append("")
        lines.append("most frequent confusions (true -> predicted: images):")
        for c in confusions:
            true = _class_text(c.true, result.names)
            predicted = _class_text(c.predicted, result.names)
            lines.append(f"  {true} -> {predicted}: {c.images}")
    return "\n".join(lines)


def _class_text(label: int, names: dict[int, str]) -> str:
    return f"{label} {names[label]}" if label in names else str(label)


__all__ = [
    "CSV_COLUMNS",
    "PredictionsResult",
    "SourceItem",
    "evaluate",
    "format_summary",
    "iter_predictions",
    "parse_prediction",
    "read_source",
    "top_classes",
]

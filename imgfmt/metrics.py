"""Classification metrics as scikit-learn computes them, counted one image at a time.

:class:`Confusion` counts ``(true, predicted)`` label pairs while a predictions file streams
(memory grows with the distinct pairs, at most classes squared, never with the images);
:meth:`Confusion.report` turns the counts into a :class:`ClassificationReport`: per class
precision, recall, F1 and support, accuracy, macro and weighted averages, the confusion
matrix and the most frequent confusions. No scikit-learn at run time; the tests check every
number against it.

What "as scikit-learn computes them" means, for multiclass ``y_true`` / ``y_pred`` of integer
labels (``tests/test_metrics.py`` holds each of these to scikit-learn's own functions):

- The labels are the sorted union of the true and the predicted labels (``unique_labels``),
  the rows and columns of ``confusion_matrix(y_true, y_pred)``: rows true, columns predicted.
- ``precision = tp / predicted``, ``recall = tp / support``,
  ``f1 = 2 tp / (support + predicted)``, as ``precision_recall_fscore_support(average=None)``.
- A zero denominator gives 0.0, as scikit-learn's default ``zero_division="warn"`` does,
  except that scikit-learn also emits an ``UndefinedMetricWarning`` there; this module stays
  silent. It happens for precision of a class never predicted (its recall and F1 are 0 as
  well) and for recall of a class never true (a label only the predictions name: support 0).
- Macro averages are the unweighted mean over the labels (support-0 labels included);
  weighted averages weigh each label by its support; both carry the total support.
- Accuracy is the fraction of images whose predicted label is the true one.

Top-k accuracy is not here: it needs each image's scores, not a label pair, and the caller
that ranks the scores counts it (:mod:`imgfmt.ops.predictions`).
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, Any, NamedTuple

import numpy as np
import numpy.typing as npt

#: Decimal places of :meth:`ClassificationReport.to_text`. scikit-learn's default is 2, which
#: cannot tell 0.991 from 0.994 on a 1000-class validation set.
REPORT_DIGITS = 4

#: The top-left cell of the confusion CSV: rows are true labels, columns predicted ones.
CSV_CORNER = "true\\predicted"

#: Between a label and its class name in a confusion CSV header cell (``3:cat``). The label
#: comes first and is a whole number, so splitting once on the first separator recovers both
#: even when a name holds the separator itself.
CSV_NAME_SEPARATOR = ":"

#: The text report's column headings and summary rows, as scikit-learn names them.
SCORE_HEADERS = ("precision", "recall", "f1-score", "support")
MACRO_HEADING = "macro avg"
WEIGHTED_HEADING = "weighted avg"
ACCURACY_HEADING = "accuracy"

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of one class, or their average over classes; ``support`` is
    the number of images truly of the class (for an average, of all classes)."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


class ConfusedPair(NamedTuple):
    """``images`` images of class ``true`` were predicted as ``predicted`` (another class)."""

    true: int
    predicted: int
    images: int


def _label(value: Any) -> int:
    """``value`` as an ``int``: Python and numpy integers pass, anything else is refused
    (a float label would silently merge 3.0 into 3 and break the sorted label order)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"class labels must be integers, not {type(value).__name__} {value!r}"
        ) from None


def _divide(numerator: IntArray, denominator: IntArray) -> FloatArray:
    """``numerator / denominator`` in float64, 0.0 where the denominator is 0 (scikit-learn's
    ``_prf_divide`` with its default ``zero_division``)."""
    result = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def _name(label: int, names: Mapping[int, str] | None) -> str | None:
    name = names.get(label) if names else None
    return name or None


def _csv_cell(label: int, names: Mapping[int, str] | None) -> str:
    name = _name(label, names)
    return f"{label}{CSV_NAME_SEPARATOR}{name}" if name else str(label)


@dataclass(frozen=True, eq=False)
class ClassificationReport:
    """What scikit-learn's ``classification_report`` and ``confusion_matrix`` say about a set
    of ``(true, predicted)`` labels; see the module's docstring for the definitions.

    ``per_class`` maps each label, in ascending order, to its :class:`Scores`;
    ``matrix[i, j]`` counts images of true label ``labels[i]`` predicted as ``labels[j]``.
    Build one with :meth:`Confusion.report` or :meth:`from_matrix`.
    """

    per_class: Mapping[int, Scores]
    accuracy: float
    macro_avg: Scores
    weighted_avg: Scores
    matrix: IntArray

    @classmethod
    def from_matrix(cls, labels: Sequence[int], matrix: npt.ArrayLike) -> ClassificationReport:
        """The report of a confusion ``matrix`` (rows true, columns predicted) whose rows and
        columns are ``labels``, distinct and ascending. ``ValueError`` if the shapes disagree
        or no image is counted."""
        label_list = [_label(label) for label in labels]
        counts = np.array(matrix, dtype=np.int64)
        if counts.shape != (len(label_list), len(label_list)):
            raise ValueError(
                f"a confusion matrix over {len(label_list)} labels must be "
                f"{len(label_list)}x{len(label_list)}, not {'x'.join(map(str, counts.shape))}"
            )
        if any(a >= b for a, b in zip(label_list, label_list[1:])):
            raise ValueError("the labels of a confusion matrix must be distinct and ascending")
        if (counts < 0).any():
            raise ValueError("a confusion matrix counts images: no entry can be negative")
        total = int(counts.sum())
        if total == 0:
            raise ValueError("no images counted: a report needs at least one")
        counts.setflags(write=False)

        true_positives = np.diagonal(counts)
        support = counts.sum(axis=1)
        predicted = counts.sum(axis=0)
        precision = _divide(true_positives, predicted)
        recall = _divide(true_positives, support)
        f1 = _divide(2 * true_positives, support + predicted)

        def average(weights: IntArray | None) -> Scores:
            # numpy.average, as scikit-learn's _nanaverage ends in, so the sums round alike.
            return Scores(
                float(np.average(precision, weights=weights)),
                float(np.average(recall, weights=weights)),
                float(np.average(f1, weights=weights)),
                total,
            )

        per_class = {
            label: Scores(float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(label_list, precision, recall, f1, support)
        }
        return cls(
            per_class=MappingProxyType(per_class),
            accuracy=int(true_positives.sum()) / total,
            macro_avg=average(None),
            weighted_avg=average(support),
            matrix=counts,
        )

    @property
    def labels(self) -> tuple[int, ...]:
        """The labels, ascending: the sorted union of the true and the predicted ones."""
        return tuple(self.per_class)

    @property
    def total(self) -> int:
        """How many images the report counts."""
        return self.macro_avg.support

    def top_confusions(self, n: int) -> list[ConfusedPair]:
        """The ``n`` most frequent mistakes (off-diagonal cells of :attr:`matrix`), by count
        descending, then true label, then predicted label; fewer when there are fewer."""
        if n < 0:
            raise ValueError(f"n must be 0 or more, not {n}")
        off_diagonal = self.matrix.copy()
        np.fill_diagonal(off_diagonal, 0)
        rows, columns = np.nonzero(off_diagonal)
        counts = off_diagonal[rows, columns]
        # nonzero() yields cells row by row, column by column, i.e. by (true, predicted)
        # ascending, and the sort is stable: only the count needs sorting.
        order = np.argsort(-counts, kind="stable")[:n]
        labels = self.labels
        return [ConfusedPair(labels[rows[i]], labels[columns[i]], int(counts[i])) for i in order]

    def to_dict(self, names: Mapping[int, str] | None = None) -> dict[str, Any]:
        """The report as JSON-ready values; ``names`` maps labels to class names (a label
        without one gets ``"name": null``)."""
        return {
            "images": self.total,
            "accuracy": self.accuracy,
            "per_class": [
                {"label": label, "name": _name(label, names), **scores.to_dict()}
                for label, scores in self.per_class.items()
            ],
            "macro_avg": self.macro_avg.to_dict(),
            "weighted_avg": self.weighted_avg.to_dict(),
        }

    def to_text(self, names: Mapping[int, str] | None = None, digits: int = REPORT_DIGITS) -> str:
        """The table scikit-learn's ``classification_report(y_true, y_pred, digits=digits,
        target_names=...)`` prints, character for character: a row per class, named by
        ``names`` where it has the label and by the label's number elsewhere.

        One difference, on purpose: supports are always whole numbers. When no prediction
        at all is right, scikit-learn's counts fall back to float zeros and it prints a
        support of ``12`` as ``12.0``.
        """
        row_names = [_name(label, names) or str(label) for label in self.per_class]
        width = max([len(name) for name in row_names] + [len(WEIGHTED_HEADING), digits])

        def row(heading: str, scores: Scores) -> str:
            values = (scores.precision, scores.recall, scores.f1)
            cells = "".join(f" {value:>9.{digits}f}" for value in values)
            return f"{heading:>{width}s} {cells} {scores.support:>9}\n"

        headers = "".join(f" {header:>9}" for header in SCORE_HEADERS)
        lines = [f"{'':>{width}s} {headers}\n\n"]
        lines += [row(name, scores) for name, scores in zip(row_names, self.per_class.values())]
        lines.append("\n")
        blank = f" {'':>9}"
        lines.append(
            f"{ACCURACY_HEADING:>{width}s} {blank}{blank}"
            f" {self.accuracy:>9.{digits}f} {self.total:>9}\n"
        )
        lines.append(row(MACRO_HEADING, self.macro_avg))
        lines.append(row(WEIGHTED_HEADING, self.weighted_avg))
        return "".join(lines)

    def write_confusion_csv(self, handle: IO[str], names: Mapping[int, str] | None = None) -> None:
        """Write :attr:`matrix` to ``handle`` as CSV.

        The first row is :data:`CSV_CORNER` then one cell per predicted label; each further
        row is one true label's cell then its counts. A label's cell is ``label:name``
        (:data:`CSV_NAME_SEPARATOR`) when ``names`` has a non-empty name for it, else the
        bare label: ``int(cell.split(":", 1)[0])`` reads the label back, and
        ``pandas.read_csv(path, index_col=0)`` gives the matrix.
        """
        cells = [_csv_cell(label, names) for label in self.per_class]
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([CSV_CORNER, *cells])
        for cell, counts in zip(cells, self.matrix.tolist()):
            writer.writerow([cell, *counts])


class Confusion:
    """Counts of ``(true, predicted)`` label pairs, one image at a time.

    Memory holds one count per distinct pair seen (at most the number of classes squared),
    whatever the number of images. ``add`` does no checking, to stay cheap in a per-image
    loop: labels must be integers (Python or numpy), and :meth:`report` refuses others.
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[int, int], int] = {}

    def add(self, true: int, predicted: int) -> None:
        """Count one image of class ``true`` that was predicted as ``predicted``."""
        pair = (true, predicted)
        self._counts[pair] = self._counts.get(pair, 0) + 1

    @property
    def counts(self) -> Mapping[tuple[int, int], int]:
        """A read-only view of the counts, by ``(true, predicted)``."""
        return MappingProxyType(self._counts)

    @property
    def total(self) -> int:
        """How many images have been added."""
        return sum(self._counts.values())

    def report(self) -> ClassificationReport:
        """The :class:`ClassificationReport` of the images added so far (adding more later
        does not change it). ``ValueError`` if none were, as scikit-learn refuses empty
        input; ``TypeError`` if a label is not an integer."""
        if not self._counts:
            raise ValueError("no images counted: a report needs at least one")
        pairs = [(_label(true), _label(predicted)) for true, predicted in self._counts]
        labels = sorted({label for pair in pairs for label in pair})
        position = {label: i for i, label in enumerate(labels)}
        rows = np.fromiter((position[true] for true, _ in pairs), np.intp, len(pairs))
        columns = np.fromiter((position[pred] for _, pred in pairs), np.intp, len(pairs))
        values = np.fromiter(self._counts.values(), np.int64, len(pairs))
        matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
        # add.at, not assignment: distinct keys can name one pair once made ints (an object
        # with __index__ is not equal to the int it stands for), and their counts must sum.
        np.add.at(matrix, (rows, columns), values)
        return ClassificationReport.from_matrix(labels, matrix)


__all__ = [
    "CSV_CORNER",
    "CSV_NAME_SEPARATOR",
    "REPORT_DIGITS",
    "ClassificationReport",
    "ConfusedPair",
    "Confusion",
    "Scores",
]

"""metrics: every number checked against scikit-learn itself, on edge cases, seeded random
label sets and hypothesis-drawn ones."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.utils.multiclass import unique_labels

from imgfmt.metrics import (
    CSV_CORNER,
    ClassificationReport,
    ConfusedPair,
    Confusion,
    Scores,
)

# scikit-learn's confusion_matrix warns about a single label; that is a case under test.
pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")

#: Floats must agree this closely (in practice they are bit-identical: same operations).
TOLERANCE = 1e-12


def report_of(y_true: Sequence[int], y_pred: Sequence[int]) -> ClassificationReport:
    confusion = Confusion()
    for true, predicted in zip(y_true, y_pred, strict=True):
        confusion.add(true, predicted)
    return confusion.report()


def close(ours: Sequence[float] | float, theirs: Sequence[float] | float) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)


def sklearn_report(y_true: Sequence[int], y_pred: Sequence[int], **options: object) -> object:
    """scikit-learn's classification_report with its default zero_division ("warn"): the
    semantics imgfmt.metrics copies, minus the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return classification_report(y_true, y_pred, **options)


def display_names(labels: Sequence[int], names: Mapping[int, str] | None) -> list[str]:
    return [(names or {}).get(label) or str(label) for label in labels]


def assert_matches_sklearn(
    y_true: Sequence[int], y_pred: Sequence[int], names: Mapping[int, str] | None = None
) -> ClassificationReport:
    report = report_of(y_true, y_pred)
    labels = list(report.labels)
    assert labels == unique_labels(y_true, y_pred).tolist()
    assert all(type(label) is int for label in labels)
    np.testing.assert_array_equal(report.matrix, confusion_matrix(y_true, y_pred))
    assert report.total == len(y_true)

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    close([report.per_class[label].precision for label in labels], precision)
    close([report.per_class[label].recall for label in labels], recall)
    close([report.per_class[label].f1 for label in labels], f1)
    assert [report.per_class[label].support for label in labels] == support.tolist()

    for average, ours in (("macro", report.macro_avg), ("weighted", report.weighted_avg)):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        close([ours.precision, ours.recall, ours.f1], [p, r, f])
        assert ours.support == len(y_true)
    close(report.accuracy, accuracy_score(y_true, y_pred))

    # classification_report(output_dict=True), key by key, from our JSON form.
    target_names = display_names(labels, names)
    theirs = sklearn_report(y_true, y_pred, output_dict=True, target_names=target_names)
    assert isinstance(theirs, dict)
    ours_dict = report.to_dict(names)
    json.dumps(ours_dict)  # JSON-ready: plain ints and floats, no numpy scalars
    assert set(theirs) == {*target_names, "accuracy", "macro avg", "weighted avg"}
    close(ours_dict["accuracy"], theirs["accuracy"])
    rows = [(name, row) for name, row in zip(target_names, ours_dict["per_class"])]
    rows += [("macro avg", ours_dict["macro_avg"]), ("weighted avg", ours_dict["weighted_avg"])]
    for name, row in rows:
        expected = theirs[name]
        close([row["precision"], row["recall"], row["f1"]], [expected[k] for k in PRF_KEYS])
        assert row["support"] == expected["support"]

    # The text table, character for character, at the module's 4 digits.
    expected_text = sklearn_report(y_true, y_pred, digits=4, target_names=target_names)
    assert isinstance(expected_text, str)
    if report.accuracy == 0:
        expected_text = whole_supports(expected_text)
    assert report.to_text(names) == expected_text
    return report


PRF_KEYS = ("precision", "recall", "f1-score")


def whole_supports(text: str) -> str:
    """scikit-learn's text with its supports printed as integers. When no prediction is
    right, its counts fall back to float zeros (the "pathological case" of
    multilabel_confusion_matrix) and the support column reads ``1.0``: the one place
    ClassificationReport.to_text differs, on purpose."""
    assert re.search(r"\d\.0$", text, flags=re.MULTILINE)
    return re.sub(
        r"(\d+)\.0$", lambda m: m.group(1).rjust(len(m.group(0))), text, flags=re.MULTILINE
    )


# --------------------------------------------------------------------------- hand cases


EDGE_CASES = {
    "one class only": ([3, 3, 3], [3, 3, 3]),
    "one image": ([7], [2]),
    "class only predicted (support 0)": ([0, 0, 1, 1], [0, 2, 1, 1]),
    "class only true (never predicted)": ([0, 1, 2, 2], [0, 1, 1, 1]),
    "labels not contiguous": ([0, 5, 999, 999, 5, 0, 0], [0, 999, 999, 5, 5, 0, 999]),
    "everything wrong": ([0, 1, 0, 1], [1, 0, 1, 0]),
    "negative labels": ([-1, 0, 7, -1], [-1, 7, 7, 0]),
    "two classes (sklearn's binary case)": ([1, 0, 1, 1], [1, 1, 1, 0]),
}


@pytest.mark.parametrize("y_true, y_pred", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases_match_sklearn(y_true: list[int], y_pred: list[int]) -> None:
    assert_matches_sklearn(y_true, y_pred)


@pytest.mark.parametrize("y_true, y_pred", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases_with_some_names_match_sklearn(y_true: list[int], y_pred: list[int]) -> None:
    labels = sorted(set(y_true) | set(y_pred))
    # Every other label named; one long name widens the text table's first column.
    names = {label: f"class-{label}" for label in labels[::2]}
    names[labels[0]] = "a rather long class name"
    assert_matches_sklearn(y_true, y_pred, names)


def test_worked_example() -> None:
    # true 0,0,1,1 / predicted 0,2,1,1: label 2 is only a prediction.
    report = report_of([0, 0, 1, 1], [0, 2, 1, 1])
    assert report.labels == (0, 1, 2)
    assert report.per_class[0] == Scores(precision=1.0, recall=0.5, f1=2 / 3, support=2)
    assert report.per_class[1] == Scores(precision=1.0, recall=1.0, f1=1.0, support=2)
    # Never true: recall 0/0 -> 0.0 (scikit-learn warns); precision 0/1.
    assert report.per_class[2] == Scores(precision=0.0, recall=0.0, f1=0.0, support=0)
    assert report.accuracy == 0.75
    assert report.macro_avg == Scores(2 / 3, 0.5, (2 / 3 + 1) / 3, 4)
    assert report.weighted_avg == Scores(1.0, 0.75, (2 * 2 / 3 + 2 * 1) / 4, 4)
    assert report.matrix.tolist() == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]


def test_numpy_labels_become_python_ints() -> None:
    confusion = Confusion()
    confusion.add(np.int64(5), np.int32(5))  # type: ignore[arg-type]
    confusion.add(5, np.uint16(999))  # type: ignore[arg-type]
    report = confusion.report()
    assert report.labels == (5, 999)
    assert all(type(label) is int for label in report.labels)
    assert len(confusion.counts) == 2  # numpy 5 and int 5 are one key
    json.dumps(report.to_dict())


def test_report_is_a_snapshot() -> None:
    confusion = Confusion()
    confusion.add(0, 0)
    report = confusion.report()
    confusion.add(0, 1)
    assert report.labels == (0,) and report.total == 1
    assert confusion.report().labels == (0, 1) and confusion.total == 2
    with pytest.raises(ValueError):
        report.matrix[0, 0] = 5  # read-only: the scores were computed from it


def test_memory_is_flat_in_the_number_of_images() -> None:
    confusion = Confusion()
    y_true = [i % 3 for i in range(30_000)]
    y_pred = [i // 7 % 3 for i in range(30_000)]
    for true, predicted in zip(y_true, y_pred):
        confusion.add(true, predicted)
    assert len(confusion.counts) == 9
    assert confusion.total == 30_000
    np.testing.assert_array_equal(confusion.report().matrix, confusion_matrix(y_true, y_pred))


def test_no_images_is_an_error() -> None:
    with pytest.raises(ValueError, match="no images counted"):
        Confusion().report()
    with pytest.raises(ValueError, match="no images counted"):
        ClassificationReport.from_matrix([0, 1], [[0, 0], [0, 0]])


def test_non_integer_labels_are_refused() -> None:
    confusion = Confusion()
    confusion.add(1.5, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="class labels must be integers, not float 1.5"):
        confusion.report()


def test_from_matrix_checks_its_input() -> None:
    with pytest.raises(ValueError, match="must be 2x2, not 2x3"):
        ClassificationReport.from_matrix([0, 1], [[1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="distinct and ascending"):
        ClassificationReport.from_matrix([1, 0], [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="negative"):
        ClassificationReport.from_matrix([0, 1], [[1, -1], [0, 1]])


def test_from_matrix_equals_counting() -> None:
    y_true, y_pred = EDGE_CASES["labels not contiguous"]
    counted = report_of(y_true, y_pred)
    rebuilt = ClassificationReport.from_matrix(counted.labels, confusion_matrix(y_true, y_pred))
    assert rebuilt.to_dict() == counted.to_dict()


# --------------------------------------------------------------------------- random cases


def random_labels(seed: int) -> tuple[list[int], list[int], np.ndarray]:
    """2,000 images of 50 classes with labels spread over 0..999; the first 5 classes are
    never predicted, the last 5 never true; about 60% of the predictions are right."""
    rng = np.random.default_rng(seed)
    classes = np.sort(rng.choice(1000, size=50, replace=False))
    y_true = rng.choice(classes[:45], size=2000)
    wrong = rng.choice(classes[5:], size=2000)
    y_pred = np.where(rng.random(2000) < 0.6, y_true, wrong)
    never_predicted = np.isin(y_pred, classes[:5])
    y_pred[never_predicted] = wrong[never_predicted]
    return y_true.tolist(), y_pred.tolist(), classes


@pytest.mark.parametrize("seed", range(5))
def test_random_cases_match_sklearn(seed: int) -> None:
    y_true, y_pred, classes = random_labels(seed)
    assert not set(classes[:5].tolist()) & set(y_pred)
    assert not set(classes[45:].tolist()) & set(y_true)
    names = {int(label): f"n{label:04d}" for label in classes[::3]}
    report = assert_matches_sklearn(y_true, y_pred, names)
    assert report.labels == tuple(classes.tolist())
    assert all(report.per_class[int(label)].precision == 0.0 for label in classes[:5])
    assert all(report.per_class[int(label)].support == 0 for label in classes[45:])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, 6), st.integers(-2, 6)), min_size=1, max_size=40))
def test_any_labels_match_sklearn(pairs: list[tuple[int, int]]) -> None:
    y_true = [true for true, _ in pairs]
    y_pred = [predicted for _, predicted in pairs]
    report = assert_matches_sklearn(y_true, y_pred)
    assert report.top_confusions(len(pairs)) == brute_force_confusions(y_true, y_pred)


# --------------------------------------------------------------------------- top confusions


def brute_force_confusions(y_true: list[int], y_pred: list[int]) -> list[ConfusedPair]:
    counts: dict[tuple[int, int], int] = {}
    for true, predicted in zip(y_true, y_pred):
        if true != predicted:
            counts[true, predicted] = counts.get((true, predicted), 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    return [ConfusedPair(true, predicted, n) for (true, predicted), n in ordered]


def test_top_confusions_order_count_then_true_then_predicted() -> None:
    pairs = [(5, 0)] * 3 + [(0, 9)] * 2 + [(9, 5)] * 2 + [(0, 5)] * 2 + [(9, 0)] + [(0, 0)] * 7
    report = report_of([t for t, _ in pairs], [p for _, p in pairs])
    assert report.top_confusions(10) == [
        ConfusedPair(5, 0, 3),
        ConfusedPair(0, 5, 2),
        ConfusedPair(0, 9, 2),
        ConfusedPair(9, 5, 2),
        ConfusedPair(9, 0, 1),
    ]
    assert report.top_confusions(2) == [(5, 0, 3), (0, 5, 2)]
    assert report.top_confusions(0) == []
    with pytest.raises(ValueError, match="0 or more"):
        report.top_confusions(-1)


def test_top_confusions_of_a_perfect_model_is_empty() -> None:
    assert report_of([1, 2, 3], [1, 2, 3]).top_confusions(5) == []


@pytest.mark.parametrize("seed", range(3))
def test_top_confusions_random(seed: int) -> None:
    y_true, y_pred, _classes = random_labels(seed)
    expected = brute_force_confusions(y_true, y_pred)
    report = report_of(y_true, y_pred)
    assert report.top_confusions(len(expected) + 10) == expected
    assert report.top_confusions(25) == expected[:25]


# --------------------------------------------------------------------------- confusion CSV


def read_confusion_csv(text: str) -> tuple[list[int], list[int], list[list[int]]]:
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    assert header[0] == CSV_CORNER
    columns = [int(cell.split(":", 1)[0]) for cell in header[1:]]
    true_labels = [int(row[0].split(":", 1)[0]) for row in body]
    assert [row[0] for row in body] == header[1:]
    return columns, true_labels, [[int(cell) for cell in row[1:]] for row in body]


def test_confusion_csv_layout() -> None:
    report = report_of([0, 5, 5, 12], [0, 5, 12, 12])
    out = io.StringIO()
    report.write_confusion_csv(out, {0: "cat", 12: 'dog: "big", hairy', 7: "unused"})
    assert out.getvalue() == (
        'true\\predicted,0:cat,5,"12:dog: ""big"", hairy"\n'
        "0:cat,1,0,0\n"
        "5,0,1,1\n"
        '"12:dog: ""big"", hairy",0,0,1\n'
    )


def test_confusion_csv_without_names() -> None:
    out = io.StringIO()
    report_of([2, 1], [1, 1]).write_confusion_csv(out)
    assert out.getvalue() == "true\\predicted,1,2\n1,1,0\n2,1,0\n"


@pytest.mark.parametrize("seed", range(3))
def test_confusion_csv_reads_back_as_sklearn_matrix(seed: int) -> None:
    y_true, y_pred, classes = random_labels(seed)
    names = {int(label): f"class {label}: n{label}" for label in classes[::2]}
    out = io.StringIO()
    report_of(y_true, y_pred).write_confusion_csv(out, names)
    columns, true_labels, matrix = read_confusion_csv(out.getvalue())
    assert columns == true_labels == unique_labels(y_true, y_pred).tolist()
    assert matrix == confusion_matrix(y_true, y_pred).tolist()

"""predictions: batch transform output joined to the dataset sent, with a known answer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import leftovers

from imgfmt.cli import cli
from imgfmt.errors import FormatError
from imgfmt.formats.jsonlines import JsonlFileWriter
from imgfmt.ops import predictions

# Until the command is registered in the real group: the same error boundary, this command only.

CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]

# (true label, probabilities); worked out by hand below.
CASES = [
    (0, [0.50, 0.10, 0.10, 0.10, 0.10, 0.05, 0.05]),  # predicted 0: right; top-5 yes
    (0, [0.05, 0.40, 0.20, 0.15, 0.10, 0.06, 0.04]),  # predicted 1: wrong; 0 is 7th: top-5 no
    (1, [0.10, 0.60, 0.10, 0.05, 0.05, 0.05, 0.05]),  # predicted 1: right; top-5 yes
    (2, [0.30, 0.20, 0.25, 0.10, 0.05, 0.05, 0.05]),  # predicted 0: wrong; 2 is 2nd: top-5 yes
    (2, [0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.40]),  # predicted 6: wrong; ties 0-3 follow: yes
    (5, [0.20, 0.20, 0.20, 0.20, 0.10, 0.05, 0.05]),  # tie -> 0: wrong; top-5 is 0-4: no
    (6, [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 1.00]),  # predicted 6: right; top-5 yes
    (6, [0.14, 0.14, 0.14, 0.14, 0.14, 0.15, 0.15]),  # tie -> 5: wrong; 5, 6, 0, 1, 2: yes
]
# accuracy 3/8; top-5 6/8. Predicted 0,1,1,0,6,0,6,5 against true 0,0,1,2,2,5,6,6:
# ant tp 1 of 3 predicted, 2 true; bee 1 of 2, 1; cat 0 of 0, 2; fox 0 of 1, 1; gnu 1 of 2, 2.
EXPECTED_PER_CLASS = [
    {"label": 0, "name": "ant", "precision": 1 / 3, "recall": 0.5, "f1": 0.4, "support": 2,
     "correct": 1},
    {"label": 1, "name": "bee", "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1,
     "correct": 1},
    {"label": 2, "name": "cat", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2,
     "correct": 0},
    {"label": 5, "name": "fox", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1,
     "correct": 0},
    {"label": 6, "name": "gnu", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2,
     "correct": 1},
]  # fmt: skip


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["predictions", *args], catch_exceptions=False)


def error_line(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    return lines[0]


def write_predictions(path: Path, cases: list = CASES) -> Path:
    path.write_text("".join(json.dumps({"prediction": p}) + "\n" for _t, p in cases))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """test.lst (with its class map beside it) and the batch transform output for it."""
    lst = tmp_path / "test.lst"
    lst.write_text(
        "".join(
            f"{i * 10}\t{true:f}\t{CLASSES[true]}/img{i}.jpg\n"
            for i, (true, _p) in enumerate(CASES)
        )
    )
    (tmp_path / "test.classes.tsv").write_text(
        "".join(f"{i}\t{name}\n" for i, name in enumerate(CLASSES))
    )
    return write_predictions(tmp_path / "test.jsonl.out"), lst


def test_known_answer_gives_exact_accuracy_top5_and_recall(dataset: tuple[Path, Path]) -> None:
    pred, lst = dataset
    result = predictions.evaluate(str(pred), str(lst))
    assert (result.images, result.labelled, result.num_classes) == (8, 8, 7)
    assert (result.correct, result.accuracy) == (3, 0.375)
    assert (result.top_k_correct, result.top_k_accuracy) == (6, 0.75)
    assert result.to_dict()["per_class"] == [pytest.approx(c) for c in EXPECTED_PER_CLASS]


def test_csv_rows_one_per_image(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    pred, lst = dataset
    out = tmp_path / "rows.csv"
    result = invoke(str(pred), str(lst), "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == list(predictions.CSV_COLUMNS)
    assert len(rows) == 9
    assert rows[1] == ["ant/img0.jpg", "0", "0", "ant", "0.5", "0:0.5;1:0.1;2:0.1;3:0.1;4:0.1"]
    assert rows[6] == ["fox/img5.jpg", "5", "0", "ant", "0.2", "0:0.2;1:0.2;2:0.2;3:0.2;4:0.1"]
    assert rows[8] == [
        "gnu/img7.jpg",
        "6",
        "5",
        "fox",
        "0.15",
        "5:0.15;6:0.15;0:0.14;1:0.14;2:0.14",
    ]
    assert leftovers(tmp_path) == []


def test_human_summary(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    pred, lst = dataset
    result = invoke(str(pred), str(lst))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "8 images, 7 classes, 8 with a true label (test.lst)\n"
        "accuracy 0.3750 (3/8)\n"
        "top-5 accuracy 0.7500 (6/8)\n"
        "\n"
        "              precision    recall  f1-score   support\n"
        "\n"
        "         ant     0.3333    0.5000    0.4000         2\n"
        "         bee     0.5000    1.0000    0.6667         1\n"
        "         cat     0.0000    0.0000    0.0000         2\n"
        "         fox     0.0000    0.0000    0.0000         1\n"
        "         gnu     0.5000    0.5000    0.5000         2\n"
        "\n"
        "    accuracy                         0.3750         8\n"
        "   macro avg     0.2667    0.4000    0.3133         8\n"
        "weighted avg     0.2708    0.3750    0.3083         8\n"
        "\n"
        "most frequent confusions (true -> predicted: images):\n"
        "  0 ant -> 1 bee: 1\n"
        "  2 cat -> 0 ant: 1\n"
        "  2 cat -> 6 gnu: 1\n"
        "  5 fox -> 0 ant: 1\n"
        "  6 gnu -> 5 fox: 1\n"
    )


def test_json_summary(dataset: tuple[Path, Path]) -> None:
    pred, lst = dataset
    result = invoke(str(pred), str(lst), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["accuracy"] == 0.375 and summary["top5_accuracy"] == 0.75
    assert (summary["correct"], summary["top5_correct"], summary["labelled"]) == (3, 6, 8)
    assert summary["per_class"] == [pytest.approx(c) for c in EXPECTED_PER_CLASS]
    assert summary["confusions"][0] == {"true": 0, "true_name": "ant", "predicted": 1,
                                        "predicted_name": "bee", "images": 1}  # fmt: skip
    assert summary["source_kind"] == "lst" and summary["output"] is None


def test_csv_to_stdout_moves_the_summary_to_stderr(dataset: tuple[Path, Path]) -> None:
    pred, lst = dataset
    result = invoke(str(pred), str(lst), "-o", "-", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ",".join(predictions.CSV_COLUMNS)
    assert len(result.stdout.splitlines()) == 9
    assert json.loads(result.stderr)["accuracy"] == 0.375


def test_classes_option_overrides_the_map_beside_src(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, lst = dataset
    other = tmp_path / "other.tsv"
    other.write_text("".join(f"{i}\tC{i}\n" for i in range(7)))
    summary = json.loads(invoke(str(pred), str(lst), "--classes", str(other), "--json").stdout)
    assert [c["name"] for c in summary["per_class"]] == ["C0", "C1", "C2", "C5", "C6"]


def test_manifest_source_takes_names_from_its_metadata(tmp_path: Path) -> None:
    src = tmp_path / "test.manifest"
    lines = []
    for i, (true, _p) in enumerate(CASES):
        meta = {
            "class-name": CLASSES[true],
            "confidence": 1.0,
            "type": "groundtruth/image-classification",
            "job-name": "labeling-job/x",
            "human-annotated": "yes",
            "creation-date": "2026-01-01T00:00:00.000000",
        }
        obj = {"source-ref": f"s3://b/{i}.jpg", "class": true, "class-metadata": meta}
        lines.append(json.dumps(obj) + "\n")
    src.write_text("".join(lines))
    pred = write_predictions(tmp_path / "out.jsonl")
    result = predictions.evaluate(str(pred), str(src))
    assert result.source_kind == "manifest"
    assert (result.accuracy, result.top_k_accuracy) == (0.375, 0.75)
    assert result.to_dict()["per_class"] == [pytest.approx(c) for c in EXPECTED_PER_CLASS]


def test_jsonlines_source(tmp_path: Path) -> None:
    src = tmp_path / "test.jsonl"
    with JsonlFileWriter(str(src)) as writer:
        for i, (true, _p) in enumerate(CASES):
            writer.write(i, float(true), f"{CLASSES[true]}/{i}.jpg", b"\xff\xd8")
    pred = write_predictions(tmp_path / "out.jsonl")
    out = tmp_path / "rows.csv"
    result = predictions.evaluate(str(pred), str(src), output=str(out))
    assert result.source_kind == "jsonlines" and result.output == str(out)
    assert (result.correct, result.top_k_correct) == (3, 6)
    assert [c["name"] for c in result.to_dict()["per_class"]] == [None] * 5  # no class map
    assert list(csv.reader(out.open()))[2][:4] == ["ant/1.jpg", "0", "1", ""]


def test_fewer_than_five_classes_top5_covers_them_all(tmp_path: Path) -> None:
    lst = tmp_path / "t.lst"
    lst.write_text("0\t1.000000\ta.jpg\n1\t0.000000\tb.jpg\n")
    pred = write_predictions(tmp_path / "p.out", [(1, [0.9, 0.1]), (0, [0.3, 0.7])])
    result = predictions.evaluate(str(pred), str(lst))
    assert (result.accuracy, result.top_k_accuracy) == (0.0, 1.0)


# --------------------------------------------------------------------------- errors


def test_fewer_predictions_than_images(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    pred, lst = dataset
    write_predictions(pred, CASES[:6])
    out = tmp_path / "rows.csv"
    assert error_line(invoke(str(pred), str(lst), "-o", str(out))) == (
        f"Error: {pred}: 6 prediction lines but 8 images in {lst} (batch transform writes one "
        "line per input record, in input order: pass the dataset that was sent, complete)"
    )
    assert not out.exists() and leftovers(tmp_path) == []


def test_more_predictions_than_images(dataset: tuple[Path, Path]) -> None:
    pred, lst = dataset
    write_predictions(pred, CASES + CASES[:1])
    assert error_line(invoke(str(pred), str(lst))).startswith(
        f"Error: {pred}: 9 prediction lines but 8 images in {lst} ("
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON (Expecting value: line 1 column 1 (char 0)): 'not json'"),
        ('{"predictions": [0.5, 0.5]}', """no "prediction" in '{"predictions": [0.5, 0.5]}'"""),
        ('{"prediction": 0.5}', """"prediction" is not an array of probabilities"""),
        ('{"prediction": []}', '"prediction" is an empty array'),
        ('{"prediction": [0.5, "x", 0.1, 0, 0, 0, 0]}', 'probability 1 is "x", not a finite'),
        ('{"prediction": [0.5, true, 0.1, 0, 0, 0, 0]}', "probability 1 is true, not a finite"),
        ('{"prediction": [0.5, NaN, 0.1, 0, 0, 0, 0]}', "probability 1 is NaN, not a finite"),
        ("", "blank line"),
        ('{"prediction": [0.5, 0.5]}', "2 probabilities, but line 1 has 7"),
    ],
)
def test_a_malformed_line_is_one_error_naming_it(
    dataset: tuple[Path, Path], line: str, message: str
) -> None:
    pred, lst = dataset
    text = pred.read_text().splitlines()
    text[2] = line
    pred.write_text("\n".join(text) + "\n")
    assert error_line(invoke(str(pred), str(lst))).startswith(f"Error: {pred}: line 3: {message}")


def test_a_true_label_outside_the_predictions_is_an_error(tmp_path: Path) -> None:
    lst = tmp_path / "t.lst"
    lst.write_text("0\t0.000000\ta.jpg\n1\t2.000000\tb.jpg\n")
    pred = write_predictions(tmp_path / "p.out", [(0, [0.9, 0.1]), (0, [0.3, 0.7])])
    with pytest.raises(FormatError) as err:
        predictions.evaluate(str(pred), str(lst))
    assert str(err.value) == (
        f"{lst}: image 2: true label 2 is not a class of the predictions (0 to 1) "
        "(the predictions must come from a model of these classes)"
    )


def test_a_source_that_is_no_dataset(tmp_path: Path) -> None:
    src = tmp_path / "x.jsonl"
    src.write_text("hello\n")
    pred = write_predictions(tmp_path / "p.out", CASES[:1])
    assert error_line(invoke(str(pred), str(src))) == (
        f"Error: {src}: line 1: the first line is not a JSON object (SRC must be the .lst, "
        "manifest or JSON Lines dataset that was sent)"
    )


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["predictions", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output
    assert "imgfmt predictions" in result.output


# --------------------------------------------------------------------------- scikit-learn


def _random_case(tmp_path: Path, classes: int, images: int, seed: int) -> tuple[Path, Path, list]:
    """A .lst and its predictions: random probabilities (no ties) leaning to the truth for
    most images, some classes never true, one never predicted."""
    import numpy as np

    rng = np.random.default_rng(seed)
    truths = rng.integers(0, classes - 5, size=images)  # the last 5 classes are never true
    scores = rng.random((images, classes))
    right = rng.random(images) < 0.6
    scores[right, truths[right]] += 1.0
    scores[:, 1] = 0  # class 1 is never predicted, nor among the top 3
    scores /= scores.sum(axis=1, keepdims=True)
    lst = tmp_path / "r.lst"
    lst.write_text("".join(f"{i}\t{t}\timg{i}.jpg\n" for i, t in enumerate(truths)))
    pred = write_predictions(tmp_path / "r.out", [(t, p.tolist()) for t, p in zip(truths, scores)])
    return pred, lst, [truths, scores]


@pytest.mark.parametrize("top_k", [1, 3, 5])
def test_the_report_equals_scikit_learn_on_50_classes(tmp_path: Path, top_k: int) -> None:
    from sklearn import metrics as sk

    pred, lst, (truths, scores) = _random_case(tmp_path, 50, 2000, seed=top_k)
    cm = tmp_path / "cm.csv"
    result = invoke(str(pred), str(lst), "--json", "--top-k", str(top_k), "--confusion", str(cm))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    predicted = scores.argmax(axis=1)
    labels = sorted(set(truths) | set(predicted))
    p, r, f, s = sk.precision_recall_fscore_support(truths, predicted, labels=labels,
                                                    zero_division=0)  # fmt: skip
    assert [c["label"] for c in summary["per_class"]] == labels
    assert [c["precision"] for c in summary["per_class"]] == pytest.approx(p, abs=1e-12)
    assert [c["recall"] for c in summary["per_class"]] == pytest.approx(r, abs=1e-12)
    assert [c["f1"] for c in summary["per_class"]] == pytest.approx(f, abs=1e-12)
    assert [c["support"] for c in summary["per_class"]] == s.tolist()
    for average in ("macro", "weighted"):
        expected = sk.precision_recall_fscore_support(truths, predicted, average=average,
                                                      zero_division=0)[:3]  # fmt: skip
        got = summary[f"{average}_avg"]
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(expected, abs=1e-12)
    assert summary["accuracy"] == pytest.approx(sk.accuracy_score(truths, predicted), abs=1e-12)
    top = sk.top_k_accuracy_score(truths, scores, k=top_k, labels=list(range(50)))
    assert summary[f"top{top_k}_accuracy"] == pytest.approx(top, abs=1e-12)
    rows = list(csv.reader(cm.open()))
    matrix = [[int(v) for v in row[1:]] for row in rows[1:]]
    assert matrix == sk.confusion_matrix(truths, predicted, labels=labels).tolist()
    assert [int(cell) for cell in rows[0][1:]] == labels


def test_the_demo_report_equals_scikit_learn(tmp_path: Path) -> None:
    """The demo's simulated batch transform: right but for every seventh image."""
    from sklearn import metrics as sk

    demo = load_demo()
    truths = [n % 4 for n in range(24)]
    src = tmp_path / "val.jsonl"
    with JsonlFileWriter(str(src)) as writer:
        for i, true in enumerate(truths):
            writer.write(i, float(true), f"{i}.jpg", b"\xff\xd8")
    out = tmp_path / "val.jsonl.out"
    demo.simulate_predictions(src, out)
    plot = tmp_path / "cm.png"
    result = invoke(str(out), str(src), "--plot", str(plot))
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line)["prediction"] for line in out.read_text().splitlines()]
    predicted = [max(range(4), key=lambda c, p=p: (p[c], -c)) for p in predicted]
    expected = sk.classification_report(truths, predicted, digits=4)
    assert expected.rstrip("\n") in result.stdout
    from PIL import Image

    assert Image.open(plot).format == "PNG"


def load_demo():
    from helpers import _load_script

    return _load_script("demo")


def test_a_plot_must_be_png_or_jpeg(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    pred, lst = dataset
    result = invoke(str(pred), str(lst), "--plot", str(tmp_path / "cm.gif"))
    assert result.exit_code == 2 and ".png or .jpg" in result.stderr
    assert invoke(str(pred), str(lst), "--plot", str(tmp_path / "cm.jpg")).exit_code == 0
    from PIL import Image

    assert Image.open(tmp_path / "cm.jpg").format == "JPEG"


def test_a_failed_run_writes_none_of_its_outputs(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, lst = dataset
    write_predictions(pred, CASES[:6])
    outs = [tmp_path / "rows.csv", tmp_path / "cm.csv", tmp_path / "cm.png"]
    result = invoke(str(pred), str(lst), "-o", str(outs[0]), "--confusion", str(outs[1]),
                    "--plot", str(outs[2]))  # fmt: skip
    assert result.exit_code == 1
    assert not any(path.exists() for path in outs) and leftovers(tmp_path) == []

"""Quantized TFLite exports (float16, int8) and the accuracy certificate: every
served format scored on the test split with its own runtime, recorded in the
model card, and refused when it loses more than `max_accuracy_drop`."""

import json
import pathlib
import re

import keras
import numpy as np
import pytest

from kerazoo.cli import main
from kerazoo.export import AccuracyDropError
from kerazoo.export import ExportError
from kerazoo.export import export_saved_model
from kerazoo.export import saved_model

TINY = pathlib.Path(__file__).resolve().parents[1] / "finetune" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished tiny run whose recipe exports float32, float16 and int8
    TFLite files at its end (allowing any drop: the tiny model's int8 loss is
    not what these tests decide)."""
    from kerazoo.finetune import run
    from kerazoo.recipes import load_recipe

    root = tmp_path_factory.mktemp("quantized")
    recipe = load_recipe(
        TINY,
        [
            f"output_dir={root / 'run'}",
            "stage1.epochs=1",
            "stage2.epochs=1",
            f"export={{name: digits, directory: {root / 'served'}, "
            "formats: [tflite, tflite_fp16, tflite_int8], "
            "max_accuracy_drop: 1.0, calibration_images: 50}",
        ],
    )
    keras.utils.set_random_seed(0)
    report = run(recipe, log=lambda line: None)
    return root, report


def test_quantized_files_are_smaller_and_each_format_is_scored(tiny_run):
    root, report = tiny_run
    version = pathlib.Path(report["export"])
    card = json.loads((version / "assets" / "model_card.json").read_text())
    sizes = {
        fmt: (version / record["file"]).stat().st_size
        for fmt, record in card["formats"].items()
    }
    assert 0.4 < sizes["tflite_fp16"] / sizes["tflite"] < 0.6
    assert sizes["tflite_int8"] / sizes["tflite"] < 0.35  # about a quarter
    int8 = card["formats"]["tflite_int8"]
    assert int8["calibration_images"] == 50  # the recipe's, of 100 training images
    assert "float32 input and output" in int8["quantization"]

    certificate = card["certificate"]
    assert set(certificate["formats"]) == {
        "saved_model",
        "tflite",
        "tflite_fp16",
        "tflite_int8",
    }
    assert certificate["max_accuracy_drop"] == 1.0  # the recipe's
    assert certificate["test_images"] == report["test_images"]
    assert certificate["keras_accuracy"] == pytest.approx(report["test_accuracy"])
    for fmt, record in certificate["formats"].items():
        assert record["test_images"] == report["test_images"]
        assert record["bytes"] == sizes.get(fmt, record["bytes"]) > 0
        assert record["accuracy_drop"] == pytest.approx(
            certificate["keras_accuracy"] - record["test_accuracy"]
        )
        assert record["passed"]
    # The float32 formats predict what the Keras model does.
    for fmt in ("saved_model", "tflite"):
        assert certificate["formats"][fmt]["agreement"] == 1.0
        assert certificate["formats"][fmt]["accuracy_drop"] == 0.0
    assert certificate["formats"]["saved_model"]["runtime"] == "tf.saved_model.load"
    assert certificate["formats"]["tflite_int8"]["runtime"] == "LiteRT"

    # The int8 number is what LiteRT gives on the test split, rescored here.
    from kerazoo.export.formats import runner
    from kerazoo.export.sources import _recipe_data
    from kerazoo.export.sources import run_recipe
    from kerazoo.export.sources import scoring_batches

    data = _recipe_data(run_recipe(root / "run"))
    run = runner("tflite_int8", version / "model_int8.tflite")
    correct = total = 0
    for images, labels in scoring_batches(data, (32, 32)):
        correct += int(np.sum(run(images).argmax(-1) == labels))
        total += len(labels)
    assert total == report["test_images"]
    assert certificate["formats"]["tflite_int8"]["test_accuracy"] == correct / total


def test_a_run_whose_data_is_gone_names_no_score(tiny_run, tmp_path):
    from kerazoo.export import export_source

    root, _ = tiny_run
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "model.keras").write_bytes((root / "run" / "model.keras").read_bytes())
    report = json.loads((root / "run" / "report.json").read_text())
    report["recipe"]["data"]["uri"] = f"folder:{tmp_path / 'gone'}"
    (moved / "report.json").write_text(json.dumps(report))
    out = tmp_path / "served"
    with pytest.raises(ExportError, match=r"cannot be read: .*--no-score"):
        export_source(moved, "d", out=out, verify=False, log=lambda line: None)
    assert not out.exists()
    path = export_source(
        moved, "d", out=out, score=False, verify=False, log=lambda line: None
    )
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert "certificate" not in card


def _ties_under_int8():
    """A model and data whose classes differ by a 1024th of a grey level in a
    channel's mean: the float model tells them apart, int8 (a step of about a
    grey level) sees a tie and picks class 0, so it loses exactly the class-1
    half of the test images."""
    inputs = keras.Input((32, 32, 3))
    means = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(means))
    dense.set_weights([np.array([[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]]), np.zeros(2)])
    rng = np.random.default_rng(0)
    representative = rng.integers(0, 256, (20, 32, 32, 3)).astype("float32")
    images = np.full((40, 32, 32, 3), 100.0, "float32")
    labels = np.arange(40) % 2
    images[labels == 0, 0, 0, 0] = 101.0  # channel 0's mean higher by 1/1024
    images[labels == 1, 0, 0, 1] = 101.0  # channel 1's
    batches = [(images[i : i + 16], labels[i : i + 16]) for i in range(0, 40, 16)]
    return model, representative, batches


def test_a_format_over_the_drop_is_refused_and_force_writes_it(tmp_path):
    model, representative, batches = _ties_under_int8()
    lines = []
    with pytest.raises(AccuracyDropError) as refused:
        export_saved_model(
            model,
            tmp_path / "ties",
            formats=["tflite_fp16", "tflite_int8"],
            representative=representative,
            test_data=batches,
            verify=False,
            log=lines.append,
        )
    message = str(refused.value)
    assert "tflite_int8: test accuracy 0.5000, 50.00 points below" in message
    assert "the Keras model's 1.0000" in message
    assert "max_accuracy_drop=0.01" in message and "on 40 test images" in message
    assert "tflite_fp16" not in message.split("\n", 1)[1]  # it passed
    assert not (tmp_path / "ties").exists()  # nothing half-written
    assert any("over the limit" in line for line in lines)  # the table

    lines = []
    path = export_saved_model(
        model,
        tmp_path / "ties",
        formats=["tflite_int8"],
        representative=representative,
        test_data=batches,
        force=True,
        verify=False,
        log=lines.append,
    )
    card = json.loads((path / "assets" / "model_card.json").read_text())
    certificate = card["certificate"]
    assert certificate["forced"] == ["tflite_int8"]
    int8 = certificate["formats"]["tflite_int8"]
    assert int8["test_accuracy"] == 0.5 and int8["accuracy_drop"] == 0.5
    assert int8["test_images"] == 40 and not int8["passed"]
    assert int8["bytes"] == (path / "model_int8.tflite").stat().st_size
    assert certificate["formats"]["saved_model"]["accuracy_drop"] == 0.0
    assert any("(forced)" in line for line in lines)


def test_int8_needs_representative_images_and_the_drop_is_checked(tmp_path):
    model = _ties_under_int8()[0]
    with pytest.raises(ExportError, match="representative images"):
        export_saved_model(model, tmp_path / "m", formats=["tflite_int8"])
    with pytest.raises(ValueError, match=r"received max_accuracy_drop=-0.1"):
        export_saved_model(model, tmp_path / "m", max_accuracy_drop=-0.1)
    assert not (tmp_path / "m").exists()


def test_cli_refuses_with_the_numbers_and_force_writes(
    tiny_run, tmp_path, monkeypatch, capsys
):
    """The command's flags reach the check. Every format's score is lowered
    by two points here, so that the refusal does not hang on how well the
    tiny model quantizes."""
    root, _ = tiny_run
    real = saved_model.score_formats

    def two_points_lower(*args):
        accuracy, images, records = real(*args)
        for record in records.values():
            record["test_accuracy"] = accuracy - 0.02
        return accuracy, images, records

    monkeypatch.setattr(saved_model, "score_formats", two_points_lower)
    out = tmp_path / "served"
    argv = ["export", str(root / "run"), "--name", "d", "--out", str(out)]
    argv += ["--no-verify"]
    capsys.readouterr()
    # The recipe allows any drop; the flag says one point.
    assert main([*argv, "--max-accuracy-drop", "0.01"]) == 1
    captured = capsys.readouterr()
    assert "refused: saved_model loses more than max_accuracy_drop=0.01" in (
        captured.err
    )
    assert "2.00 points below the Keras model's" in captured.err
    assert "--force" in captured.err
    assert "accuracy on 270 test images" in captured.out  # the table
    assert not out.exists()  # nothing left, not even the folders

    argv += ["--format", "tflite_int8", "--calibration-images", "20"]
    assert main([*argv, "--max-accuracy-drop", "0.01", "--force"]) == 0
    printed = capsys.readouterr().out
    assert "(forced)" in printed and "tflite_int8" in printed
    card = json.loads((out / "d" / "1" / "assets" / "model_card.json").read_text())
    assert card["certificate"]["forced"] == ["saved_model", "tflite_int8"]
    assert card["certificate"]["formats"]["tflite_int8"]["accuracy_drop"] == (
        pytest.approx(0.02)
    )
    assert card["formats"]["tflite_int8"]["calibration_images"] == 20

    argv = ["export", str(root / "run"), "--name", "d", "--out", str(out)]
    assert main([*argv, "--no-score", "--no-verify"]) == 0  # no certificate
    card = json.loads((out / "d" / "2" / "assets" / "model_card.json").read_text())
    assert "certificate" not in card


@pytest.mark.parametrize(
    "override, message",
    [
        ("max_accuracy_drop: -0.1", "export.max_accuracy_drop: received -0.1"),
        ("formats: [tflite_int4]", "Did you mean 'tflite_int8'"),
        ("calibration_images: 0", "export.calibration_images: received 0"),
    ],
)
def test_recipe_export_keys_are_checked(override, message):
    from kerazoo.recipes import RecipeError
    from kerazoo.recipes import load_recipe

    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(TINY, [f"export={{name: d, {override}}}"])

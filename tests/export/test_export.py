"""SavedModel export: layout, signatures, parity in a fresh process, versions,
refusals, and the export of a fine-tuning run."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerazoo import export
from kerazoo.cli import main
from kerazoo.export import ExportError
from kerazoo.export import export_saved_model
from kerazoo.models import create_model

TINY = pathlib.Path(__file__).resolve().parents[1] / "finetune" / "tiny.yaml"


@pytest.fixture
def model(randomize):
    model = create_model("resnet20", num_classes=3, input_shape=(32, 32, 3))
    # Trained-like batch norms and head, so that outputs vary and a wrong fold
    # shows.
    rng = np.random.default_rng(2)
    head = model.get_layer("predictions")
    head.kernel.assign(rng.normal(0, 0.3, head.kernel.shape).astype("float32"))
    return randomize(model)


def test_export_layout_signatures_and_bytes_parity(tmp_path, model):
    lines = []
    path = export_saved_model(
        model, tmp_path / "tiny", class_names=["a", "b", "c"], log=lines.append
    )
    assert path == tmp_path / "tiny" / "1"
    assert (path / "saved_model.pb").exists()
    assert any("verified in a fresh process" in line for line in lines)
    assert any("docker run" in line and "MODEL_NAME=tiny" in line for line in lines)
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert card["input_size"] == [32, 32] and card["class_names"] == ["a", "b", "c"]
    # Stem, 9 basic blocks of 2 convolutions: every batch norm folded.
    assert card["folded_batch_norms"] == 19
    assert any("folded 19 batch norms" in line for line in lines)
    loaded = tf.saved_model.load(str(path))
    x = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    encoded = tf.constant([tf.io.encode_png(image).numpy() for image in x])
    by_bytes = loaded.signatures["serving_bytes"](encoded=encoded)
    by_tensor = loaded.signatures["serving_default"](images=tf.constant(x, "float32"))
    by_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(x))
    np.testing.assert_allclose(by_bytes["probabilities"], by_tensor["probabilities"])
    np.testing.assert_array_equal(by_uint8["class_index"], by_tensor["class_index"])
    names = [n.decode() for n in by_tensor["class_name"].numpy()]
    assert names == [["a", "b", "c"][i] for i in by_tensor["class_index"].numpy()]
    reference = model.predict(x.astype("float32"), verbose=0)
    assert np.ptp(reference) > 0.1  # outputs that a wrong fold would change
    np.testing.assert_allclose(by_tensor["probabilities"], reference, atol=1e-4)


def test_unfolded_export_matches_to_1e_5_and_folding_errors_are_caught(
    tmp_path, model, monkeypatch
):
    lines = []
    path = export_saved_model(model, tmp_path / "m", fold=False, log=lines.append)
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert card["folded_batch_norms"] == 0
    assert not any("batch norms into" in line for line in lines)
    # (export_saved_model checked it within 1e-5: the card says unfolded.)

    # A fold that went wrong (here: epsilon forgotten) is refused by the check,
    # and no version is left behind.
    from kerazoo.export import folding

    original = folding._fold_pair

    def careless(layer, norm):
        norm.epsilon = 0.5
        original(layer, norm)

    monkeypatch.setattr(folding, "_fold_pair", careless)
    with pytest.raises(ExportError, match="differs from the Keras model"):
        export_saved_model(model, tmp_path / "m", log=lambda s: None)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]


def test_weights_are_frozen_into_the_served_graph_unless_asked_or_too_large(
    tmp_path, model, monkeypatch
):
    """By default the signatures read no variable (the weights are constants
    of the graph); `freeze=False`, and a model over the size limit, keep the
    variables. All three serve the same outputs (each export was verified)."""
    x = tf.constant(
        np.random.default_rng(3).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    )
    served, captured = {}, {}
    for label, kwargs in (("frozen", {}), ("variables", {"freeze": False})):
        lines = []
        path = export_saved_model(model, tmp_path / label, log=lines.append, **kwargs)
        card = json.loads((path / "assets" / "model_card.json").read_text())
        assert card["frozen"] is (label == "frozen")
        assert any("frozen into the served graph" in line for line in lines) is (
            label == "frozen"
        )
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
        captured[label] = len(signature.variables)
        served[label] = signature(images=x)["probabilities"].numpy()
    assert captured["frozen"] == 0
    assert captured["variables"] > 0
    np.testing.assert_allclose(served["frozen"], served["variables"], atol=1e-5)

    monkeypatch.setattr(export.saved_model, "FREEZE_LIMIT_BYTES", 1000)
    lines = []
    path = export_saved_model(model, tmp_path / "large", log=lines.append)
    assert any("not frozen" in line and "MiB of weights" in line for line in lines)
    assert not json.loads((path / "assets" / "model_card.json").read_text())["frozen"]
    loaded = tf.saved_model.load(str(path))
    assert len(loaded.signatures["serving_default"].variables) > 0


def test_relative_output_folder_is_verified(tmp_path, model, monkeypatch):
    """`saved_models/NAME` relative to the working folder, as the CLI's
    default: the check in another process finds it."""
    monkeypatch.chdir(tmp_path)
    lines = []
    path = export_saved_model(model, pathlib.Path("saved_models/m"), log=lines.append)
    assert (tmp_path / "saved_models" / "m" / "1" / "saved_model.pb").exists()
    assert str(path) == "saved_models/m/1"
    assert any("verified in a fresh process" in line for line in lines)


def test_tflite_and_onnx_beside_the_savedmodel(tmp_path, model, capsys):
    lines = []
    path = export_saved_model(
        model, tmp_path / "m", formats=["tflite", "onnx"], log=lines.append
    )
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert set(card["formats"]) == {"tflite", "onnx"}
    for fmt, record in card["formats"].items():
        assert (path / record["file"]).exists()
        assert record["max_abs_diff"] <= 1e-4, fmt
    assert any(line.startswith("verified model.onnx") for line in lines)
    # The same runtime as the check, on images it has not seen.
    from kerazoo.export.formats import runner

    x = np.random.default_rng(9).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    reference = model.predict(x, verbose=0)
    for fmt in ("tflite", "onnx"):
        got = runner(fmt, path / card["formats"][fmt]["file"])(x)
        np.testing.assert_allclose(got, reference, atol=1e-4)


def test_missing_format_extra_is_named_before_anything_is_written(
    tmp_path, model, monkeypatch, capsys
):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a),
    )
    with pytest.raises(
        ImportError, match=r"onnxruntime: pip install 'kerazoo\[onnx\]'"
    ):
        export_saved_model(model, tmp_path / "m", formats=["onnx"], log=print)
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match="unknown export format 'coreml'"):
        export_saved_model(model, tmp_path / "m", formats=["coreml"])


def test_versions_refusal_overwrite_and_interrupted_export(
    tmp_path, model, monkeypatch
):
    target = tmp_path / "m"
    assert (
        export_saved_model(model, target, verify=False, log=lambda s: None).name == "1"
    )
    assert (
        export_saved_model(model, target, verify=False, log=lambda s: None).name == "2"
    )
    with pytest.raises(ExportError, match="already exists"):
        export_saved_model(model, target, version=2, verify=False, log=lambda s: None)
    export_saved_model(
        model, target, version=2, overwrite=True, verify=False, log=lambda s: None
    )

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # the process stops half-way through

    monkeypatch.setattr(export.saved_model, "verify_export", broken)
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(model, target, log=lambda s: None)
    assert sorted(p.name for p in target.iterdir()) == ["1", "2"]


@keras.saving.register_keras_serializable(package="kerazoo_tests")
class Registered(keras.layers.Layer):
    def call(self, x):
        return x


class Unregistered(keras.layers.Layer):
    def call(self, x):
        return x * 1.0


def test_unregistered_custom_layer_is_named(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = Unregistered(name="mystery")(Registered()(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(ExportError, match=r"mystery \(.*Unregistered\)"):
        export_saved_model(model, tmp_path / "x", log=lambda s: None)
    assert not (tmp_path / "x").exists()


def test_export_of_a_finetuning_run_and_cli(tmp_path, capsys):
    from kerazoo.finetune import run
    from kerazoo.recipes import load_recipe

    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path / 'run'}",
            "stage1.epochs=1",
            "stage2.epochs=1",
            f"export={{name: digits, directory: {tmp_path / 'served'}, "
            "formats: [onnx], freeze: false}",
        ],
    )
    report = run(recipe, log=lambda line: None)
    version = tmp_path / "served" / "digits" / "1"
    assert report["export"] == str(version)
    card = json.loads((version / "assets" / "model_card.json").read_text())
    assert card["metrics"]["test_accuracy"] == report["test_accuracy"]
    assert card["recipe"]["model"]["name"] == "resnet20"
    assert card["class_names"] == [str(i) for i in range(10)]
    assert card["folded_batch_norms"] == 19 and card["frozen"] is False
    assert card["formats"]["onnx"]["max_abs_diff"] <= 1e-4
    assert (version / "model.onnx").exists()
    # The CLI: another version from the run directory, then --verify on its own.
    out = tmp_path / "served"
    argv = ["export", str(tmp_path / "run"), "--name", "digits", "--out", str(out)]
    # Checked in a fresh process by the --verify call below, not twice.
    assert main([*argv, "--no-fold", "--format", "tflite", "--no-verify"]) == 0
    assert (out / "digits" / "2" / "saved_model.pb").exists()
    card = json.loads((out / "digits" / "2" / "assets" / "model_card.json").read_text())
    assert card["folded_batch_norms"] == 0 and list(card["formats"]) == ["tflite"]
    assert card["frozen"] is True
    assert main([*argv, "--no-freeze", "--no-verify"]) == 0
    card = json.loads((out / "digits" / "3" / "assets" / "model_card.json").read_text())
    assert card["frozen"] is False
    assert main(["export", "--verify", str(out / "digits" / "2")]) == 0
    printed = capsys.readouterr().out
    assert "verified in a fresh process" in printed and "serving_bytes" in printed
    assert main(["export", "resnet_20", "--name", "x", "--out", str(out)]) == 1
    assert "Did you mean 'resnet20'" in capsys.readouterr().err


def test_a_keras_file_exports_from_a_fresh_process(tmp_path, model):
    """`kerazoo export model.keras` in a process that has built no kerazoo model
    yet: the file's kerazoo classes are found (kerazoo.api.load_model)."""
    import subprocess
    import sys

    model.save(tmp_path / "m.keras")
    code = "import sys; from kerazoo.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["export", str(tmp_path / "m.keras"), "--name", "m", "--out", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-c", code, *argv, "--no-verify"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "m" / "1" / "saved_model.pb").exists()

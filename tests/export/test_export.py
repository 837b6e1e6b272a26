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
def model():
    return create_model("resnet20", num_classes=3, input_shape=(32, 32, 3))


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
    np.testing.assert_allclose(by_tensor["probabilities"], reference, atol=1e-5)


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
            f"export={{name: digits, directory: {tmp_path / 'served'}}}",
        ],
    )
    report = run(recipe, log=lambda line: None)
    version = tmp_path / "served" / "digits" / "1"
    assert report["export"] == str(version)
    card = json.loads((version / "assets" / "model_card.json").read_text())
    assert card["metrics"]["test_accuracy"] == report["test_accuracy"]
    assert card["recipe"]["model"]["name"] == "resnet20"
    assert card["class_names"] == [str(i) for i in range(10)]
    # The CLI: another version from the run directory, then --verify on its own.
    out = tmp_path / "served"
    assert (
        main(["export", str(tmp_path / "run"), "--name", "digits", "--out", str(out)])
        == 0
    )
    assert (out / "digits" / "2" / "saved_model.pb").exists()
    assert main(["export", "--verify", str(out / "digits" / "2")]) == 0
    printed = capsys.readouterr().out
    assert "verified in a fresh process" in printed and "serving_bytes" in printed
    assert main(["export", "resnet_20", "--name", "x", "--out", str(out)]) == 1
    assert "Did you mean 'resnet20'" in capsys.readouterr().err

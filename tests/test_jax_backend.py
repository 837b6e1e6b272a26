"""The whole pipeline under KERAS_BACKEND=jax: a fine-tuning run with the
same report as under TensorFlow, its SavedModel export (re-loaded into
TensorFlow in a child process) served by plain TensorFlow as the JAX model
predicts, and a two-trial search. CI's JAX job runs this file; under another
backend it is skipped."""

import json
import pathlib

import keras
import numpy as np
import pytest

from kerazoo.api import load_model
from kerazoo.cli import main
from kerazoo.export import ExportError
from kerazoo.export import export_saved_model
from kerazoo.finetune import run
from kerazoo.recipes import load_recipe
from kerazoo.tuning import search

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the JAX CI job runs it (KERAS_BACKEND=jax)",
)

TINY = pathlib.Path(__file__).resolve().parent / "finetune" / "tiny.yaml"

# What a TensorFlow run's report holds at its top level (tests/finetune).
REPORT_KEYS = {
    "recipe",
    "data",
    "parameters",
    "stage1",
    "stage2",
    "seconds",
    "test_accuracy",
    "final_weights",
    "test_images",
    "confusion",
    "export",
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("jax")
    recipe = load_recipe(
        TINY,
        [
            f"output_dir={root / 'run'}",
            "stage1.epochs=1",
            "stage2.epochs=1",
            f"export={{name: tiny, directory: '{root / 'saved'}'}}",
        ],
    )
    lines = []
    report = run(recipe, log=lines.append)
    return root, report, lines


def _served(version_dir, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    return out["probabilities"].numpy()


def test_finetune_report_and_export_served_as_the_jax_model_predicts(finished):
    root, report, lines = finished
    assert set(report) == REPORT_KEYS
    assert report["stage1"]["epochs"] == 1 and report["stage2"]["epochs"] == 1
    assert 0 <= report["test_accuracy"] <= 1
    version = root / "saved" / "tiny" / "1"
    assert report["export"] == str(version)
    assert (version / "saved_model.pb").exists()
    assert any("exporting through TensorFlow in a child process" in x for x in lines)
    # The parent checked the export against its own (JAX) model.
    assert any("verified in a fresh process" in x for x in lines)
    model = load_model(root / "run" / "model.keras")
    images = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3))
    images = images.astype("float32")
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    assert np.ptp(expected) > 1e-3
    # Batch norms folded: the export's own tolerance for a folded model.
    np.testing.assert_allclose(_served(version, images), expected, atol=1e-4)
    card = json.loads((version / "assets" / "model_card.json").read_text())
    assert card["metrics"]["test_accuracy"] == report["test_accuracy"]
    assert "certificate" in card


def test_cli_export_of_the_run_and_a_refusal_named_by_the_child(finished, capsys):
    root, _, _ = finished
    out = root / "cli"
    source = str(root / "run")
    assert main(["export", source, "--name", "m", "--out", str(out), "--no-score"]) == 0
    assert (out / "m" / "1" / "saved_model.pb").exists()
    assert "verified in a fresh process" in capsys.readouterr().out
    # The child's refusal (the version exists) reaches the user as it is.
    again = ["export", source, "--name", "m", "--out", str(out), "--version", "1"]
    assert main([*again, "--no-score"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_export_saved_model_of_a_live_model_points_to_the_file_route():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten()])
    with pytest.raises(ExportError, match="export_source"):
        export_saved_model(model, "unused")


def test_two_trial_search(tmp_path):
    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path}",
            "search={max_trials: 2, epochs: 1, batch_sizes: [16], "
            "optimizers: [momentum, adam], initializers: [he_normal]}",
        ],
    )
    rows = search(recipe, log=lambda line: None)
    assert len(rows) == 2
    assert all(0 <= row["objective"] <= 1 for row in rows)
    assert (tmp_path / "results.csv").exists()

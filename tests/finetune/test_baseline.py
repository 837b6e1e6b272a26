"""`baseline: scratch` (`kerazoo finetune --baseline scratch`): the same network
trained from random weights on the same split and epochs, its test accuracy
beside the fine-tuned one in the report."""

import json
import pathlib

import pytest

from kerazoo.finetune import run
from kerazoo.finetune import scratch_recipe
from kerazoo.models import create_model
from kerazoo.recipes import RecipeError
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")


@pytest.fixture
def pretrained(tmp_path):
    """A "pretrained" resnet20: weights saved to a file, as a user's own."""
    path = tmp_path / "body.weights.h5"
    create_model("resnet20", input_shape=(16, 16, 3), num_classes=10).save_weights(path)
    return path


def _recipe(tmp_path, weights, *overrides):
    return load_recipe(
        TINY,
        [
            f"model.weights={weights}",
            "model.input_size=16",
            f"output_dir={tmp_path / 'run'}",
            "baseline=scratch",
            *overrides,
        ],
    )


def test_scratch_recipe_trains_every_layer_for_both_stages(tmp_path, pretrained):
    recipe = _recipe(
        tmp_path,
        pretrained,
        "stage1.epochs=3",
        "stage2.epochs=2",
        "stage2.layer_decay=0.5",
    )
    base = scratch_recipe(recipe)
    assert base.model.weights is None and base.batchnorm == "train"
    assert base.stage1.epochs == 0 and base.stage2.epochs == 5
    assert base.stage2.unfreeze == "all" and base.stage2.body_lr_multiplier == 1.0
    assert base.stage2.layer_decay is None
    assert base.stage2.optimizer == recipe.stage1.optimizer
    assert base.stage2.schedule == recipe.stage1.schedule
    assert base.data == recipe.data and base.seed == recipe.seed
    assert base.baseline == "none" and base.export is None
    assert base.output_dir == str(tmp_path / "run" / "baseline_scratch")
    # The key does not change what the run itself trains.
    assert (
        recipe.fingerprint()
        == load_recipe(
            TINY,
            [
                f"model.weights={pretrained}",
                "model.input_size=16",
                "stage1.epochs=3",
                "stage2.epochs=2",
                "stage2.layer_decay=0.5",
            ],
        ).fingerprint()
    )


def test_a_run_from_random_weights_has_no_scratch_baseline(tmp_path):
    with pytest.raises(RecipeError, match="the run is that baseline already"):
        load_recipe(TINY, ["baseline=scratch"])


def test_report_puts_both_accuracies_side_by_side(tmp_path, pretrained):
    recipe = _recipe(tmp_path, pretrained, "stage1.epochs=1", "stage2.epochs=0")
    lines = []
    report = run(recipe, log=lines.append)
    baseline = report["baseline"]
    theirs = json.loads(
        (tmp_path / "run" / "baseline_scratch" / "report.json").read_text()
    )
    assert baseline["test_accuracy"] == theirs["test_accuracy"]
    assert baseline["gain"] == pytest.approx(
        report["test_accuracy"] - theirs["test_accuracy"]
    )
    assert baseline["epochs"] == 1 and theirs["stage2"]["epochs"] == 1
    assert theirs["recipe"]["model"]["weights"] is None
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["baseline"] == baseline
    assert any(
        line.endswith(f"from scratch ({baseline['gain']:+.4f})") for line in lines
    )
    # Run again: both are finished, nothing trains, the numbers are the same.
    again = []
    assert run(recipe, log=again.append)["baseline"] == baseline
    assert sum("already holds this finished run" in line for line in again) == 2

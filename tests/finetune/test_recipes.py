"""Recipes: every shipped one validates; a malformed one fails before training,
naming the key path, what was received and what is allowed."""

import pathlib

import pytest
import yaml

from kerazoo.recipes import RecipeError
from kerazoo.recipes import apply_overrides
from kerazoo.recipes import load_recipe
from kerazoo.recipes import validate_recipe

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
TINY = pathlib.Path(__file__).with_name("tiny.yaml")


def tiny():
    return yaml.safe_load(TINY.read_text())


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.stage1.optimizer.learning_rate > 0


def test_quickstart_is_shipped():
    names = {p.name for p in RECIPES}
    assert {"quickstart.yaml", "digits_10shot.yaml", "tune_quickstart.yaml"} <= names


def test_set_overrides_nested_fields():
    recipe = load_recipe(
        TINY, ["stage2.epochs=3", "output_dir=/tmp/x", "head.dropout=0.5"]
    )
    assert recipe.stage2.epochs == 3
    assert recipe.output_dir == "/tmp/x"
    assert recipe.head.dropout == 0.5


def _error(data):
    with pytest.raises(RecipeError) as info:
        validate_recipe(data)
    return str(info.value)


def test_unknown_key_names_path_and_allowed_keys():
    data = tiny()
    data["stage2"]["epochz"] = 3
    message = _error(data)
    assert "stage2.epochz: unknown key" in message
    assert "Did you mean 'epochs'?" in message
    assert "unfreeze" in message  # the allowed keys are listed


def test_wrong_type_names_path_and_value():
    data = tiny()
    data["stage1"]["epochs"] = "ten"
    message = _error(data)
    assert "stage1.epochs: received 'ten'" in message
    assert "integer" in message


def test_bad_choice_lists_allowed_and_suggests():
    data = tiny()
    data["stage2"]["optimizer"]["name"] = "adamm"
    message = _error(data)
    assert "stage2.optimizer.name: received 'adamm'" in message
    assert "'nesterov'" in message and "did you mean 'adam'" in message


def test_missing_stage_is_an_error():
    data = tiny()
    del data["stage2"]
    assert "stage2: required key is missing" in _error(data)


def test_unknown_model_suggests_close_names():
    data = tiny()
    data["model"]["name"] = "resnet_50"
    message = _error(data)
    assert "model.name" in message and "'resnet50'" in message


def test_bad_optimizer_argument_is_caught_before_training():
    data = tiny()
    data["stage1"]["optimizer"]["momentun"] = 0.9
    assert "stage1.optimizer" in _error(data)


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("digitz", "unknown data source 'digitz'"),
        ("digits?shots=0", "positive integer"),
        ("digits?shot=3", "unknown option(s) shot"),
        ("folder:", "needs a path"),
    ],
)
def test_bad_data_uri(uri, fragment):
    data = tiny()
    data["data"]["uri"] = uri
    message = _error(data)
    assert "data.uri" in message and fragment in message


def test_bad_schedule_and_unfreeze():
    data = tiny()
    data["stage2"]["schedule"] = {"name": "warmup_cosine", "warmup_epoch": 1}
    assert "stage2.schedule.warmup_epoch: unknown key" in _error(data)
    data = tiny()
    data["stage2"]["unfreeze"] = "body/(["
    assert "stage2.unfreeze" in _error(data) and "not a valid regex" in _error(data)


def test_bad_override_syntax():
    with pytest.raises(RecipeError, match="key.path=value"):
        apply_overrides({}, ["stage2.epochs"])
    with pytest.raises(RecipeError, match="is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_cli_reports_recipe_errors_before_training(tmp_path, capsys):
    from kerazoo.cli import main

    bad = tmp_path / "bad.yaml"
    data = tiny()
    data["stage1"]["batch_size"] = -4
    bad.write_text(yaml.safe_dump(data))
    assert main(["finetune", str(bad), "--set", f"output_dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "stage1.batch_size: received -4" in err
    assert not (tmp_path / "out").exists()


def test_multi_worker_is_refused_with_the_reason():
    data = tiny()
    data["distribution"] = "multi_worker"
    message = _error(data)
    assert "distribution: received 'multi_worker'" in message
    assert "keras-team/keras#20585" in message and "'mirrored'" in message


def test_export_formats_are_checked_and_fold_defaults_on():
    data = tiny()
    data["export"] = {"name": "digits"}
    recipe = validate_recipe(data)
    assert recipe.export.fold is True and recipe.export.formats == []
    data["export"] = {"name": "digits", "formats": ["onnx", "coreml"]}
    message = _error(data)
    assert "export.formats.1" in message and "'tflite'" in message, message

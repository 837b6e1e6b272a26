"""Recipes: every shipped one validates; a malformed one fails before training,
naming the key path, what was received and what is allowed."""

import pathlib
import subprocess
import sys

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
    assert "'nesterov'" in message and "Did you mean 'adam'?" in message


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
    message = _error(data)
    assert "stage1.optimizer" in message
    assert "adam takes no argument 'momentun'" in message
    assert "It takes: learning_rate, beta_1" in message


@pytest.mark.parametrize(
    "argument, value, expected",
    [
        ("nesterov", 3, "nesterov: true or false, received 3"),
        ("momentum", "fast", "momentum: a number, received 'fast'"),
    ],
)
def test_optimizer_argument_types_are_checked(argument, value, expected):
    data = tiny()
    data["stage2"]["optimizer"][argument] = value
    assert expected in _error(data)


def test_jit_compile_takes_a_bool_or_auto():
    assert load_recipe(TINY).jit_compile == "auto"
    assert load_recipe(TINY, ["jit_compile=false"]).jit_compile is False
    data = tiny()
    data["jit_compile"] = "xla"
    assert "jit_compile" in _error(data)


def test_validation_does_not_import_keras():
    # The arguments' names and types come from the catalog, so that a typo is
    # reported in a fraction of a second, not after TensorFlow's start.
    code = (
        "import sys; from kerazoo.recipes import load_recipe; "
        f"[load_recipe(p) for p in {[str(p) for p in RECIPES]!r}]; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_optimizer_values_are_checked_before_anything_runs(tmp_path):
    from kerazoo.finetune import FinetuneError
    from kerazoo.finetune import run

    # Names and types are right; Keras refuses the pair when it builds
    # stage 2's optimizer, which the run does before stage 1 starts.
    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path / 'run'}",
            "stage2.optimizer.clipnorm=1.0",
            "stage2.optimizer.clipvalue=1.0",
        ],
    )
    with pytest.raises(FinetuneError, match="stage2.optimizer: the optimizer cannot"):
        run(recipe, log=lambda line: None)
    assert not (tmp_path / "run").exists()


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


def test_augmentation_and_regularisation_are_off_by_default():
    recipe = validate_recipe(tiny())
    assert not recipe.data.augment.enabled
    assert recipe.data.mixup is None and recipe.data.cutmix is None
    assert recipe.data.class_weight is None
    assert recipe.stage1.label_smoothing == recipe.stage2.label_smoothing == 0


def test_augmentation_shorthands():
    data = tiny()
    data["data"]["augment"] = {
        "random_resized_crop": True,
        "rand_augment": True,
        "aug_mix": False,
        "random_erasing": 0.4,
        "color_jitter": 0.3,
    }
    data["data"]["mixup"] = True
    data["data"]["cutmix"] = {"alpha": 0.5}
    data["data"]["class_weight"] = {"3": 2, 4: 0.5}
    recipe = validate_recipe(data)
    augment = recipe.data.augment
    assert augment.random_resized_crop.scale == (0.08, 1.0)
    assert augment.rand_augment.magnitude == 0.5 and augment.rand_augment.layers == 2
    assert augment.aug_mix is None
    assert augment.random_erasing.probability == 0.4
    jitter = augment.color_jitter
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.3,
        0.3,
        0.3,
        0.0,
    )
    assert recipe.data.mixup.alpha == 0.2 and recipe.data.cutmix.alpha == 0.5
    assert recipe.data.class_weight == {"3": 2.0, 4: 0.5}


@pytest.mark.parametrize(
    "where, value, fragment",
    [
        (
            "augment",
            {"random_resized_crop": {"scale": [0.9, 0.2]}},
            "data.augment.random_resized_crop.scale: received [0.9, 0.2]; [min, max] "
            "with min <= max",
        ),
        (
            "augment",
            {"random_resized_crop": {"scale": [0, 1]}},
            "data.augment.random_resized_crop.scale: received [0, 1]; [min, max], "
            "each in (0, 1]",
        ),
        (
            "augment",
            {"random_resized_crop": {"ratio": [-1, 2]}},
            "data.augment.random_resized_crop.ratio: received [-1, 2]",
        ),
        (
            "augment",
            {"random_resized_crop": "yes"},
            "data.augment.random_resized_crop: received 'yes'; true (the defaults), "
            "false or a mapping of scale, ratio",
        ),
        (
            "augment",
            {"rand_augment": {"magnitude": 3}},
            "data.augment.rand_augment.magnitude: received 3",
        ),
        (
            "augment",
            {"rand_augment": {"layers": 0}},
            "data.augment.rand_augment.layers: received 0",
        ),
        (
            "augment",
            {"rand_augment": {"magnitud": 0.2}},
            "data.augment.rand_augment.magnitud: unknown key. Did you mean "
            "'magnitude'?",
        ),
        (
            "augment",
            {"aug_mix": {"severity": 11}},
            "data.augment.aug_mix.severity: received 11",
        ),
        (
            "augment",
            {"random_erasing": 1.5},
            "data.augment.random_erasing.probability: received 1.5",
        ),
        (
            "augment",
            {"random_erasing": {"fill": "nois"}},
            "data.augment.random_erasing.fill: received 'nois'; 'noise' or a value "
            "in [0, 255]",
        ),
        (
            "augment",
            {"color_jitter": {"hue": 0.7}},
            "data.augment.color_jitter.hue: received 0.7",
        ),
        (
            "augment",
            {"color_jitter": True},
            "data.augment.color_jitter: received True; a strength or a mapping",
        ),
        ("mixup", {"alpha": 0}, "data.mixup.alpha: received 0"),
        ("mixup", {"probability": 2}, "data.mixup.probability: received 2"),
        (
            "cutmix",
            {"alpha": 2},
            "data.cutmix.alpha: received 2; Input should be less than or equal to 1",
        ),
        ("cutmix", {"probabilty": 1}, "data.cutmix.probabilty: unknown key"),
        (
            "class_weight",
            "balance",
            "data.class_weight: received 'balance'; 'balanced' or a mapping",
        ),
        (
            "class_weight",
            {"cat": -1},
            "data.class_weight: received {'cat': -1}; the weight of class 'cat' must "
            "be a positive number",
        ),
        ("class_weight", {-2: 1}, "class -2: an index is >= 0"),
    ],
)
def test_bad_augmentation_and_regularisation_values_name_the_key(
    where, value, fragment
):
    data = tiny()
    data["data"][where] = value
    assert fragment in _error(data)


@pytest.mark.parametrize("value", [1.0, -0.1, "some"])
def test_bad_label_smoothing_names_the_stage(value):
    data = tiny()
    data["stage2"]["label_smoothing"] = value
    assert f"stage2.label_smoothing: received {value!r}" in _error(data)


def test_batchnorm_default_follows_whether_the_body_is_pretrained():
    # A random body's batch norms have no statistics to keep: frozen, resnet20
    # on digits trained at chance (test accuracy 0.10 after 3 epochs).
    data = tiny()
    del data["batchnorm"]
    assert validate_recipe(data).batchnorm == "train"
    data["model"]["weights"] = "imagenet"
    data["model"]["name"] = "efficientnet_lite0"
    assert validate_recipe(data).batchnorm == "frozen"


def test_frozen_batchnorm_on_a_random_body_is_refused_with_the_reason():
    data = tiny()
    data["batchnorm"] = "frozen"
    message = _error(data)
    assert "batchnorm: frozen" in message and "model.weights is null" in message
    assert "batchnorm: train" in message
    data["stage2"]["epochs"] = 0  # no stage 2: the body stays frozen anyway
    assert validate_recipe(data).batchnorm == "frozen"


def test_fault_injection_is_not_in_the_recipe_schema():
    data = tiny()
    data["debug"] = {"nan_batch": [2, 9]}
    assert "KERAZOO_FAULT_NAN_BATCH" in _error(data)
    # The empty section that older runs saved still loads.
    data["debug"] = {"nan_batch": None}
    assert "debug" not in validate_recipe(data).to_dict()


def test_a_learning_rate_written_without_a_dot_is_a_number():
    # YAML 1.1 (PyYAML) reads 1e-3 as a string.
    recipe = load_recipe(TINY, ["stage1.optimizer.learning_rate=1e-3"])
    assert recipe.stage1.optimizer.learning_rate == 0.001
    data = tiny()
    data["stage1"]["optimizer"]["learning_rate"] = "fast"
    assert "a number > 0, or 'auto'" in _error(data)

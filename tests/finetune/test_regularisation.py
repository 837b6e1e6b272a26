"""Label smoothing, MixUp / CutMix and class weights in fine-tuning runs: the
loss each stage compiles with, the labels its pipelines give, the weights fit
gets, and stage 1 still leaving the body bit-identical."""

import json
import pathlib

import keras
import numpy as np
import pytest

from kerazoo.data import ImageData
from kerazoo.data.split import ArraySplit
from kerazoo.finetune import build
from kerazoo.finetune import run
from kerazoo.finetune.engine import _loss
from kerazoo.finetune.engine import _mixes
from kerazoo.finetune.engine import class_weights
from kerazoo.recipes import RecipeError
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")


def recipe(tmp_path, *overrides):
    return load_recipe(TINY, [f"output_dir={tmp_path / 'run'}", *overrides])


def body_weights(model):
    return {
        w.path: keras.ops.convert_to_numpy(w)
        for w in model.weights
        if w.path.startswith("body/")
    }


@pytest.fixture
def fits(monkeypatch):
    """What each `fit` call got: class weights and the datasets' label specs."""
    calls = []
    fit = keras.Model.fit

    def spy(self, x=None, *args, **kwargs):
        calls.append(
            {
                "class_weight": kwargs.get("class_weight"),
                "labels": x.element_spec[1],
                "validation_labels": kwargs["validation_data"].element_spec[1],
                "loss": self.loss,
            }
        )
        return fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return calls


def test_mixup_label_smoothing_and_balanced_weights_run_and_report(tmp_path, fits):
    r = recipe(
        tmp_path,
        "stage1.epochs=1",
        "stage2.epochs=1",
        "stage1.label_smoothing=0.1",
        "stage2.label_smoothing=0.1",
        "data.mixup={alpha: 0.4}",
        "data.augment.random_erasing=0.5",
        "data.class_weight=balanced",
    )
    lines = []
    report = run(r, log=lines.append)
    assert np.isfinite(report["test_accuracy"])
    # Mixing is augmentation: stage 1 (augment: true) runs the frozen body on
    # mixed images rather than on cached features.
    assert report["stage1"]["cached_features"] is False
    for n in (1, 2):
        stage = report[f"stage{n}"]
        assert stage["epochs"] == 1 and np.isfinite(stage["val_accuracy"])
        assert stage["loss"] == "categorical_crossentropy (label smoothing 0.1, mixup)"
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["data"]["class_weight"] == {str(i): 1.0 for i in range(10)}
    assert any(line.startswith("class weights (balanced): 0 1,") for line in lines)
    assert len(fits) == 2
    for call in fits:
        # Ten shots of each digit: balanced weighs each class 1.
        assert call["class_weight"] == {i: 1.0 for i in range(10)}
        assert isinstance(call["loss"], keras.losses.CategoricalCrossentropy)
        assert call["loss"].get_config()["label_smoothing"] == 0.1
        # Soft training labels and plain one-hot validation labels, both the
        # shape categorical crossentropy takes.
        for spec in (call["labels"], call["validation_labels"]):
            assert tuple(spec.shape) == (None, 10) and spec.dtype == "float32"

    # Stage 1 with mixed, erased images still leaves the body bit-identical.
    keras.utils.clear_session()
    keras.utils.set_random_seed(r.seed)
    initial = body_weights(build(r, 10)["model"])
    keras.utils.clear_session()
    keras.utils.set_random_seed(r.seed)
    parts = build(r, 10)
    parts["model"].load_weights(tmp_path / "run" / "stage1.weights.h5")
    after = body_weights(parts["model"])
    assert any("moving_variance" in p for p in initial)
    assert initial.keys() == after.keys()
    for path in initial:
        np.testing.assert_array_equal(initial[path], after[path], err_msg=path)


def test_label_smoothing_on_cached_features_and_no_mixing_there(tmp_path, fits):
    """Stage 1 without augmentation keeps its cached features: mixing does not
    apply there, label smoothing does (one-hot feature labels)."""
    r = recipe(
        tmp_path,
        "stage1.epochs=1",
        "stage2.epochs=0",
        "stage1.augment=false",
        "stage1.label_smoothing=0.2",
        "data.cutmix=true",
    )
    report = run(r, log=lambda line: None)
    assert report["stage1"]["cached_features"] is True
    assert report["stage1"]["loss"] == "categorical_crossentropy (label smoothing 0.2)"
    (call,) = fits
    assert call["class_weight"] is None
    assert tuple(call["labels"].shape) == (None, 10)
    assert call["loss"].get_config()["label_smoothing"] == 0.2


def test_loss_follows_the_stage(tmp_path):
    r = recipe(tmp_path, "data.mixup=true", "stage1.augment=false")
    assert _mixes(r, r.stage1) == {"mixup": None, "cutmix": None}
    assert _loss(r.stage1, _mixes(r, r.stage1))[0] == (
        "sparse_categorical_crossentropy"
    )
    loss, said = _loss(r.stage2, _mixes(r, r.stage2))
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert said == "categorical_crossentropy (mixup)"
    r = recipe(tmp_path)
    assert _loss(r.stage2, _mixes(r, r.stage2))[0] == (
        "sparse_categorical_crossentropy"
    )


def _data(names=("cat", "dog", "0"), labels=(0,) * 6 + (1,) * 3 + (2,)):
    labels = np.asarray(labels)
    images = np.zeros((len(labels), 4, 4, 3), np.uint8)
    return ImageData("arrays", list(names), {"train": ArraySplit(images, labels)})


def test_balanced_class_weights_come_from_the_training_counts():
    weights = class_weights("balanced", _data())
    np.testing.assert_allclose(
        [weights[i] for i in range(3)], [10 / 18, 10 / 9, 10 / 3]
    )
    assert class_weights(None, _data()) is None


def test_class_weights_by_name_or_index():
    # A key is a class name, or an index when no class has that name: 0 is
    # the class named "0" (index 2); 1 is index 1, "dog".
    assert class_weights({"cat": 2, 0: 4}, _data()) == {0: 2.0, 1: 1.0, 2: 4.0}
    assert class_weights({1: 3}, _data()) == {0: 1.0, 1: 3.0, 2: 1.0}


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"cow": 1}, "data.class_weight.cow: no class 'cow' in arrays"),
        ({7: 1}, "data.class_weight.7: no class 7 in arrays"),
        ({"dog": 1, 1: 2}, "data.class_weight.1: class 'dog' (index 1) is given twice"),
    ],
)
def test_a_class_the_data_lacks_is_named(spec, fragment):
    with pytest.raises(RecipeError) as info:
        class_weights(spec, _data())
    assert fragment in str(info.value)
    assert "cat, dog, 0" in str(info.value) or "twice" in fragment


def test_balanced_needs_labels_known_before_reading():
    data = _data()
    data.splits["train"].labels = None  # a streamed split
    with pytest.raises(RecipeError, match="data.class_weight: balanced needs"):
        class_weights("balanced", data)


def test_an_unknown_class_stops_the_run_before_training(tmp_path):
    r = recipe(tmp_path, "data.class_weight={ten: 2}")
    with pytest.raises(RecipeError, match="data.class_weight.ten: no class 'ten'"):
        run(r, log=lambda line: None)
    assert not (tmp_path / "run" / "stage1.weights.h5").exists()


def test_the_docs_example_is_a_valid_recipe(tmp_path):
    """docs/finetuning.md's YAML example validates, with every part on."""
    import re

    page = (pathlib.Path(__file__).parents[2] / "docs" / "finetuning.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    (block,) = [b for b in blocks if b.startswith("name: regularised")]
    path = tmp_path / "regularised.yaml"
    path.write_text(block)
    r = load_recipe(path)
    augment = r.data.augment
    assert augment.random_resized_crop and augment.rand_augment
    assert augment.color_jitter.enabled and augment.random_erasing
    assert r.data.mixup and r.data.cutmix and r.data.class_weight == "balanced"
    assert r.stage2.label_smoothing == 0.1


def _drop_rates(recipe_):
    from kerazoo._compat import sublayers
    from kerazoo.layers import MBConvBlock

    parts = build(recipe_, 10)
    return [
        layer.drop_rate
        for layer in sublayers(parts["body"])
        if isinstance(layer, MBConvBlock)
    ]


def test_drop_path_sets_the_blocks_stochastic_depth(tmp_path):
    model = "model={name: efficientnet_lite0, weights: null, input_size: 32}"
    default = _drop_rates(recipe(tmp_path, model))
    raised = _drop_rates(recipe(tmp_path, model, "model.drop_path=0.3"))
    # The family's default is 0.2 for the last block; each block's rate is the
    # recipe's, scaled by its depth (0 for the first).
    assert raised[0] == 0 and max(default) < 0.2 < max(raised) < 0.3
    assert raised == pytest.approx([rate * 1.5 for rate in default])
    assert set(_drop_rates(recipe(tmp_path, model, "model.drop_path=0"))) == {0.0}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model.drop_path=0.1"],
            "the families whose blocks do: convnext, efficientnet, ",
        ),
        (["model.drop_path=1"], "model.drop_path: received 1"),
        (
            [
                "model={name: efficientnet_lite0, weights: null, input_size: 32, "
                "options: {drop_connect_rate: 0.1}}",
                "model.drop_path=0.1",
            ],
            "options.drop_connect_rate set the same rate",
        ),
    ],
)
def test_drop_path_is_refused_by_name(overrides, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(TINY, overrides)

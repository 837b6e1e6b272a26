"""Test-time augmentation (`kerazoo.weights.tta`): the views and their
average, the recipe's `tta` in the final evaluation, `kerazoo predict --tta`."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data

from kerazoo.cli import main
from kerazoo.data.pipeline import Pipelines
from kerazoo.finetune import run
from kerazoo.finetune.engine import load_recipe_data
from kerazoo.recipes import RecipeError
from kerazoo.recipes import load_recipe
from kerazoo.weights import tta

TINY = pathlib.Path(__file__).with_name("tiny.yaml")


def _classifier(size=16):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )


def _images(n=3, size=16):
    return np.random.default_rng(1).uniform(0, 1, (n, size, size, 3)).astype("float32")


def test_flips_of_a_symmetric_image_give_its_own_probabilities():
    model = _classifier()
    half = _images()
    symmetric = (half + half[:, :, ::-1]) / 2
    plain = model.predict(symmetric, verbose=0)
    flipped = tta.with_tta(model, flips=True).predict(symmetric, verbose=0)
    np.testing.assert_allclose(flipped, plain, rtol=1e-5, atol=1e-7)
    # An image that is not symmetric gets the mean of it and its mirror.
    x = _images()
    expected = (
        model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)
    ) / 2
    assert np.abs(expected - model.predict(x, verbose=0)).max() > 1e-4
    np.testing.assert_allclose(
        tta.with_tta(model, flips=True).predict(x, verbose=0), expected, rtol=1e-5
    )


def test_crops_are_the_center_then_the_corners_resized_back():
    model = _classifier()
    x = _images()
    side = 12  # 0.75 of 16

    def resized(crop):
        return tf.image.resize(crop, (16, 16), method="bilinear").numpy()

    views = [
        x,
        resized(x[:, 2:14, 2:14]),
        resized(x[:, :side, :side]),
        resized(x[:, :side, -side:]),
        resized(x[:, -side:, :side]),
        resized(x[:, -side:, -side:]),
    ]
    for crops in (1, 5):
        expected = np.mean(
            [model.predict(v, verbose=0) for v in views[: crops + 1]], axis=0
        )
        got = tta.with_tta(model, flips=False, crops=crops, scale=0.75)
        np.testing.assert_allclose(got.predict(x, verbose=0), expected, rtol=1e-5)
    assert tta.view_names(True, 2) == [
        "image",
        "image_flipped",
        "center",
        "center_flipped",
        "top_left",
        "top_left_flipped",
    ]
    assert tta.describe(True, 5, 0.875) == "flips, 5 crops at 0.875: 12 views"


def test_options_are_checked():
    for options, message in [
        ({"flips": False, "crops": 0}, "no view"),
        ({"crops": 6}, r"crops must be in \[0, 5\]"),
        ({"scale": 1.0}, "scale"),
        ({"flips": "yes"}, "flips must be true or false"),
    ]:
        with pytest.raises(ValueError, match=message):
            tta.check_options(**options)
    assert tta.parse_options("flips,crops=5") == {
        "flips": True,
        "crops": 5,
        "scale": 0.875,
    }
    assert tta.parse_options("crops=2, scale=0.8")["flips"] is False
    with pytest.raises(ValueError, match="'flip' is not one of flips"):
        tta.parse_options("flip")
    with pytest.raises(ValueError, match="crops must be in"):
        tta.parse_options("crops=9")
    assert load_recipe(TINY).tta is None
    assert load_recipe(TINY, ["tta=true"]).tta.flips is True
    for override, message in [
        ("tta={flips: false}", "tta: .*no view but the image itself"),
        ("tta.crops=6", "tta.crops: received 6"),
        ("tta.flip=true", "tta.flip: unknown key. Did you mean 'flips'"),
    ]:
        with pytest.raises(RecipeError, match=message):
            load_recipe(TINY, [override])


def _accuracy(model, pipelines, split="test"):
    hits = total = 0
    for images, labels in pipelines.dataset(split, 64, ordered=True):
        predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
        hits += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return hits / total


def test_recipe_tta_adds_its_numbers_and_changes_no_other(tmp_path):
    common = ["stage1.epochs=1", "stage2.epochs=0", f"data.cache_dir={tmp_path}/c"]
    reports = {}
    for name, extra in (("plain", []), ("tta", ["tta={flips: true, crops: 2}"])):
        keras.utils.clear_session()
        r = load_recipe(TINY, [f"output_dir={tmp_path / name}", *common, *extra])
        reports[name] = run(r, log=lambda line: None)
    plain, with_tta = reports["plain"], reports["tta"]
    assert "tta" not in plain
    assert set(with_tta) - set(plain) == {"tta"}
    for key in ("test_accuracy", "confusion", "final_weights", "test_images"):
        assert with_tta[key] == plain[key], key
    for key in ("val_accuracy", "test_accuracy", "best_epoch"):
        assert with_tta["stage1"][key] == plain["stage1"][key], key
    section = with_tta["tta"]
    assert section["views"] == tta.view_names(True, 2) and section["crops"] == 2
    assert section["test_accuracy_without"] == plain["test_accuracy"]
    assert section["gain"] == pytest.approx(
        section["test_accuracy"] - plain["test_accuracy"]
    )
    saved = json.loads((tmp_path / "tta" / "report.json").read_text())
    assert saved["tta"] == section
    # The numbers are model.keras's, with and without the views.
    model = keras.saving.load_model(tmp_path / "tta" / "model.keras", safe_mode=True)
    pipelines = Pipelines(load_recipe_data(r), r.model.image_size, cache="none")
    try:
        assert _accuracy(model, pipelines) == pytest.approx(plain["test_accuracy"])
        averaged = tta.with_tta(model, flips=True, crops=2)
        assert _accuracy(averaged, pipelines) == pytest.approx(section["test_accuracy"])
    finally:
        pipelines.close()


def test_predict_cli_with_tta(tmp_path, capsys):
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    path = str(tmp_path / "coffee.png")
    assert main(["predict", path, "--top", "1"]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert main(["predict", path, "--top", "1", "--tta", "flips,crops=2"]) == 0
    averaged = capsys.readouterr().out.splitlines()
    assert "espresso" in plain[1] and "espresso" in averaged[1]
    assert plain[1] != averaged[1], "the views changed no probability"
    assert main(["predict", path, "--tta", "mirror"]) == 1
    assert "--tta: 'mirror' is not one of flips" in capsys.readouterr().err

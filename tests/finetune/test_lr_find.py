"""The LR range test: the callback drives the learning rate and logs each
batch's loss, stops on divergence, suggests a rate inside the range; `kerazoo
lr-find` writes its plot and numbers; `learning_rate: auto` trains the stage
with the suggestion and records it."""

import json
import pathlib
import types

import keras
import numpy as np
import pytest
from PIL import Image

from kerazoo import cli
from kerazoo.finetune import build
from kerazoo.finetune import run
from kerazoo.finetune.engine import _auto_learning_rate
from kerazoo.finetune.engine import find_learning_rate
from kerazoo.finetune.lr_find import LRRangeTest
from kerazoo.finetune.lr_find import range_test
from kerazoo.finetune.lr_find import smooth
from kerazoo.finetune.lr_find import suggest
from kerazoo.recipes import RecipeError
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")
# 100 training images, 90 each for validation and test.
SMALL = "data.uri=digits?shots=10&validation=0.05&test=0.05"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Stage-1 feature files shared by this module's runs (content-keyed)."""
    return tmp_path_factory.mktemp("cache")


def tiny(tmp_path, cache, *overrides):
    return load_recipe(
        TINY,
        [
            SMALL,
            f"data.cache_dir={cache}",
            f"output_dir={tmp_path / 'run'}",
            *overrides,
        ],
    )


def small_model():
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def arrays(n=128):
    x = np.random.default_rng(0).uniform(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0.5).astype("int32")


class _SeenRates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        rate = self.model.optimizer.learning_rate
        self.rates.append(float(keras.ops.convert_to_numpy(rate)))


def test_the_callback_drives_the_rate_and_logs_each_batch_loss():
    model = small_model()
    x, y = arrays()
    before = model.get_weights()
    test, seen = LRRangeTest(1e-9, 1e-8, steps=5), _SeenRates()
    model.compile(
        optimizer=keras.optimizers.SGD(), loss="sparse_categorical_crossentropy"
    )
    model.fit(x, y, batch_size=16, callbacks=[test, seen], verbose=0, shuffle=False)
    assert len(test.losses) == 5  # stopped after `steps`, not after the epoch
    expected = np.geomspace(1e-9, 1e-8, 5)
    np.testing.assert_allclose(test.learning_rates, expected, rtol=1e-6)
    np.testing.assert_allclose(seen.rates, expected, rtol=1e-5)
    # Each logged loss is that batch's, not the epoch's running mean (the
    # rates are too small to move the weights).
    model.set_weights(before)
    direct = [
        float(
            keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    y[16 * i : 16 * (i + 1)], model(x[16 * i : 16 * (i + 1)])
                )
            )
        )
        for i in range(5)
    ]
    np.testing.assert_allclose(test.losses, direct, rtol=1e-4)


def test_range_test_stops_on_divergence_and_puts_the_weights_back():
    model = small_model()
    before = model.get_weights()
    result = range_test(
        model,
        arrays(),
        "sparse_categorical_crossentropy",
        keras.optimizers.SGD(),
        min_lr=1e-3,
        max_lr=1e6,
        steps=60,
        batch_size=16,
    )
    assert result["stopped"] in ("diverged", "loss not finite")
    assert result["steps_run"] < 60
    assert result["min_lr"] <= result["suggestion"] <= result["learning_rates"][-1]
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_suggestion_rule():
    lrs = np.geomspace(1e-6, 1, 100)
    x = np.log10(lrs)
    # Falls fastest at 1e-3, lowest near 1e-1, then rises.
    loss = 2 - np.tanh(2 * (x + 3)) + 0.5 * np.maximum(x + 1, 0) ** 2
    value, rule = suggest(lrs, loss)
    assert rule == "steepest descent"
    assert 10**-3.3 < value < 10**-2.7
    # The smoothing the suggestion reads has no lag: on noisy losses the
    # steepest descent stays at 1e-3 (a running average moves it later).
    noisy = loss + np.random.default_rng(0).normal(0, 0.15, 100)
    value, rule = suggest(lrs, smooth(noisy))
    assert rule == "steepest descent"
    assert 10**-3.4 < value < 10**-2.6
    assert np.isnan(smooth([1.0, 2.0, np.inf])[-1])
    # Lowest at the start: a tenth of it, never below the range.
    value, rule = suggest(lrs, np.linspace(1, 5, 100))
    assert (value, rule) == (1e-6, "minimum / 10")
    # Lowest early, but not first: a tenth of the rate there.
    value, rule = suggest(lrs, np.abs(x + 5.8) + 1)
    assert rule == "minimum / 10"
    assert value == pytest.approx(max(lrs[np.argmin(np.abs(x + 5.8))] / 10, 1e-6))
    # Non-finite losses are left out.
    assert (
        suggest(lrs[:50], np.r_[loss[:49], np.nan])[0]
        == suggest(lrs[:49], loss[:49])[0]
    )


def test_lr_find_command_writes_the_plot_and_the_json(tmp_path, cache, capsys):
    code = cli.main(
        [
            "lr-find",
            str(TINY),
            "--set",
            SMALL,
            "--set",
            f"data.cache_dir={cache}",
            "--set",
            f"output_dir={tmp_path / 'run'}",
            "--steps",
            "40",
            "--min-lr",
            "1e-5",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    folder = tmp_path / "run-lr_find"  # output_dir stays free for the run
    assert not (tmp_path / "run").exists()
    result = json.loads((folder / "lr_find.json").read_text())
    assert Image.open(folder / "lr_find.png").format == "PNG"
    assert 0 < result["steps_run"] <= 40
    assert result["learning_rates"][0] == pytest.approx(1e-5)
    tried = result["learning_rates"]
    assert tried[0] <= result["suggestion"] <= tried[-1] <= 1.0
    assert result["rule"] in ("steepest descent", "minimum / 10")
    assert f"suggested learning rate: {result['suggestion']:.3g}" in out


def test_stage_two_range_test_unfreezes_the_body(tmp_path, cache):
    recipe = tiny(tmp_path, cache)
    logs = []
    result = find_learning_rate(recipe, 2, steps=6, log=logs.append)
    assert result["steps_run"] == 6
    assert any("untrained head" in line for line in logs)
    assert any("body weights unfrozen" in line for line in logs)
    assert all(pathlib.Path(p).exists() for p in result["files"])
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        find_learning_rate(recipe, 3)


def test_learning_rate_auto_trains_with_the_suggestion_and_reports_it(tmp_path, cache):
    auto = tiny(
        tmp_path / "auto",
        cache,
        "stage1.optimizer.learning_rate=auto",
        "stage1.epochs=1",
        "stage2.epochs=0",
    )
    report = run(auto, log=lambda line: None)
    stage1 = report["stage1"]
    found = json.loads((tmp_path / "auto/run/lr_find_stage1.json").read_text())
    assert stage1["learning_rate"] == found["suggestion"]
    assert stage1["lr_find"]["rule"] == found["rule"]
    assert (tmp_path / "auto/run" / stage1["lr_find"]["plot"]).exists()
    assert 1e-6 <= stage1["learning_rate"] <= 1.0
    assert report["recipe"]["stage1"]["optimizer"]["learning_rate"] == "auto"
    # The stage trained with the suggestion, from the weights it would have
    # started from without the range test.
    keras.utils.clear_session()
    fixed = tiny(
        tmp_path / "fixed",
        cache,
        f"stage1.optimizer.learning_rate={stage1['learning_rate']!r}",
        "stage1.epochs=1",
        "stage2.epochs=0",
    )
    run(fixed, log=lambda line: None)
    a = _head(tmp_path / "auto/run/stage1.weights.h5", auto)
    b = _head(tmp_path / "fixed/run/stage1.weights.h5", fixed)
    np.testing.assert_allclose(a, b, atol=1e-6)


def _head(path, recipe):
    keras.utils.clear_session()
    parts = build(recipe, 10)
    parts["model"].load_weights(path)
    return keras.ops.convert_to_numpy(parts["model"].get_layer("predictions").kernel)


def test_a_resumed_stage_keeps_the_rate_it_chose():
    spec = load_recipe(TINY, ["stage1.optimizer.learning_rate=auto"]).stage1
    stage = types.SimpleNamespace(number=1, spec=spec)
    # No range test runs (it would need the context): the record decides.
    chosen = _auto_learning_rate(None, stage, {"learning_rate": 0.0123}, None)
    assert chosen.optimizer.learning_rate == 0.0123
    assert chosen.optimizer.name == spec.optimizer.name
    assert chosen.epochs == spec.epochs


def test_auto_is_validated():
    recipe = load_recipe(TINY, ["stage2.optimizer.learning_rate=auto"])
    assert recipe.stage2.optimizer.learning_rate == "auto"
    with pytest.raises(RecipeError, match="a number > 0, or 'auto'"):
        load_recipe(TINY, ["stage1.optimizer.learning_rate=fast"])
    with pytest.raises(RecipeError, match="a search draws its own"):
        load_recipe(
            TINY, ["stage1.optimizer.learning_rate=auto", "search.max_trials=2"]
        )

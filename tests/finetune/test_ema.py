"""Weight EMA (`stage.ema`, `kerazoo.finetune.ema`): validation, the best
epoch and the final weights are the average's, which starts at start_epoch
and survives a resume from the epoch backup."""

import json
import pathlib

import keras
import numpy as np
import pytest

from kerazoo import optimizers
from kerazoo.data.pipeline import Pipelines
from kerazoo.finetune import run
from kerazoo.finetune.ema import WeightEMA
from kerazoo.finetune.engine import EpochBackup
from kerazoo.finetune.engine import FinetuneError
from kerazoo.finetune.engine import load_recipe_data
from kerazoo.recipes import RecipeError
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")
DECAY = 0.6
BATCH = 8  # 4 steps an epoch


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 2))).astype("float32")
    return x, y


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    model.compile(
        optimizers.get(
            {
                "name": "momentum",
                "learning_rate": 0.05,
                "use_ema": True,
                "ema_momentum": DECAY,
            }
        ),
        "mse",
    )
    return model


class _Watch(keras.callbacks.Callback):
    """The kernel after each training step, during each validation and at
    each epoch's end (after `WeightEMA`'s own epoch end)."""

    def __init__(self):
        super().__init__()
        self.steps, self.validated, self.epoch_end = [], [], []

    def _kernel(self):
        return keras.ops.convert_to_numpy(self.model.get_layer("dense").kernel)

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self._kernel())

    def on_test_begin(self, logs=None):
        self.validated.append(self._kernel())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append(self._kernel())


@pytest.mark.parametrize("start_epoch", [0, 1])
def test_validation_and_the_final_weights_are_the_average(start_epoch):
    x, y = _data()
    model = _model()
    watch = _Watch()
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=3,
        validation_data=(x[:8], y[:8]),
        shuffle=False,
        verbose=0,
        callbacks=[WeightEMA(start_epoch), watch],
    )
    steps = len(x) // BATCH
    # The average by hand: it starts from the weights as epoch start_epoch
    # begins (the first step's weights when that is the first epoch).
    average, expected = None, []
    for i, raw in enumerate(watch.steps):
        epoch = i // steps
        if epoch >= start_epoch:
            if average is None:
                average = watch.steps[i - 1] if i else raw
            average = DECAY * average + (1 - DECAY) * raw
        if i % steps == steps - 1:
            expected.append(average if epoch >= start_epoch else raw)
    for epoch in range(3):
        np.testing.assert_allclose(watch.validated[epoch], expected[epoch], rtol=1e-5)
        # Outside validation the model trains (and is backed up) on raw weights.
        np.testing.assert_array_equal(
            watch.epoch_end[epoch], watch.steps[(epoch + 1) * steps - 1]
        )
    before = watch.validated[:start_epoch]
    assert all(
        np.array_equal(v, watch.steps[(e + 1) * steps - 1])
        for e, v in enumerate(before)
    )
    final = keras.ops.convert_to_numpy(model.get_layer("dense").kernel)
    np.testing.assert_allclose(final, expected[-1], rtol=1e-5)
    assert np.abs(final - watch.steps[-1]).max() > 1e-3, "the average is the raw"
    # Each epoch's val_loss is the averaged weights' loss.
    model.get_layer("dense").kernel.assign(expected[-1])
    val_loss = model.evaluate(x[:8], y[:8], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-5)


class _Stop(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("start_epoch", [0, 2])
def test_resumed_fit_goes_on_with_the_backed_up_average(tmp_path, start_epoch):
    x, y = _data()

    def fit(backup, *extra, initial_epoch=0):
        model = _model()
        model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=4,
            initial_epoch=initial_epoch,
            validation_data=(x[:8], y[:8]),
            shuffle=False,
            verbose=0,
            callbacks=[WeightEMA(start_epoch), EpochBackup(backup), *extra],
        )
        return keras.ops.convert_to_numpy(model.get_layer("dense").kernel)

    whole = fit(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", _Stop())
    assert EpochBackup.completed_epochs(tmp_path / "cut") == 2
    resumed = fit(tmp_path / "cut", initial_epoch=2)
    np.testing.assert_allclose(resumed, whole, rtol=1e-6, atol=1e-7)


def test_recipe_ema_is_off_by_default_and_checked():
    plain = load_recipe(TINY)
    assert plain.stage1.ema is None and plain.stage2.ema is None
    on = load_recipe(TINY, ["stage2.ema=true"]).stage2.ema
    assert (on.decay, on.start_epoch) == (0.999, 0)
    cases = {
        "stage2.ema.decay=1": "stage2.ema.decay: received 1",
        "stage2.ema.decy=0.9": "stage2.ema.decy: unknown key. Did you mean 'decay'",
        "stage2.ema={start_epoch: 2}": "stage2.ema: .* must be below the stage's",
        "stage2.ema=3": "stage2.ema: received 3; true",
        "stage1.optimizer.use_ema=true": "stage1.optimizer: .*use_ema: the weight",
    }
    for override, message in cases.items():
        with pytest.raises(RecipeError, match=message):
            load_recipe(TINY, [override])


def _accuracy(model, pipelines, split):
    hits = total = 0
    for images, labels in pipelines.dataset(split, 64, ordered=True):
        predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
        hits += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return hits / total


def test_run_with_ema_resumes_and_scores_what_the_report_says(tmp_path, monkeypatch):
    overrides = [
        f"output_dir={tmp_path / 'run'}",
        "stage1.epochs=1",
        "stage2.epochs=3",
        "stage2.ema={decay: 0.7, start_epoch: 1}",
        "stage1.ema={decay: 0.5}",  # the head on cached features
    ]
    r = load_recipe(TINY, overrides)
    # 7 batches an epoch: batch 9 of stage 2 is in its second epoch.
    monkeypatch.setenv("KERAZOO_FAULT_NAN_BATCH", "2,9")
    with pytest.raises(FinetuneError, match="stage 2 stopped"):
        run(r, log=lambda line: None)
    monkeypatch.delenv("KERAZOO_FAULT_NAN_BATCH")
    keras.utils.clear_session()
    lines = []
    report = run(load_recipe(TINY, overrides), log=lines.append)
    assert any("stage 2: resuming after epoch 1 of 3" in line for line in lines)
    assert any("EMA of the weights (decay 0.7" in line for line in lines), lines
    out = tmp_path / "run"
    stage2 = report["stage2"]
    assert stage2["ema"] == {"decay": 0.7, "start_epoch": 1}
    assert report["stage1"]["ema"] == {"decay": 0.5, "start_epoch": 0}
    assert report["stage1"]["cached_features"]
    assert "EMA of the weights, decay 0.7" in report["final_weights"]
    assert json.loads((out / "report.json").read_text())["stage2"]["ema"]
    # model.keras scores the val_accuracy the report (and the history) give
    # its epoch, and the test accuracy.
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    data = load_recipe_data(r)
    pipelines = Pipelines(data, r.model.image_size, cache="none", deterministic=True)
    try:
        validation = _accuracy(model, pipelines, "validation")
        test = _accuracy(model, pipelines, "test")
    finally:
        pipelines.close()
    assert validation == pytest.approx(stage2["val_accuracy"], abs=1e-6)
    assert test == pytest.approx(report["test_accuracy"], abs=1e-6)

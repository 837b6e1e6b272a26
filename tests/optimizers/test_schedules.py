"""Schedules against their formulas, their configs, and the learning-rate range
test."""

import math

import keras
import numpy as np
import pytest

from kerazoo import optimizers
from kerazoo.optimizers import schedules


def _values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_warmup_cosine_matches_formula():
    schedule = schedules.WarmupCosine(
        0.1, total_steps=100, warmup_steps=10, initial_learning_rate=0.01
    )
    steps = np.arange(0, 120)
    expected = np.where(
        steps < 10,
        0.01 + (0.1 - 0.01) * steps / 10,
        0.5 * 0.1 * (1 + np.cos(np.pi * np.clip((steps - 10) / 90, 0, 1))),
    )
    np.testing.assert_allclose(_values(schedule, steps), expected, atol=1e-7)


def test_one_cycle_learning_rate_and_momentum():
    cycle = schedules.OneCycle(1.0, total_steps=100, pct_start=0.3, div_factor=10)
    momentum = cycle.momentum_schedule(base_momentum=0.8, max_momentum=0.9)
    lr = _values(cycle, range(101))
    mom = _values(momentum, range(101))
    assert lr[0] == pytest.approx(0.1) and lr[30] == pytest.approx(1.0)
    assert lr[100] == pytest.approx(0.1 / 1e4, rel=1e-3)
    assert np.all(np.diff(lr[:31]) > 0) and np.all(np.diff(lr[30:]) < 0)
    # Momentum mirrors the rate: lowest at the peak, highest at both ends.
    assert mom[0] == pytest.approx(0.9) and mom[30] == pytest.approx(0.8)
    assert mom[100] == pytest.approx(0.9)
    assert np.argmax(lr) == np.argmin(mom) == 30
    # Half-cosine shape halfway up.
    mid = 0.1 + (1.0 - 0.1) * 0.5 * (1 - math.cos(math.pi * 15 / 30))
    assert lr[15] == pytest.approx(mid, rel=1e-5)


def test_step_decay():
    schedule = schedules.StepDecay(0.1, step_size=30, gamma=0.5)
    np.testing.assert_allclose(
        _values(schedule, [0, 29, 30, 59, 60, 95]),
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.WarmupCosine(0.1, 100, warmup_steps=5, final_learning_rate=1e-4),
        schedules.OneCycle(0.3, 50, pct_start=0.4),
        schedules.OneCycleMomentum(50, 0.4, 0.8, 0.95),
        schedules.StepDecay(0.1, 10, 0.3),
    ],
    ids=lambda s: type(s).__name__,
)
def test_schedule_serialisation_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    np.testing.assert_array_equal(
        _values(restored, range(0, 60, 7)), _values(schedule, range(0, 60, 7))
    )


def test_schedule_drives_the_optimizer():
    optimizer = optimizers.SGD(schedules.StepDecay(0.1, step_size=2, gamma=0.5))
    variable = keras.Variable(np.zeros(1, "float32"))
    deltas = []
    for _ in range(5):
        before = variable.numpy()[0]
        optimizer.apply_gradients([(np.ones(1, "float32"), variable)])
        deltas.append(before - variable.numpy()[0])
    np.testing.assert_allclose(deltas, [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.WarmupCosine(0.1, 10, warmup_steps=11), "warmup_steps"),
        (lambda: schedules.WarmupCosine(-0.1, 10), "peak_learning_rate"),
        (lambda: schedules.OneCycle(0.1, 0), "total_steps"),
        (lambda: schedules.OneCycle(0.1, 10, pct_start=1.0), "pct_start"),
        (lambda: schedules.OneCycleMomentum(10, max_momentum=1.0), "max_momentum"),
        (lambda: schedules.StepDecay(0.1, 10, gamma=0.0), "gamma"),
    ],
)
def test_bad_schedule_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --- learning-rate range test -------------------------------------------------


def _digits_model():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model, x, y


def test_lr_find_returns_pairs_suggestion_and_plot_and_leaves_no_trace(tmp_path):
    model, x, y = _digits_model()
    before = [v.numpy().copy() for v in model.weights]
    plot = tmp_path / "lr_find.png"
    result = optimizers.lr_find(
        model,
        x,
        y,
        batch_size=64,
        start_learning_rate=1e-5,
        end_learning_rate=100.0,
        num_steps=120,
        plot=plot,
        verbose=0,
    )
    pairs = result.pairs()
    assert 20 < len(pairs) <= 120
    rates = np.array([lr for lr, _ in pairs])
    np.testing.assert_allclose(rates[1:] / rates[:-1], (1e7) ** (1 / 119), rtol=1e-9)
    # The loss falls from its starting value, then blows up at huge rates.
    assert result.diverged
    assert min(result.smoothed_losses) < result.smoothed_losses[0] - 0.5
    # SGD with momentum on this problem trains well between 1e-3 and 1.
    assert 1e-3 < result.suggestion < 1.0, result.suggestion
    assert result.suggestion <= result.min_loss_learning_rate
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Weights, optimizer state and learning rate are restored exactly.
    for variable, old in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), old)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    for variable in model.optimizer.variables:
        if "velocity" in variable.path:
            assert not np.any(variable.numpy())


def test_lr_find_refuses_schedules_and_uncompiled_models():
    model, x, y = _digits_model()
    model.compile(optimizer=optimizers.SGD(schedules.StepDecay(0.1, 5)), loss="mse")
    with pytest.raises(ValueError, match="not a schedule"):
        optimizers.lr_find(model, x, y, verbose=0)
    bare = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="compiled model"):
        optimizers.lr_find(bare, x, y, verbose=0)

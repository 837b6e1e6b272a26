"""Non-finite gradients, learning-rate multipliers, scheduled momentum, resuming
from a saved model, and the batching regimes."""

import warnings

import keras
import numpy as np
import pytest

from kerazoo import optimizers
from kerazoo.models import scoped_model
from kerazoo.optimizers import schedules

NAMES = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad")


def _make(name, **kwargs):
    return optimizers.get({"name": name, "learning_rate": 0.05, **kwargs})


def _slots(optimizer):
    return [
        v.numpy().copy()
        for v in optimizer.variables
        if v.path.split("/")[-1] not in ("iteration", "nonfinite_updates")
    ]


@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_gradient_skips_update_and_is_counted(name):
    optimizer = _make(name)
    a = keras.Variable(np.array([1.0, -2.0], "float32"))
    b = keras.Variable(np.array([0.5, 0.5], "float32"))
    optimizer.apply_gradients([(np.array([0.3, -0.1], "float32"), a), (b * 0.2, b)])
    a_before, b_before = a.numpy().copy(), b.numpy().copy()
    slots_before = _slots(optimizer)
    # A NaN in a's gradient, an Inf in b's: neither variable nor slot moves.
    optimizer.apply_gradients(
        [
            (np.array([np.nan, 1.0], "float32"), a),
            (np.array([np.inf, 0.0], "float32"), b),
        ]
    )
    # Decoupled weight decay depends on the weights alone and still applies.
    shrink = 1 - 0.05 * optimizer.weight_decay if optimizer.weight_decay else 1
    np.testing.assert_allclose(a.numpy(), a_before * shrink, rtol=1e-7)
    np.testing.assert_allclose(b.numpy(), b_before * shrink, rtol=1e-7)
    for got, expected in zip(_slots(optimizer), slots_before, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert int(optimizer.nonfinite_updates.numpy()) == 2
    # Training goes on normally afterwards.
    optimizer.apply_gradients([(np.array([0.3, -0.1], "float32"), a), (b * 0.2, b)])
    assert np.all(np.isfinite(a.numpy())) and not np.array_equal(a.numpy(), a_before)
    assert int(optimizer.nonfinite_updates.numpy()) == 2


COMPILED_CASES = {
    **{name: {"name": name} for name in NAMES},
    "adam, scheduled beta_1": {
        "name": "adam",
        "beta_1": keras.optimizers.schedules.ExponentialDecay(0.9, 3, 0.5),
    },
    "nesterov, scheduled momentum": {
        "name": "nesterov",
        "momentum": keras.optimizers.schedules.ExponentialDecay(0.9, 3, 0.5),
    },
}


def _op_types(function, *args):
    graph = function.get_concrete_function(*args).graph
    types = {op.type for op in graph.get_operations()}
    for inner in graph._functions.values():
        types |= {node.op for node in inner.cached_definition.node_def}
    return types


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.function's two guards"
)
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", list(COMPILED_CASES))
def test_nonfinite_skip_in_compiled_functions(case, jit_compile):
    """Inside a tf.function the guard is a cond; under XLA the update runs
    straight through with neutral inputs (a zero gradient, decays of 1). Both
    leave the bad variable and every slot exactly as they were, from the first
    step on (where a scheduled beta_1's product is still 1), count the skip,
    and let the others update."""
    import tensorflow as tf

    optimizer = _make(**COMPILED_CASES[case])
    a = keras.Variable(np.array([1.0, -2.0], "float32"))
    b = keras.Variable(np.array([0.5, 0.5], "float32"))
    optimizer.build([a, b])

    @tf.function(jit_compile=jit_compile)
    def step(ga, gb):
        optimizer.apply([ga, gb], [a, b])

    good = tf.constant([0.3, -0.1])
    nan, inf = tf.constant([np.nan, 1.0]), tf.constant([-np.inf, 0.0])
    shrink = 1 - 0.05 * optimizer.weight_decay if optimizer.weight_decay else 1

    def skipped_entirely():
        before = [a.numpy().copy(), b.numpy().copy()], _slots(optimizer)
        step(nan, inf)
        after = [a.numpy(), b.numpy()], _slots(optimizer)
        for got, expected in zip(after[0], before[0], strict=True):
            np.testing.assert_allclose(got, expected * shrink, rtol=1e-7)
        for got, expected in zip(after[1], before[1], strict=True):
            np.testing.assert_array_equal(got, expected)

    skipped_entirely()  # the first step, every slot at its initial value
    assert int(optimizer.nonfinite_updates.numpy()) == 2
    step(good, good)
    step(good * 2, good)
    a_before, b_before = a.numpy().copy(), b.numpy().copy()
    step(nan, good)
    np.testing.assert_allclose(a.numpy(), a_before * shrink, rtol=1e-7)
    assert not np.allclose(b.numpy(), b_before * shrink)
    assert int(optimizer.nonfinite_updates.numpy()) == 3
    skipped_entirely()  # slots away from their initial values
    assert int(optimizer.nonfinite_updates.numpy()) == 5
    step(good, good)
    assert np.all(np.isfinite(a.numpy())) and not np.allclose(a.numpy(), a_before)
    assert int(optimizer.nonfinite_updates.numpy()) == 5
    assert int(optimizer.iterations.numpy()) == 6


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.function's two guards"
)
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_guard_is_a_cond_without_xla_and_straight_line_under_xla(name):
    """Without XLA one cond picks the plain updates (fused kernels) or the
    guarded ones; under XLA, where a conditional splits the fused update
    (1.3-1.7x the unguarded step, benchmarks/RESULTS.md), there is none."""
    import tensorflow as tf

    def traced(jit_compile):
        optimizer = _make(name)
        variables = [keras.Variable(np.ones(2, "float32")) for _ in range(2)]
        optimizer.build(variables)

        @tf.function(jit_compile=jit_compile)
        def step(ga, gb):
            optimizer.apply([ga, gb], variables)

        spec = tf.TensorSpec((2,), tf.float32)
        return _op_types(step, spec, spec)

    types = {jit_compile: traced(jit_compile) for jit_compile in (False, True)}
    assert types[False] & {"If", "StatelessIf"}
    assert not types[True] & {"If", "StatelessIf"}


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the step-level check is TF's"
)
def test_step_check_matches_flags_to_variables_when_some_have_no_gradient():
    """A step that updates only some of the optimizer's variables: each flag
    guards its own variable."""
    import tensorflow as tf

    optimizer = _make("momentum")
    a, b, c = (keras.Variable(np.array([1.0, -2.0], "float32")) for _ in range(3))
    optimizer.build([a, b, c])

    @tf.function
    def step(gb, gc):
        optimizer.apply([gb, gc], [b, c])

    step(tf.constant([0.3, -0.1]), tf.constant([np.nan, 1.0]))
    assert not np.array_equal(b.numpy(), [1.0, -2.0])  # b's gradient is finite
    np.testing.assert_array_equal(c.numpy(), [1.0, -2.0])  # c's is not
    np.testing.assert_array_equal(a.numpy(), [1.0, -2.0])
    assert int(optimizer.nonfinite_updates.numpy()) == 1


FUSED_CASES = {
    "sgd": ({"name": "sgd"}, "ResourceApplyGradientDescent"),
    "momentum": ({"name": "momentum"}, "ResourceApplyMomentum"),
    "nesterov": ({"name": "nesterov"}, "ResourceApplyMomentum"),
    "adam": ({"name": "adam", "epsilon": 0.5}, "ResourceApplyAdam"),
    "adamw": ({"name": "adamw", "weight_decay": 0.1}, "ResourceApplyAdam"),
    "adam, scheduled beta_1": (
        {
            "name": "adam",
            "beta_1": keras.optimizers.schedules.ExponentialDecay(0.9, 3, 0.5),
        },
        "ResourceApplyAdam",
    ),
    "rmsprop": ({"name": "rmsprop", "epsilon": 0.5}, "ResourceApplyGradientDescent"),
    "adagrad": ({"name": "adagrad", "epsilon": 0.5}, "ResourceApplyGradientDescent"),
    "sgd, unguarded": ({"name": "sgd", "skip_nonfinite": False}, None),
    "momentum, multipliers": (
        {"name": "momentum", "lr_multipliers": {"a": 0.5}},
        "ResourceApplyMomentum",
    ),
}


def _graph_ops(function, *args):
    """Every op type in a tf.function's graph and in the functions it calls
    (the branches of a cond)."""
    graph = function.get_concrete_function(*args).graph
    types = {op.type for op in graph.get_operations()}
    for inner in graph._functions.values():
        types |= {node.op for node in inner.cached_definition.node_def}
    return types


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's kernels"
)
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", list(FUSED_CASES))
def test_fused_kernels_compute_the_generic_update(case, jit_compile):
    """On TensorFlow the rules with a fused training kernel use it (it is in
    the traced graph) and give the generic path's variables and slots, also
    with a scheduled beta_1, weight decay, learning-rate multipliers and the
    guard off; a step with a NaN still skips its variable."""
    import tensorflow as tf

    config, kernel = FUSED_CASES[case]
    rng = np.random.default_rng(0)
    start = [rng.normal(size=s).astype("float32") for s in [(3, 4), (4,)]]
    gradients = [
        [tf.constant(rng.normal(size=s).astype("float32")) for s in [(3, 4), (4,)]]
        for _ in range(6)
    ]
    gradients[3][1] = tf.constant([np.nan, 0.0, 0.0, 0.0])

    def train(fused):
        optimizer = optimizers.get({"learning_rate": 0.05, **config})
        optimizer._use_fused_kernels = fused
        variables = [
            keras.Variable(x, name=n) for x, n in zip(start, "ab", strict=True)
        ]
        optimizer.build(variables)

        @tf.function(jit_compile=jit_compile)
        def step(ga, gb):
            optimizer.apply([ga, gb], variables)

        if fused and kernel and not jit_compile:
            assert kernel in _graph_ops(step, *gradients[0])
        for ga, gb in gradients:
            if config.get("skip_nonfinite", True) or np.isfinite(gb.numpy()).all():
                step(ga, gb)
        return [v.numpy() for v in variables] + _slots(optimizer)

    finals = [train(True), train(False)]
    for got, expected in zip(*finals, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
        assert np.all(np.isfinite(got))


def test_nonfinite_gradient_spreads_when_not_skipped():
    optimizer = _make("momentum", skip_nonfinite=False)
    a = keras.Variable(np.array([1.0, -2.0], "float32"))
    optimizer.apply_gradients([(np.array([np.nan, 1.0], "float32"), a)])
    assert np.isnan(a.numpy()[0])
    assert optimizer.nonfinite_updates is None


def test_nonfinite_skip_leaves_other_variables_updating():
    optimizer = _make("adam")
    a = keras.Variable(np.array([1.0], "float32"))
    b = keras.Variable(np.array([1.0], "float32"))
    optimizer.apply_gradients(
        [(np.array([np.nan], "float32"), a), (np.array([1.0], "float32"), b)]
    )
    assert a.numpy()[0] == 1.0 and b.numpy()[0] < 1.0


# --- learning-rate multipliers ---------------------------------------------------


def _two_quadratics(name, multipliers, lr=0.05, steps=20):
    """Two independent quadratics, one variable under 'body/', one under 'head/'."""
    with keras.name_scope("body"):
        body = keras.Variable(np.array([2.0, -1.0], "float32"), name="kernel")
    with keras.name_scope("head"):
        head = keras.Variable(np.array([1.5, 3.0], "float32"), name="kernel")
    assert body.path == "body/kernel" and head.path == "head/kernel"
    optimizer = optimizers.get(
        {"name": name, "learning_rate": lr, "lr_multipliers": multipliers}
    )
    for _ in range(steps):
        optimizer.apply_gradients([(2 * body.value, body), (3 * head.value, head)])
    return body.numpy(), head.numpy()


@pytest.mark.parametrize("name", NAMES)
def test_lr_multipliers_scale_each_group(name):
    body, head = _two_quadratics(name, {"body/.*": 0.1, "head/.*": 1.0})
    # The body alone at a tenth of the rate, the head alone at the full rate.
    body_ref, _ = _two_quadratics(name, {"body/": 0.1, "head": 0.1})
    _, head_ref = _two_quadratics(name, {"body": 1.0})
    np.testing.assert_allclose(body, body_ref, rtol=1e-6)
    np.testing.assert_allclose(head, head_ref, rtol=1e-6)
    # ... and the multiplier made a difference.
    plain_body, _ = _two_quadratics(name, {"body": 1.0})
    assert np.abs(body - plain_body).max() > 1e-3


def test_lr_multiplier_zero_freezes_group_in_a_model():
    inputs = keras.Input((3,))
    with keras.name_scope("body"):
        x = keras.layers.Dense(4, name="fc")(inputs)
    with keras.name_scope("head"):
        outputs = keras.layers.Dense(1, name="predictions")(x)
    model = keras.Model(inputs, outputs)
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(
        optimizer=optimizers.Adam(0.01, lr_multipliers={"body/": 0.0}), loss="mse"
    )
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 1)), verbose=0)
    after = model.trainable_variables
    for variable, old in zip(after, before, strict=True):
        moved = not np.array_equal(variable.numpy(), old)
        assert moved == variable.path.startswith("head/"), variable.path


def test_lr_multipliers_pattern_matching_nothing_warns():
    with keras.name_scope("head"):
        variable = keras.Variable(np.zeros(2, "float32"), name="kernel")
    optimizer = optimizers.SGD(0.1, lr_multipliers={"head/": 1.0, "body/": 0.1})
    with pytest.warns(UserWarning, match=r"\['body/'\] match none.*head/kernel"):
        optimizer.build([variable])


@pytest.mark.parametrize(
    "multipliers, message",
    [
        ({"body/": -1.0}, "non-negative"),
        ({"body/(": 0.1}, "not a valid regular expression"),
        ({}, "non-empty dict"),
        (["body"], "non-empty dict"),
    ],
)
def test_bad_lr_multipliers(multipliers, message):
    with pytest.raises(ValueError, match=message):
        optimizers.SGD(0.1, lr_multipliers=multipliers)


# --- scheduled momentum and beta_1 --------------------------------------------


def _quadratic_run(optimizer, steps=40):
    variable = keras.Variable(np.array([2.0, 3.0], "float32"))
    matrix = np.array([[3.0, 0.5], [0.5, 0.4]])
    trajectory = []
    for _ in range(steps):
        grad = matrix @ variable.numpy().astype("float64")
        optimizer.apply_gradients([(grad.astype("float32"), variable)])
        trajectory.append(variable.numpy().astype("float64"))
    return np.array(trajectory), matrix


@pytest.mark.parametrize("nesterov", [False, True])
def test_scheduled_momentum_matches_formula(nesterov):
    momentum = schedules.OneCycleMomentum(40, pct_start=0.3)
    got, matrix = _quadratic_run(
        optimizers.SGD(0.05, momentum=momentum, nesterov=nesterov)
    )
    gammas = [float(momentum(t)) for t in range(41)]
    theta, v, expected = np.array([2.0, 3.0]), np.zeros(2), []
    for t in range(40):
        point = theta - gammas[t] * v if nesterov else theta
        v = gammas[t] * v + 0.05 * (matrix @ point)
        theta = theta - v
        expected.append(theta - gammas[t + 1] * v if nesterov else theta)
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-4, atol=1e-6)


def test_constant_beta_1_schedule_equals_fixed_beta_1():
    constant = schedules.OneCycleMomentum(40, base_momentum=0.9, max_momentum=0.9)
    got, _ = _quadratic_run(optimizers.Adam(0.05, beta_1=constant))
    expected, _ = _quadratic_run(optimizers.Adam(0.05, beta_1=0.9))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_scheduled_hyperparameters_round_trip_config():
    cycle = schedules.OneCycle(0.5, total_steps=100)
    for optimizer in (
        optimizers.SGD(cycle, momentum=cycle.momentum_schedule(), nesterov=True),
        optimizers.AdamW(cycle, beta_1=cycle.momentum_schedule()),
    ):
        config = keras.saving.serialize_keras_object(optimizer)
        restored = keras.saving.deserialize_keras_object(config)
        assert type(restored) is type(optimizer)
        hyper = restored.momentum if hasattr(restored, "momentum") else restored.beta_1
        assert isinstance(hyper, schedules.OneCycleMomentum)
        assert hyper.get_config() == cycle.momentum_schedule().get_config()


# --- save mid-training, reload, continue -------------------------------------


def _tiny_model():
    keras.utils.set_random_seed(1)
    body = scoped_model(
        "body",
        lambda x: keras.layers.Dense(8, activation="tanh", name="fc")(x),
        keras.Input((4,)),
    )
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, name="predictions")(body(inputs))
    return keras.Model(inputs, outputs)


RESUME_CASES = {
    "sgd": {"name": "sgd", "learning_rate": 0.1},
    "nesterov": {"name": "nesterov", "learning_rate": 0.05},
    "rmsprop": {"name": "rmsprop", "learning_rate": 0.01},
    "adam-one-cycle": {"name": "adam", "learning_rate": "one_cycle", "beta_1": "mom"},
    "adamw": {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.01},
    "adagrad": {"name": "adagrad", "learning_rate": 0.1},
    "momentum-multipliers": {
        "name": "momentum",
        "learning_rate": 0.05,
        "lr_multipliers": {"body/": 0.1},
    },
}


def _optimizer_for(case):
    config = dict(RESUME_CASES[case])
    cycle = schedules.OneCycle(0.02, total_steps=40)
    if config["learning_rate"] == "one_cycle":
        config["learning_rate"] = cycle
    if config.get("beta_1") == "mom":
        config["beta_1"] = cycle.momentum_schedule()
    return optimizers.get(config)


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_save_reload_continue_equals_uninterrupted(case, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.integers(0, 3, size=40)
    fit = {"batch_size": 10, "shuffle": False, "verbose": 0}

    def compiled():
        model = _tiny_model()
        model.compile(
            optimizer=_optimizer_for(case),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    uninterrupted = compiled()
    uninterrupted.fit(x, y, epochs=4, **fit)

    interrupted = compiled()
    interrupted.fit(x, y, epochs=2, **fit)
    path = tmp_path / "mid.keras"
    interrupted.save(path)
    del interrupted
    keras.backend.clear_session()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # multipliers must still match
        resumed = keras.models.load_model(path)
    assert int(resumed.optimizer.iterations.numpy()) == 8
    resumed.fit(x, y, epochs=2, **fit)

    assert int(resumed.optimizer.iterations.numpy()) == 16
    for a, b in zip(resumed.weights, uninterrupted.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-7)
    for a, b in zip(
        resumed.optimizer.variables, uninterrupted.optimizer.variables, strict=True
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-7)


# --- batching regimes ---------------------------------------------------------


def test_batch_size_for_each_regime():
    assert optimizers.batch_size_for("example", 100) == 1
    assert optimizers.batch_size_for("minibatch", 100, batch_size=16) == 16
    assert optimizers.batch_size_for("minibatch", 10, batch_size=16) == 10
    assert optimizers.batch_size_for("full", 100) == 100
    assert optimizers.steps_per_epoch("minibatch", 100, batch_size=32) == 4
    assert optimizers.steps_per_epoch("example", 100) == 100
    with pytest.raises(ValueError, match=r"one of \['example', 'minibatch', 'full'\]"):
        optimizers.batch_size_for("batch", 100)


def test_full_batch_training_is_plain_gradient_descent():
    rng = np.random.default_rng(0)
    n = 50
    x = rng.normal(size=(n, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(n, 1))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    w0, b0 = (v.numpy().astype("float64") for v in model.weights)
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(
            [v.numpy().astype("float64") for v in model.weights]
        )
    )
    model.fit(
        x.astype("float32"),
        y.astype("float32"),
        batch_size=optimizers.batch_size_for("full", n),
        epochs=30,
        shuffle=True,
        verbose=0,
        callbacks=[record],
    )
    assert int(model.optimizer.iterations.numpy()) == 30  # one update per epoch
    w, b = w0, b0
    for step, (w_got, b_got) in enumerate(seen):
        residual = x @ w + b - y
        w = w - 0.1 * (2 / n) * x.T @ residual
        b = b - 0.1 * (2 / n) * residual.sum(axis=0)
        np.testing.assert_allclose(w_got, w, rtol=1e-4, err_msg=f"step {step + 1}")
        np.testing.assert_allclose(b_got, b, rtol=1e-4, err_msg=f"step {step + 1}")


def test_per_example_training_updates_once_per_example():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizers.SGD(0.01), loss="mse")
    model.fit(
        rng.normal(size=(12, 3)),
        rng.normal(size=(12, 1)),
        batch_size=optimizers.batch_size_for("example", 12),
        epochs=2,
        verbose=0,
    )
    assert int(model.optimizer.iterations.numpy()) == 24


def test_nan_in_fit_under_mirrored_strategy_is_skipped_and_counted():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute")
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.random((32, 3)).astype("float32")
    y = rng.random((32, 2)).astype("float32")
    y[0, 0] = np.nan  # every batch of the first epoch has a NaN loss
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert int(model.optimizer.nonfinite_updates.numpy()) == 4  # 2 steps x 2 vars
    for w, old in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(w, old)
    y[0, 0] = 0.5
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert not np.array_equal(model.get_weights()[0], before[0])

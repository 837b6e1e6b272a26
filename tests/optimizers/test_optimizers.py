"""kerazoo's optimizers against float64 NumPy implementations of their formulas,
against Keras's built-ins where those define the same update, and against bad
input."""

import keras
import numpy as np
import pytest

from kerazoo import optimizers

STEPS = 50

# --- float64 references, written from the formulas in the docstrings -------------


def reference(name, params, grad_fn, steps=STEPS, lr=0.05, **kw):
    """Runs the named update rule in float64; returns the list of states seen by
    the model (for Nesterov, the look-ahead point)."""
    theta = [np.array(p, dtype="float64") for p in params]
    slots = [[np.zeros_like(p) for p in theta] for _ in range(2)]
    if name == "adagrad":
        slots[0] = [
            np.full_like(p, kw.get("initial_accumulator_value", 0.1)) for p in theta
        ]
    trajectory = []
    for t in range(1, steps + 1):
        gamma = kw.get("momentum", 0.0)
        if name == "nesterov":
            point = [p - gamma * v for p, v in zip(theta, slots[0], strict=True)]
        else:
            point = theta
        grads = grad_fn(point)
        for i, g in enumerate(grads):
            if name == "sgd":
                theta[i] = theta[i] - lr * g
            elif name in ("momentum", "nesterov"):
                slots[0][i] = gamma * slots[0][i] + lr * g
                theta[i] = theta[i] - slots[0][i]
            elif name == "rmsprop":
                rho, eps = kw.get("rho", 0.9), kw.get("epsilon", 1e-7)
                slots[0][i] = rho * slots[0][i] + (1 - rho) * g**2
                theta[i] = theta[i] - lr * g / (np.sqrt(slots[0][i]) + eps)
            elif name == "adam":
                b1, b2 = kw.get("beta_1", 0.9), kw.get("beta_2", 0.999)
                eps = kw.get("epsilon", 1e-7)
                slots[0][i] = b1 * slots[0][i] + (1 - b1) * g
                slots[1][i] = b2 * slots[1][i] + (1 - b2) * g**2
                m_hat = slots[0][i] / (1 - b1**t)
                s_hat = slots[1][i] / (1 - b2**t)
                theta[i] = theta[i] - lr * m_hat / (np.sqrt(s_hat) + eps)
            elif name == "adagrad":
                slots[0][i] = slots[0][i] + g**2
                theta[i] = theta[i] - lr * g / np.sqrt(
                    slots[0][i] + kw.get("epsilon", 1e-7)
                )
        if name == "nesterov":
            trajectory.append(
                [p - gamma * v for p, v in zip(theta, slots[0], strict=True)]
            )
        else:
            trajectory.append([p.copy() for p in theta])
    return trajectory


CASES = {
    "sgd": (optimizers.SGD, {}),
    "momentum": (optimizers.SGD, {"momentum": 0.9}),
    "nesterov": (optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
    "rmsprop": (optimizers.RMSProp, {"rho": 0.9}),
    "adam": (optimizers.Adam, {}),
    "adagrad": (optimizers.AdaGrad, {"initial_accumulator_value": 0.1}),
}

# An ill-conditioned quadratic J = 0.5 x^T A x - b^T x.
A = np.array([[3.0, 0.5], [0.5, 0.4]])
B = np.array([1.0, -2.0])


def quadratic_grad(params):
    return [A @ params[0] - B]


def run_optimizer(optimizer, params, grad_fn, steps=STEPS):
    variables = [keras.Variable(np.array(p, "float32")) for p in params]
    trajectory = []
    for _ in range(steps):
        grads = grad_fn([v.numpy().astype("float64") for v in variables])
        # Tensors, not NumPy arrays: Keras's own torch optimizers need them.
        grads = [keras.ops.convert_to_tensor(g.astype("float32")) for g in grads]
        optimizer.apply_gradients(list(zip(grads, variables, strict=True)))
        trajectory.append([v.numpy().astype("float64") for v in variables])
    return trajectory


def assert_trajectories_close(got, expected, rtol=1e-4):
    for step, (a, b) in enumerate(zip(got, expected, strict=True)):
        for x, y in zip(a, b, strict=True):
            scale = max(np.abs(y).max(), 1e-3)
            err = np.abs(x - y).max() / scale
            assert err < rtol, f"step {step + 1}: relative error {err:.2e}"


@pytest.mark.parametrize("name", list(CASES))
def test_quadratic_trajectory_matches_formula(name):
    cls, kwargs = CASES[name]
    start = [np.array([2.0, 3.0])]
    got = run_optimizer(cls(learning_rate=0.05, **kwargs), start, quadratic_grad)
    expected = reference(name, start, quadratic_grad, lr=0.05, **kwargs)
    assert_trajectories_close(got, expected)
    # It did optimise: the loss fell.
    loss = lambda x: 0.5 * x @ A @ x - B @ x  # noqa: E731
    assert loss(got[-1][0]) < loss(start[0]) - 1.0


# A small tanh network with a mean-squared-error loss, backpropagated by hand.
RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 3))
Y = np.sin(X @ np.array([1.0, -2.0, 0.5]))[:, None]
NET = [RNG.normal(0, 0.5, (3, 8)), np.zeros(8), RNG.normal(0, 0.5, (8, 1)), np.zeros(1)]


def network_grad(params):
    w1, b1, w2, b2 = params
    h = np.tanh(X @ w1 + b1)
    out = h @ w2 + b2
    d_out = 2 * (out - Y) / len(X)
    d_h = (d_out @ w2.T) * (1 - h**2)
    return [X.T @ d_h, d_h.sum(0), h.T @ d_out, d_out.sum(0)]


def _keras_network():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.set_weights([p.astype("float32") for p in NET])
    return model


@pytest.mark.parametrize("name", list(CASES))
def test_network_full_batch_training_matches_formula(name):
    """`fit` with the batch size equal to the data set is full-batch gradient
    descent: each epoch is one step of the formula on the whole data set."""
    cls, kwargs = CASES[name]
    model = _keras_network()
    model.compile(
        optimizer=cls(learning_rate=0.05, **kwargs), loss="mse", jit_compile=False
    )
    got = []
    for _ in range(STEPS):
        model.fit(
            X.astype("float32"),
            Y.astype("float32"),
            batch_size=len(X),
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        got.append([w.astype("float64") for w in model.get_weights()])
    expected = reference(name, NET, network_grad, lr=0.05, **kwargs)
    assert_trajectories_close(got, expected)


KERAS_BUILTINS = {
    "sgd": (keras.optimizers.SGD, {}, 1e-5),
    "momentum": (keras.optimizers.SGD, {"momentum": 0.9}, 1e-5),
    "nesterov": (keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}, 1e-5),
    "adagrad": (keras.optimizers.Adagrad, {"initial_accumulator_value": 0.1}, 1e-5),
    # Same algorithm, epsilon placed differently: close, not equal.
    "rmsprop": (keras.optimizers.RMSprop, {"rho": 0.9}, 1e-4),
    "adam": (keras.optimizers.Adam, {}, 1e-4),
}


@pytest.mark.parametrize("name", list(KERAS_BUILTINS))
def test_matches_keras_builtin(name):
    cls, kwargs = CASES[name]
    keras_cls, keras_kwargs, rtol = KERAS_BUILTINS[name]
    start = [np.array([2.0, 3.0])]
    ours = run_optimizer(cls(learning_rate=0.05, **kwargs), start, quadratic_grad)
    theirs = run_optimizer(
        keras_cls(learning_rate=0.05, **keras_kwargs), start, quadratic_grad
    )
    assert_trajectories_close(ours, theirs, rtol=rtol)


def test_adamw_decays_weights_decoupled():
    var = keras.Variable(np.array([1.0, -2.0], "float32"))
    opt = optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.apply_gradients([(np.zeros(2, "float32"), var)])
    # Zero gradient: the Adam step is zero, only the decay acts.
    np.testing.assert_allclose(var.numpy(), [1.0 * 0.95, -2.0 * 0.95], rtol=1e-6)


@pytest.mark.parametrize("name", [*CASES, "adamw"])
def test_config_round_trip(name):
    opt = optimizers.get(name)
    config = opt.get_config()
    clone = type(opt).from_config(config)
    assert clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is type(opt)
    assert restored.get_config() == config


def test_get_resolves_names_and_dicts():
    assert type(optimizers.get("sgd")) is optimizers.SGD
    nesterov = optimizers.get("nesterov")
    assert nesterov.momentum == 0.9 and nesterov.nesterov
    custom = optimizers.get({"name": "momentum", "learning_rate": 0.2, "momentum": 0.5})
    assert custom.momentum == 0.5
    assert float(custom.learning_rate) == pytest.approx(0.2)
    assert type(optimizers.get("AdamW")) is optimizers.AdamW
    assert optimizers.get(nesterov) is nesterov
    serialized = keras.optimizers.serialize(optimizers.RMSProp(rho=0.8))
    assert optimizers.get(serialized).rho == 0.8


def test_unknown_name_lists_valid_names():
    with pytest.raises(
        ValueError,
        match="Did you mean 'adam'.*Valid names: sgd, "
        "momentum, nesterov, rmsprop, adam",
    ):
        optimizers.get("adma")
    with pytest.raises(ValueError, match="needs a 'name' key"):
        optimizers.get({"learning_rate": 0.1})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: optimizers.SGD(learning_rate=-0.1), "learning_rate=-0.1"),
        (lambda: optimizers.SGD(momentum=1.0), "momentum=1.0"),
        (lambda: optimizers.SGD(momentum=-0.5), "momentum=-0.5"),
        (lambda: optimizers.RMSProp(rho=-0.1), "rho=-0.1"),
        (lambda: optimizers.RMSProp(rho=1.0), "rho=1.0"),
        (lambda: optimizers.Adam(beta_1=1.2), "beta_1=1.2"),
        (lambda: optimizers.Adam(epsilon=0.0), "epsilon=0.0"),
        (
            lambda: optimizers.AdaGrad(initial_accumulator_value=-1),
            "initial_accumulator_value=-1",
        ),
        (lambda: optimizers.AdamW(weight_decay=0.0), "weight_decay=0.0"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.filterwarnings("ignore:Gradients do not exist")
@pytest.mark.parametrize("name", list(CASES))
def test_zero_and_missing_gradients(name):
    a = keras.Variable(np.array([1.0, 2.0], "float32"))
    b = keras.Variable(np.array([3.0], "float32"))
    opt = optimizers.get(name)
    # Zero gradients from the start move nothing; a None gradient is skipped.
    opt.apply_gradients([(np.zeros(2, "float32"), a), (None, b)])
    opt.apply_gradients([(np.zeros(2, "float32"), a), (None, b)])
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(b.numpy(), [3.0])


def test_base_class_features_keep_working():
    var = keras.Variable(np.array([0.0, 0.0], "float32"))
    opt = optimizers.SGD(learning_rate=0.1, clipnorm=1.0)
    opt.apply_gradients([(np.array([30.0, 40.0], "float32"), var)])
    np.testing.assert_allclose(var.numpy(), [-0.06, -0.08], rtol=1e-5)

    var = keras.Variable(np.array([1.0], "float32"))
    opt = optimizers.SGD(learning_rate=0.1, gradient_accumulation_steps=2)
    opt.apply_gradients([(np.array([1.0], "float32"), var)])
    np.testing.assert_array_equal(var.numpy(), [1.0])  # accumulated, not applied
    opt.apply_gradients([(np.array([3.0], "float32"), var)])
    np.testing.assert_allclose(var.numpy(), [1.0 - 0.1 * 2.0], rtol=1e-6)

    # EMA: the average follows `m * average + (1 - m) * value` after each
    # step (the first step copies the value) and replaces the weights when
    # training ends. lr 0.1, m 0.5, gradients 1 then 3: values -0.1, -0.4;
    # averages -0.1, 0.5 * -0.1 + 0.5 * -0.4 = -0.25.
    var = keras.Variable(np.array([0.0], "float32"))
    opt = optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    opt.apply_gradients([(np.array([1.0], "float32"), var)])
    opt.apply_gradients([(np.array([3.0], "float32"), var)])
    np.testing.assert_allclose(var.numpy(), [-0.4], rtol=1e-6)
    opt.finalize_variable_values([var])
    np.testing.assert_allclose(var.numpy(), [-0.25], rtol=1e-6)

    # `fit` ends with the averaged weights: they differ from those of the same
    # training without EMA.
    final = {}
    for use_ema in (False, True):
        model = _keras_network()
        model.compile(
            optimizer=optimizers.Adam(use_ema=use_ema, ema_momentum=0.9),
            loss="mse",
            jit_compile=False,
        )
        history = model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        final[use_ema] = np.concatenate([w.ravel() for w in model.get_weights()])
    assert np.abs(final[True] - final[False]).max() > 1e-4

"""Initializers against their variance formulas; activation statistics against a
NumPy forward (and backward) pass; LSUV; the init report."""

import keras
import numpy as np
import pytest

from kerazoo import initializers

# (class, expected variance as a function of (fan_in, fan_out))
VARIANCE = {
    "XavierNormal": lambda fi, fo: 2 / (fi + fo),
    "XavierUniform": lambda fi, fo: 2 / (fi + fo),
    "HeNormal": lambda fi, fo: 2 / fi,
    "HeUniform": lambda fi, fo: 2 / fi,
    "LeCunNormal": lambda fi, fo: 1 / fi,
    "LeCunUniform": lambda fi, fo: 1 / fi,
}
SHAPES = {
    "dense": ((1000, 600), 1000, 600),
    "conv": ((3, 3, 128, 256), 9 * 128, 9 * 256),
}


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("name", list(VARIANCE))
def test_variance_matches_formula(name, shape_name):
    shape, fan_in, fan_out = SHAPES[shape_name]
    values = keras.ops.convert_to_numpy(getattr(initializers, name)(seed=1)(shape))
    values = values.astype("float64")
    assert values.shape == shape
    expected = VARIANCE[name](fan_in, fan_out)
    assert abs(values.var() / expected - 1) < 0.03
    assert abs(values.mean()) < 5 * np.sqrt(expected / values.size)
    if name.endswith("Uniform"):
        limit = np.sqrt(3 * expected)
        assert values.min() >= -limit and values.max() <= limit
        assert values.max() > 0.99 * limit


def test_fixed_normal_and_uniform():
    normal = keras.ops.convert_to_numpy(
        initializers.Normal(mean=0.5, stddev=0.01, seed=0)((1000, 1000))
    )
    assert abs(normal.std() / 0.01 - 1) < 0.03 and abs(normal.mean() - 0.5) < 1e-4
    uniform = keras.ops.convert_to_numpy(
        initializers.Uniform(-0.2, 0.6, seed=0)((1000, 1000))
    )
    assert abs(uniform.var() / (0.8**2 / 12) - 1) < 0.03
    assert uniform.min() >= -0.2 and uniform.max() < 0.6


def test_compute_fans():
    assert initializers.compute_fans((10, 20)) == (10, 20)
    assert initializers.compute_fans((3, 3, 8, 16)) == (72, 144)
    assert initializers.compute_fans((5, 4, 7)) == (20, 35)  # conv1d
    assert initializers.compute_fans((7,)) == (7, 7)


def test_seeding():
    a = initializers.HeNormal(seed=3)((50, 50))
    b = initializers.HeNormal(seed=3)((50, 50))
    c = initializers.HeNormal(seed=4)((50, 50))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    unseeded = initializers.HeNormal()
    assert not np.array_equal(unseeded((50, 50)), unseeded((50, 50)))
    keras.utils.set_random_seed(7)
    first = keras.ops.convert_to_numpy(initializers.XavierUniform()((20, 20)))
    keras.utils.set_random_seed(7)
    np.testing.assert_array_equal(
        first, keras.ops.convert_to_numpy(initializers.XavierUniform()((20, 20)))
    )


@pytest.mark.parametrize(
    "initializer",
    [
        initializers.XavierNormal(seed=1),
        initializers.HeUniform(seed=2),
        initializers.LeCunNormal(),
        initializers.Normal(0.1, 0.02, seed=3),
        initializers.Uniform(-1.0, 2.0, seed=4),
        initializers.VarianceScaling(3.0, "fan_out", "truncated_normal", seed=5),
    ],
    ids=lambda i: type(i).__name__,
)
def test_serialisation_round_trip_and_use_in_a_saved_model(initializer, tmp_path):
    config = keras.saving.serialize_keras_object(initializer)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(initializer)
    assert restored.get_config() == initializer.get_config()
    if initializer.seed is not None:
        np.testing.assert_array_equal(restored((4, 5)), initializer((4, 5)))
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, kernel_initializer=initializer)]
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0].kernel_initializer) is type(initializer)


def test_truncated_normal_keeps_the_variance():
    values = keras.ops.convert_to_numpy(
        initializers.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=0)(
            (1000, 1000)
        )
    )
    assert abs(values.var() / (2 / 1000) - 1) < 0.03
    assert np.abs(values).max() <= 2 * np.sqrt(2 / 1000) / 0.8796 + 1e-6


def test_get():
    assert isinstance(initializers.get("he_normal"), initializers.HeNormal)
    assert isinstance(initializers.get("Glorot-Uniform"), initializers.XavierUniform)
    assert isinstance(initializers.get("LeCunUniform"), initializers.LeCunUniform)
    normal = initializers.get({"name": "normal", "stddev": 0.01, "seed": 1})
    assert normal.stddev == 0.01 and normal.seed == 1
    instance = initializers.Uniform()
    assert initializers.get(instance) is instance
    config = keras.saving.serialize_keras_object(initializers.HeUniform(seed=9))
    assert initializers.get(config).seed == 9


def test_bad_input():
    with pytest.raises(ValueError, match=r"Did you mean 'he_normal'.*Valid names"):
        initializers.get("he_nromal")
    with pytest.raises(ValueError, match="xavier_normal, xavier_uniform"):
        initializers.get("orthogonal")
    with pytest.raises(ValueError, match="stddev"):
        initializers.Normal(stddev=-1.0)
    with pytest.raises(ValueError, match="maxval"):
        initializers.Uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match="seed"):
        initializers.HeNormal(seed=1.5)


# --- activation statistics ---------------------------------------------------


def _small_network():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="tanh", name="a"),
            keras.layers.Dense(8, activation="tanh", name="b"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    y = np.random.default_rng(1).normal(size=(64, 3)).astype("float32")
    return model, x, y


def _numpy_forward(model, x):
    activations, a = [], x.astype("float64")
    for layer in model.layers:
        w, b = (v.numpy().astype("float64") for v in layer.weights)
        z = a @ w + b
        a = np.tanh(z) if layer.name != "out" else z
        activations.append(a)
    return activations


def test_activation_stats_rows_equal_numpy_forward(tmp_path):
    model, x, _ = _small_network()
    stats = initializers.activation_stats(model, x, plot=tmp_path / "std.png")
    expected = _numpy_forward(model, x)
    assert [row["layer"] for row in stats.rows] == ["a", "b", "out"]
    assert [row["depth"] for row in stats.rows] == [1, 2, 3]
    for row, a in zip(stats.rows, expected, strict=True):
        assert row["mean"] == pytest.approx(a.mean(), abs=1e-6)
        assert row["std"] == pytest.approx(a.std(), rel=1e-5)
        assert row["shape"] == str(a.shape[1])
    assert (tmp_path / "std.png").read_bytes()[:4] == b"\x89PNG"
    assert "depth  layer" in stats.format()
    stats.to_csv(tmp_path / "stats.csv")
    assert (tmp_path / "stats.csv").read_text().startswith("depth,layer,class")


def test_activation_stats_gradients_equal_numpy_backward():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient statistics use tf.GradientTape")
    model, x, y = _small_network()
    stats = initializers.activation_stats(model, x, y=y, loss="mse")
    activations = _numpy_forward(model, x)
    # Backward pass of mean((out - y)^2) over batch and outputs: the gradient
    # with respect to each layer's output (after its tanh).
    g_out = 2 * (activations[2] - y) / y.size
    w_out = model.layers[2].weights[0].numpy().astype("float64")
    w_b = model.layers[1].weights[0].numpy().astype("float64")
    g_b = g_out @ w_out.T
    g_a = (g_b * (1 - activations[1] ** 2)) @ w_b.T
    for row, g in zip(stats.rows, [g_a, g_b, g_out], strict=True):
        assert row["grad_std"] == pytest.approx(g.std(), rel=1e-4)
        assert row["grad_mean"] == pytest.approx(g.mean(), abs=1e-8)


# --- LSUV ----------------------------------------------------------------------


@pytest.mark.parametrize("start", ["he_normal", "normal:1.0", "normal:0.01"])
def test_lsuv_gives_unit_output_std_in_every_layer(start):
    from kerazoo.initializers.report import build_plain_network

    # Dense + separate ReLU layers (LSUV scales the pre-activations), and
    # Dense layers with the ReLU inside (it scales the post-ReLU outputs).
    model = build_plain_network(10, 64, "relu", start, seed=0)
    x = np.random.default_rng(0).normal(size=(512, 64)).astype("float32")
    inputs = keras.Input((64,))
    h = inputs
    for i in range(10):
        h = keras.layers.Dense(64, activation="relu", name=f"fc{i}")(h)
    relu_net = keras.Model(inputs, h)
    for net in (model, relu_net):
        report = initializers.lsuv_init(net, x, seed=0)
        assert len(report) == 10
        stats = initializers.activation_stats(net, x)
        stds = [r["std"] for r in stats.rows if r["class"] == "Dense"]
        assert len(stds) == 10 and all(0.9 <= s <= 1.1 for s in stds), stds


def test_lsuv_on_a_conv_network():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16, 16, 3))]
        + [
            keras.layers.Conv2D(
                8, 3, padding="same", activation="relu", kernel_initializer="zeros"
            )
            for _ in range(4)
        ]
    )
    x = np.random.default_rng(0).normal(size=(64, 16, 16, 3)).astype("float32")
    initializers.lsuv_init(model, x)
    for row in initializers.activation_stats(model, x).rows:
        assert 0.9 <= row["std"] <= 1.1


def test_lsuv_reaches_the_layers_inside_a_zoo_models_body():
    # A zoo model's convolutions sit in blocks, inside stage models, inside the
    # nested `body` model: none is a top-level layer of the model.
    from kerazoo import _compat
    from kerazoo.models import create_model

    model = create_model("resnet20", num_classes=4, input_shape=(16, 16, 3))
    convs = [
        layer
        for layer in _compat.sublayers(model)
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert len(convs) >= 19 and not set(convs) & set(model.layers)
    x = np.random.default_rng(0).normal(size=(32, 16, 16, 3)).astype("float32")
    before = [c.kernel.numpy().copy() for c in convs]
    report = initializers.lsuv_init(model, x, seed=0)
    names = [name for name, _, _ in report]
    # In forward order, the stem's convolution first; the softmax classifier
    # keeps its initialization.
    assert names[0] == "conv1" and "predictions" not in names
    assert len(report) == len(convs)
    assert all(abs(std - 1.0) <= 0.05 for _, std, _ in report), report
    assert all(
        not np.allclose(b, c.kernel.numpy()) for b, c in zip(before, convs, strict=True)
    )
    # The last conv's output really has unit std in a fresh forward pass.
    with _compat.record_outputs([convs[-1]]) as outputs:
        model(x, training=False)
    std = float(np.std(keras.ops.convert_to_numpy(outputs[id(convs[-1])][0])))
    assert abs(std - 1.0) <= 0.05


def test_lsuv_refuses_models_without_kernels():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")])
    with pytest.raises(ValueError, match="no layer with a kernel"):
        initializers.lsuv_init(model, np.ones((8, 4)))


# --- the init report ----------------------------------------------------------


def test_init_report_shows_the_lectures_claims(tmp_path, capsys):
    results = initializers.init_report(
        activations=["tanh", "relu"],
        initializers=["xavier_normal", "he_normal", "normal:0.01", "normal:1.0"],
        depth=10,
        width=128,
        batch_size=500,
        output_dir=tmp_path,
    )
    verdicts = {(r["activation"], r["initializer"]): r["verdict"] for r in results}
    assert verdicts["tanh", "xavier_normal"].startswith("keeps")
    assert verdicts["relu", "he_normal"].startswith("keeps")
    assert verdicts["relu", "xavier_normal"].startswith("vanishes")
    assert verdicts["tanh", "normal:0.01"].startswith("vanishes")
    assert verdicts["relu", "normal:0.01"].startswith("vanishes")
    assert verdicts["relu", "normal:1.0"].startswith("explodes")
    assert verdicts["tanh", "normal:1.0"].startswith("saturates")
    printed = capsys.readouterr().out
    assert "he_normal: keeps its scale" in printed
    assert (tmp_path / "init_report.png").read_bytes()[:4] == b"\x89PNG"
    lines = (tmp_path / "init_report.csv").read_text().splitlines()
    assert lines[0].startswith("activation,initializer,depth,layer")
    assert len(lines) == 1 + 8 * 20


def test_init_report_refuses_bad_specs_before_work():
    with pytest.raises(ValueError, match="Unknown initializer 'bogus'"):
        initializers.init_report(initializers=["he_normal", "bogus"], verbose=0)
    with pytest.raises(ValueError, match="only `normal:STD` and `uniform:LIMIT`"):
        initializers.init_report(initializers=["he_normal:2"], verbose=0)
    with pytest.raises(ValueError, match="Unknown activation"):
        initializers.init_report(activations=["relu6x"], verbose=0)


def test_reinitialize_draws_every_kernel_with_its_fan_in():
    from kerazoo.initializers import reinitialize
    from kerazoo.layers import BatchNormalization

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 64))
    x = keras.layers.Conv2D(128, 3, bias_initializer="ones")(inputs)
    x = keras.layers.DepthwiseConv2D(5)(x)
    x = BatchNormalization(gamma_initializer="ones")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(32)(x)
    model = keras.Model(inputs, outputs)
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    assert reinitialize(model, "he_normal") == 3
    conv, depthwise, dense = (model.layers[i] for i in (1, 2, 5))
    for layer, fan_in in (
        (conv, 3 * 3 * 64),
        (depthwise, 5 * 5),  # one input channel per output channel
        (dense, 128),
    ):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert not np.array_equal(kernel, before[layer.kernel.path])
        assert abs(kernel.std() / np.sqrt(2 / fan_in) - 1) < 0.1, layer.name
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.bias), 0.0)
    # Normalization keeps its own parameters.
    for v in model.layers[3].weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), before[v.path])

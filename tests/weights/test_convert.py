"""The Converter protocol: the shared layout transforms, and `apply`, which
checks coverage, source names, unused tensors and shapes before it assigns
anything (on a small Keras model and a hand-written PyTorch-style state)."""

import keras
import numpy as np
import pytest

from kerazoo.layers import BatchNormalization
from kerazoo.weights import WeightMismatchError
from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import Port
from kerazoo.weights.convert import SamePaths
from kerazoo.weights.convert import conv_kernel
from kerazoo.weights.convert import dense_kernel
from kerazoo.weights.convert import depthwise_kernel
from kerazoo.weights.convert import fold_bias_into_mean
from kerazoo.weights.convert import keras_conv_bn
from kerazoo.weights.convert import keras_head
from kerazoo.weights.convert import torch_batch_norm
from kerazoo.weights.convert import torch_conv
from kerazoo.weights.convert import torch_depthwise
from kerazoo.weights.convert import torch_head
from kerazoo.weights.convert import variance_for_epsilon


def _model(classes=3, epsilon=1e-3):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = BatchNormalization(epsilon=epsilon, name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _state(rng, classes=3):
    """PyTorch layouts of `_model`'s layers."""
    return {
        "conv.weight": rng.normal(size=(4, 2, 3, 3)),
        "bn.weight": rng.uniform(0.5, 1.5, 4),
        "bn.bias": rng.normal(size=4),
        "bn.running_mean": rng.normal(size=4),
        "bn.running_var": rng.uniform(0.5, 1.5, 4),
        "bn.num_batches_tracked": np.array(7),
        "dw.weight": rng.normal(size=(8, 1, 3, 3)),
        "dw.bias": rng.normal(size=8),
        "fc.weight": rng.normal(size=(classes, 8)),
        "fc.bias": rng.normal(size=classes),
    }


class TinyTorch(Converter):
    source = "tiny"
    ignored = (r".*num_batches_tracked$",)

    def __init__(self, epsilon=None):
        self.epsilon = epsilon

    def ports(self, model, source):
        return [
            *torch_conv(model.get_layer("conv"), "conv"),
            *torch_batch_norm(model.get_layer("bn"), "bn", epsilon=self.epsilon),
            *torch_depthwise(model.get_layer("dw"), "dw"),
            *torch_head("fc"),
        ]


def _values(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def test_transforms_move_pytorch_layouts_to_keras():
    kernel = np.arange(4 * 2 * 3 * 5).reshape(4, 2, 3, 5)  # O, I, H, W
    assert conv_kernel(kernel).shape == (3, 5, 2, 4)
    assert conv_kernel(kernel)[1, 2, 1, 3] == kernel[3, 1, 1, 2]
    # Depthwise, 3 channels times 2: PyTorch's output channel c * 2 + m.
    depthwise = np.arange(6 * 9).reshape(6, 1, 3, 3)
    moved = depthwise_kernel(depthwise, multiplier=2)
    assert moved.shape == (3, 3, 3, 2)
    assert moved[0, 1, 2, 1] == depthwise[5, 0, 0, 1]
    assert depthwise_kernel(depthwise).shape == (3, 3, 6, 1)
    with pytest.raises(ValueError, match=r"\(C \* M, 1, kh, kw\).*\(4, 2, 3, 5\)"):
        depthwise_kernel(kernel)
    assert dense_kernel(np.zeros((10, 4))).shape == (4, 10)
    np.testing.assert_array_equal(fold_bias_into_mean(np.ones(2), np.ones(2)), 0)
    # The normalised value is the same with either epsilon.
    variance = np.array([0.5, 2.0])
    moved = variance_for_epsilon(1e-5, 1e-3)(variance)
    np.testing.assert_allclose(moved + 1e-3, variance + 1e-5)


def test_torch_state_computes_the_same_function():
    rng = np.random.default_rng(0)
    model, state = _model(), _state(rng)
    TinyTorch().apply(model, state)
    # The same network by hand, in PyTorch's layouts.
    x = rng.uniform(size=(2, 6, 6, 2)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x, training=False))
    h = np.zeros((2, 4, 4, 4))
    for i in range(4):
        for j in range(4):
            patch = x[:, i : i + 3, j : j + 3, :]  # N, H, W, I
            h[:, i, j] = np.einsum("nhwi,oihw->no", patch, state["conv.weight"])
    h = (h - state["bn.running_mean"]) / np.sqrt(state["bn.running_var"] + 1e-3)
    h = h * state["bn.weight"] + state["bn.bias"]
    d = np.zeros((2, 2, 2, 8))
    for i in range(2):
        for j in range(2):
            for o in range(8):
                patch = h[:, i : i + 3, j : j + 3, o // 2]
                d[:, i, j, o] = np.einsum("nhw,hw->n", patch, state["dw.weight"][o, 0])
    d += state["dw.bias"]
    expected = d.mean(axis=(1, 2)) @ state["fc.weight"].T + state["fc.bias"]
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_batch_norm_epsilon_is_handled():
    rng = np.random.default_rng(1)
    state = _state(rng)
    x = rng.uniform(size=(2, 6, 6, 2)).astype("float32")
    source = TinyTorch().apply(_model(epsilon=1e-5), state)
    ported = TinyTorch(epsilon=1e-5).apply(_model(epsilon=1e-3), state)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ported(x, training=False)),
        keras.ops.convert_to_numpy(source(x, training=False)),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("bn.running_var"), r"no 'bn.running_var' \(for bn/moving"),
        (lambda s: s.update(extra=np.zeros(3)), r"1 tensor\(s\) that nothing takes"),
        (
            lambda s: s.update({"conv.weight": np.zeros((5, 2, 3, 3))}),
            r"conv/kernel: the model has \(3, 3, 2, 4\), the weights \(3, 3, 2, 5\)",
        ),
        (
            lambda s: s.update({"fc.weight": np.zeros((4, 8)), "fc.bias": np.zeros(4)}),
            r"predictions/kernel.*\(8, 3\).*\(8, 4\); predictions/bias.*without the",
        ),
    ],
    ids=["missing", "unused", "shape", "head"],
)
def test_a_mismatched_source_is_refused_and_nothing_assigned(change, message):
    model, state = _model(), _state(np.random.default_rng(2))
    change(state)
    before = _values(model)
    with pytest.raises(WeightMismatchError, match=message):
        TinyTorch().apply(model, state, origin="tiny.pth")
    for old, new in zip(before, _values(model), strict=True):
        np.testing.assert_array_equal(old, new)


def test_every_variable_must_be_covered_and_ported_once():
    model, state = _model(), _state(np.random.default_rng(3))

    class Partial(TinyTorch):
        def ports(self, model, source):
            return super().ports(model, source)[1:]  # no conv kernel

    with pytest.raises(WeightMismatchError, match=r"Nothing fills conv/kernel"):
        Partial().apply(model, state)

    class Twice(TinyTorch):
        def ports(self, model, source):
            ports = super().ports(model, source)
            return [*ports, ports[0]]

    with pytest.raises(WeightMismatchError, match="conv/kernel twice"):
        Twice().apply(model, state)

    class Stranger(TinyTorch):
        def ports(self, model, source):
            return [*super().ports(model, source), Port("nope/kernel", ("fc.bias",))]

    with pytest.raises(WeightMismatchError, match="no variable nope/kernel"):
        Stranger().apply(model, state)


def test_the_head_is_optional():
    rng = np.random.default_rng(4)
    model, state = _model(classes=5), _state(rng)  # a 3-class state
    head = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel).copy()
    TinyTorch().apply(model, state, head=False)
    np.testing.assert_array_equal(model.get_layer("predictions").kernel.numpy(), head)
    # A model without a classifier skips the source's, and optional ports.
    features = keras.Model(model.inputs, model.get_layer("dw").output)
    TinyTorch().apply(features, _state(rng))

    class Optional(TinyTorch):
        def ports(self, model, source):
            extra = Port("pre_logits/kernel", ("extra",), optional=True)
            return [*super().ports(model, source), extra]

    Optional().apply(features, {**_state(rng), "extra": np.zeros(2)})
    with pytest.raises(WeightMismatchError, match="nothing takes: extra"):
        TinyTorch().apply(features, {**_state(rng), "extra": np.zeros(2)})


def test_keras_sources_fold_conv_biases_and_same_paths_copy():
    rng = np.random.default_rng(5)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, name="c")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-3, name="n")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    source = keras.Model(inputs, keras.layers.Dense(3, name="predictions")(x))
    for v in source.weights:
        v.assign(rng.uniform(0.5, 1.5, v.shape))
    model = _model()
    target = keras.Model(model.inputs, model.get_layer("bn").output)
    pool = keras.layers.GlobalAveragePooling2D()(target.output)
    target = keras.Model(target.inputs, keras.layers.Dense(3, name="predictions")(pool))

    class Tiny(Converter):
        def ports(self, model, values):
            conv, norm = model.get_layer("conv"), model.get_layer("bn")
            return [*keras_conv_bn(conv, norm, "c", "n", values), *keras_head()]

    values = {v.path: v.numpy() for v in source.weights}
    Tiny().apply(target, values)
    x = rng.uniform(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(
        target.predict(x, verbose=0), source.predict(x, verbose=0), rtol=1e-5
    )
    copy = keras.models.clone_model(target)
    SamePaths().apply(copy, {v.path: v.numpy() for v in target.weights})
    np.testing.assert_array_equal(
        copy.predict(x, verbose=0), target.predict(x, verbose=0)
    )


def test_converters_and_weights_are_found_by_their_source():
    import kerazoo.models  # noqa: F401  (the families register theirs)
    from kerazoo.weights import manifest
    from kerazoo.weights.convert import find_converter
    from kerazoo.weights.convert import register_converter

    lite = find_converter("efficientnet_lite", "efficientnet_lite0")
    assert type(lite).__name__ == "EfficientNetLiteConverter"
    assert find_converter("keras_applications", "resnet50").options == {
        "stride_on": "1x1",
        "norm_epsilon": 1.001e-5,
    }
    with pytest.raises(ValueError, match=r"converter for 'googlenet'.*resnet50"):
        find_converter("keras_applications", "googlenet")
    with pytest.raises(ValueError, match="already registered"):
        register_converter(type(lite)())
    entry = manifest.find_weights("efficientnet_lite0", "imagenet")
    with pytest.raises(ValueError, match="already registered"):
        manifest.register_weights(entry)

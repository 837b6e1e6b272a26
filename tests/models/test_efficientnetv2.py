"""The EfficientNetV2 family: the same parameters as keras.applications'
networks (built here, weights=None: B0 and S; M and L, slow to build, against
the published figures; the zoo tests build every variant and check the
registry's counts), the same function once keras.applications' random B0
weights are ported (perturbed batch norms and biases; no network), and a port
that refuses another variant's weights before assigning any."""

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.models import list_models
from kerazoo.models import model_info
from kerazoo.models.analysis import count_trainable_params
from kerazoo.models.efficientnetv2 import PRESETS
from kerazoo.models.efficientnetv2 import EfficientNetV2KerasConverter
from kerazoo.models.preprocessing import MODES
from kerazoo.models.preprocessing import ImagePreprocessing
from kerazoo.testing import perturb_keras_weights
from kerazoo.weights import WeightMismatchError
from kerazoo.weights import from_keras_application
from kerazoo.weights import manifest

SIZE = (64, 64, 3)
# Building a functional model traces every layer, which is slow under JAX and
# PyTorch: there only the registry is checked (the architecture and the
# converter are the same code on every backend).
TENSORFLOW = keras.backend.backend() == "tensorflow"
tensorflow_only = pytest.mark.skipif(
    not TENSORFLOW, reason="slow to build under JAX and PyTorch; tested under TF"
)


def _application(name, **kwargs):
    constructor = getattr(keras.applications, PRESETS[name]["application"])
    return constructor(weights=None, **kwargs)


@pytest.fixture(scope="module")
def keras_b0():
    """keras.applications' EfficientNetV2B0 with random weights, perturbed so
    that every batch norm and bias matters, and logits that say something."""
    keras.utils.set_random_seed(0)
    model = _application(
        "efficientnetv2_b0", input_shape=SIZE, classifier_activation=None
    )
    perturb_keras_weights(model, 0, bias_std=0.5, logit_scale=10)
    return model


def test_family_is_registered():
    assert list_models("efficientnetv2*") == [
        "efficientnetv2_b0",
        "efficientnetv2_b1",
        "efficientnetv2_b2",
        "efficientnetv2_b3",
        "efficientnetv2_l",
        "efficientnetv2_m",
        "efficientnetv2_s",
    ]
    for name, preset in PRESETS.items():
        info = model_info(name)
        assert (info.family, info.dropout, info.params) == (
            "efficientnetv2",
            0.2,
            preset["params"],
        )
        assert info.input_size == preset["resolution"]
        assert info.weights == ("imagenet",)
        entry = manifest.find_weights(name, "imagenet")
        assert entry.application == preset["application"]
        assert entry.url.endswith(f"/efficientnet_v2/{name.replace('_', '-')}.h5")
        assert len(entry.md5) == 32 and entry.preprocessing == "custom"
    assert model_info("efficientnetv2_b0").preprocessing == "torch"
    assert model_info("efficientnetv2_s").preprocessing == "efficientnetv2"


def test_s_m_l_preprocessing_is_keras_rescaling():
    # keras.applications' EfficientNetV2S/M/L: Rescaling(1 / 128, offset=-1).
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    expected = keras.layers.Rescaling(1 / 128, offset=-1)(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ImagePreprocessing("efficientnetv2")(x)),
        keras.ops.convert_to_numpy(expected),
        atol=1e-6,
    )


@tensorflow_only
def test_b0_parameters_equal_keras_applications(keras_b0):
    assert count_trainable_params(keras_b0) == PRESETS["efficientnetv2_b0"]["params"]


@tensorflow_only
def test_s_parameters_equal_keras_applications():
    reference = _application("efficientnetv2_s", input_shape=(32, 32, 3))
    assert count_trainable_params(reference) == PRESETS["efficientnetv2_s"]["params"]


# M and L take seconds each to build, twice that for both libraries: their exact
# counts were taken from keras.applications.EfficientNetV2M/L(weights=None)
# (trainable parameters; Keras 3.x), and are checked here against the sizes
# keras.applications publishes (its table of models: 54.4M and 119.0M
# parameters in all, batch-norm statistics included).
PUBLISHED_TOTAL = {"efficientnetv2_m": 54.4e6, "efficientnetv2_l": 119.0e6}
# Non-trainable parameters: the moving mean and variance of every batch norm.
NON_TRAINABLE = {"efficientnetv2_m": 292_032, "efficientnetv2_l": 512_576}


@pytest.mark.parametrize("name", sorted(PUBLISHED_TOTAL))
def test_m_and_l_match_the_published_sizes(name):
    total = PRESETS[name]["params"] + NON_TRAINABLE[name]
    assert round(total / 1e5) == round(PUBLISHED_TOTAL[name] / 1e5)


@tensorflow_only
def test_port_of_random_keras_weights_computes_the_same_logits(keras_b0):
    model = from_keras_application(keras_b0, "efficientnetv2_b0", build=create_model)
    # The Rescaling and Normalization layers: ImageNet's mean and std.
    preprocessing = model.get_layer("preprocessing")
    assert preprocessing.mode == "custom"
    _, scale, offset = MODES["torch"]
    np.testing.assert_allclose(preprocessing.scale, scale, rtol=1e-6)
    np.testing.assert_allclose(preprocessing.offset, offset, rtol=1e-6)
    x = np.random.default_rng(1).uniform(0, 255, (2, *SIZE)).astype("float32")
    # Eager calls: tracing `predict` costs more than the model here.
    expected = keras.ops.convert_to_numpy(keras_b0(x, training=False))
    got = keras.ops.convert_to_numpy(model(x, training=False))
    assert got.shape == expected.shape == (2, 1000)
    assert np.abs(expected).max() > 1.0  # logits that say something
    # To 1e-5 of the logits' scale: float32 sums in another order.
    np.testing.assert_allclose(
        got, expected, rtol=0, atol=1e-5 * np.abs(expected).max()
    )


@tensorflow_only
def test_port_refuses_another_variant_before_assigning_anything(keras_b0):
    # B1 has more blocks than B0 (depth x1.1; its first stage two, not one):
    # B0's weights lack them.
    model = create_model("efficientnetv2_b1", input_shape=(32, 32, 3))
    before = [v.numpy().copy() for v in model.weights]
    source = {v.path: v.numpy() for v in keras_b0.weights}
    with pytest.raises(WeightMismatchError, match="no .block1b_.*Nothing was loaded"):
        EfficientNetV2KerasConverter().apply(model, source)
    assert all(
        np.array_equal(v.numpy(), b) for v, b in zip(model.weights, before, strict=True)
    )

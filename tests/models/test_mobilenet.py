"""The MobileNet family: the same parameters as keras.applications' networks
(built here, weights=None), the same function once keras.applications' random
weights are ported (perturbed batch norms and biases; no network), MobileNetV3's
head, and a saved model that reloads."""

import dataclasses
import hashlib

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.models import list_models
from kerazoo.models import model_info
from kerazoo.models.analysis import count_trainable_params
from kerazoo.models.mobilenet import PRESETS
from kerazoo.testing import perturb_keras_weights
from kerazoo.weights import WeightMismatchError
from kerazoo.weights import from_keras_application
from kerazoo.weights import manifest

SIZE = (32, 32, 3)  # the smallest input both accept; counts do not depend on it
# Building a functional model traces every layer, which is slow under JAX and
# PyTorch: there MobileNetV3-Small alone is built and ported (the architecture
# and the converters are the same code on every backend).
TENSORFLOW = keras.backend.backend() == "tensorflow"
BUILT = list(PRESETS) if TENSORFLOW else ["mobilenet_v3_small"]
tensorflow_only = pytest.mark.skipif(
    not TENSORFLOW, reason="slow to build under JAX and PyTorch; tested under TF"
)


def _application(name, **kwargs):
    constructor, options = PRESETS[name]["application"]
    return getattr(keras.applications, constructor)(weights=None, **options, **kwargs)


def _trainable(model):
    return count_trainable_params(model)


def test_family_is_registered():
    assert list_models("mobilenet*") == [
        "mobilenet_v2_035",
        "mobilenet_v2_050",
        "mobilenet_v2_075",
        "mobilenet_v2_100",
        "mobilenet_v2_130",
        "mobilenet_v2_140",
        "mobilenet_v3_large",
        "mobilenet_v3_large_minimal",
        "mobilenet_v3_small",
        "mobilenet_v3_small_minimal",
    ]
    info = model_info("mobilenet_v3_small")
    assert (info.family, info.preprocessing, info.dropout) == (
        "mobilenet_v3",
        "tf",
        0.2,
    )
    assert info.pre_logits == (1024, "hard_swish")
    assert model_info("mobilenet_v3_large_minimal").pre_logits == (1280, "relu")
    assert model_info("mobilenet_v2_100").pre_logits is None


@pytest.mark.parametrize("name", BUILT)
def test_parameters_equal_keras_applications(name):
    # The registry's count is keras.applications'; the zoo tests check that
    # every registered model has the registry's count.
    reference = _application(name, input_shape=SIZE)
    assert _trainable(reference) == PRESETS[name]["params"]
    assert model_info(name).params == PRESETS[name]["params"]


@tensorflow_only
@pytest.mark.parametrize("name", ["mobilenet_v2_035", "mobilenet_v3_large"])
def test_same_variables_as_keras_applications(name):
    reference = _application(name, input_shape=SIZE)
    model = create_model(name, input_shape=SIZE)
    assert _trainable(model) == _trainable(reference)
    assert model.count_params() == reference.count_params()
    assert len(model.weights) == len(reference.weights)


@tensorflow_only
@pytest.mark.parametrize(
    ("name", "features"),
    [("mobilenet_v2_035", 1280), ("mobilenet_v2_140", 1792)],
)
def test_v2_top_is_never_narrowed(name, features):
    model = create_model(name, input_shape=SIZE, include_top=False)
    assert model.outputs[0].shape == (None, features)


@tensorflow_only
@pytest.mark.parametrize(
    ("name", "features", "units"),
    [("mobilenet_v3_small", 576, 1024), ("mobilenet_v3_large", 960, 1280)],
)
def test_v3_head(name, features, units):
    model = create_model(name, num_classes=7, input_shape=SIZE)
    names = [layer.name for layer in model.layers]
    assert names[-4:] == ["pool", "pre_logits", "dropout", "predictions"]
    pre_logits = model.get_layer("pre_logits")
    assert pre_logits.units == units
    assert pre_logits.activation is keras.activations.hard_silu
    assert model.get_layer("body").outputs[0].shape[-1] == features
    # Without the top, the pooled body features, as in keras.applications.
    body = create_model(name, input_shape=SIZE, include_top=False)
    assert "pre_logits" not in {layer.name for layer in body.layers}
    assert body.outputs[0].shape == (None, features)


PORTED = [
    ("mobilenet_v2_035", True),
    ("mobilenet_v2_140", False),
    ("mobilenet_v3_small", True),
    ("mobilenet_v3_large", False),
    ("mobilenet_v3_large_minimal", True),
]


@pytest.mark.parametrize(("name", "include_top"), PORTED if TENSORFLOW else [PORTED[2]])
def test_port_of_random_keras_weights_computes_the_same_logits(name, include_top):
    rng = np.random.default_rng(0)
    source = _application(
        name,
        input_shape=(64, 64, 3),
        include_top=include_top,
        classes=10,
        classifier_activation=None,
    )
    perturb_keras_weights(source, rng, bias_std=0.5, logit_scale=10)
    model = from_keras_application(source, name, build=create_model)
    x = rng.uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    if PRESETS[name]["version"] == 2:  # normalised outside the model
        expected = source.predict(x / 127.5 - 1, verbose=0)
    else:  # a Rescaling layer, which the port's preprocessing reproduces
        expected = source.predict(x, verbose=0)
        assert model.get_layer("preprocessing").mode == "custom"
    got = model.predict(x, verbose=0)
    assert got.shape == expected.shape
    if include_top:
        assert got.shape == (3, 10)
        assert np.abs(expected).max() > 1.0  # logits that say something
    np.testing.assert_allclose(
        got, expected, rtol=0, atol=1e-5 * np.abs(expected).max()
    )


@tensorflow_only
def test_imagenet_entry_ports_through_the_cache(tmp_path, monkeypatch):
    # The manifest's entry, its file replaced by random MobileNetV3Small
    # weights published at a file:// URL (no network), and an empty cache.
    entry = manifest.find_weights("mobilenet_v3_small", "imagenet")
    assert entry.url.endswith("/weights_mobilenet_v3_small_224_1.0_float.h5")
    assert len(entry.md5) == 32
    keras.utils.set_random_seed(2)
    network = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3))
    perturb_keras_weights(network, 2, bias_std=0.5, logit_scale=10)
    path = tmp_path / "mobilenet_v3_small.weights.h5"
    network.save_weights(path)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    test = dataclasses.replace(
        entry, tag="test", url=path.as_uri(), md5=md5, input_size=64
    )
    monkeypatch.setattr(manifest, "MANIFEST", (*manifest.MANIFEST, test))
    monkeypatch.setenv("KERAZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERAZOO_OFFLINE", raising=False)
    model = create_model("mobilenet_v3_small", weights="test", input_shape=(64, 64, 3))
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = network.predict_on_batch(x)
    np.testing.assert_allclose(model.predict_on_batch(x), expected, atol=1e-5)


@tensorflow_only
def test_port_refuses_another_width():
    source = keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=SIZE)
    with pytest.raises(WeightMismatchError):
        from_keras_application(source, "mobilenet_v2_100", build=create_model)


@tensorflow_only
def test_v3_trains_and_reloads(tmp_path):
    model = create_model("mobilenet_v3_small", num_classes=3, input_shape=SIZE)
    x = np.random.default_rng(0).uniform(0, 255, (2, *SIZE)).astype("float32")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = model.get_layer("pre_logits").kernel.numpy().copy()
    assert np.isfinite(model.train_on_batch(x, np.array([0, 2])))
    assert not np.array_equal(model.get_layer("pre_logits").kernel.numpy(), before)
    model.save(tmp_path / "v3.keras")
    reloaded = keras.saving.load_model(tmp_path / "v3.keras", safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        atol=1e-6,
    )

"""The ConvNeXt family: the same parameters as keras.applications' networks
(Tiny built here, weights=None; Small, Base and Large, slow to build, against
the published figures; the zoo tests build every variant and check the
registry's counts), the same function once keras.applications' random Tiny
weights are ported (perturbed layer norms, layer scales and biases; no
network), classifier included (`from_keras_application` finds it by the name
the family's converter gives, `{name}_head_dense`), the imagenet entry ported
through the cache from a file:// URL and checked by its sha256, stochastic
depth rising linearly over the blocks, and a port that refuses another
variant's weights before assigning any."""

import dataclasses
import hashlib

import keras
import numpy as np
import pytest

from kerazoo.layers import ConvNeXtBlock
from kerazoo.models import create_model
from kerazoo.models import list_models
from kerazoo.models import model_info
from kerazoo.models.analysis import count_trainable_params
from kerazoo.models.convnext import PRESETS
from kerazoo.models.convnext import ConvNeXtKerasConverter
from kerazoo.models.preprocessing import MODES
from kerazoo.testing import perturb_keras_weights
from kerazoo.weights import WeightMismatchError
from kerazoo.weights import WeightsIntegrityError
from kerazoo.weights import cache
from kerazoo.weights import from_keras_application
from kerazoo.weights import manifest

SIZE = (64, 64, 3)
CLASSES = 10
# Building a functional model traces every layer, which is slow under JAX and
# PyTorch: there only the registry is checked (the architecture and the
# converter are the same code on every backend).
TENSORFLOW = keras.backend.backend() == "tensorflow"
tensorflow_only = pytest.mark.skipif(
    not TENSORFLOW, reason="slow to build under JAX and PyTorch; tested under TF"
)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _perturb(model, seed):
    """Moves a keras.applications ConvNeXt's random weights so that every layer
    norm, layer scale and bias matters, and its logits say something."""
    rng = np.random.default_rng(seed)
    perturb_keras_weights(model, rng, bias_std=0.5, logit_scale=10)
    for layer in model.layers:
        for v in layer.weights:
            n = v.shape[0]
            if isinstance(layer, keras.layers.LayerNormalization):
                if v.name == "gamma":
                    v.assign(rng.uniform(0.5, 1.5, n))
                else:
                    v.assign(rng.normal(0, 0.5, n))
            elif layer.name.endswith("_layer_scale"):  # 1e-6 would hide a block
                v.assign(rng.uniform(0.05, 0.3, n))
    return model


@pytest.fixture(scope="module")
def keras_tiny():
    """keras.applications' ConvNeXtTiny with random weights, perturbed
    (`_perturb`), 10 classes, logits out."""
    keras.utils.set_random_seed(0)
    model = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=SIZE, classes=CLASSES, classifier_activation=None
    )
    return _perturb(model, 0)


def _source(model):
    return {v.path: v.numpy() for v in model.weights}


def test_family_is_registered():
    assert list_models("convnext*") == [
        "convnext_base",
        "convnext_large",
        "convnext_small",
        "convnext_tiny",
    ]
    for name, preset in PRESETS.items():
        info = model_info(name)
        assert (info.family, info.dropout, info.params) == (
            "convnext",
            0.0,
            preset["params"],
        )
        assert (info.input_size, info.preprocessing) == (224, "torch")
        assert info.weights == ("imagenet",)
        entry = manifest.find_weights(name, "imagenet")
        assert entry.application == preset["application"]
        assert entry.url.endswith(f"/keras-applications/convnext/{name}.h5")
        # Keras publishes sha256s for its ConvNeXt files, not md5s.
        assert len(entry.sha256) == 64 and not entry.md5
        assert entry.preprocessing == "custom"


def test_torch_preprocessing_is_keras_prestem_normalization():
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    mean = 255 * np.array([0.485, 0.456, 0.406])
    std = 255 * np.array([0.229, 0.224, 0.225])
    normalization = keras.layers.Normalization(mean=mean, variance=std**2)
    _, scale, offset = MODES["torch"]
    np.testing.assert_allclose(
        x * np.asarray(scale) + np.asarray(offset),
        _np(normalization(x)),
        rtol=1e-5,
        atol=1e-5,
    )


@tensorflow_only
def test_tiny_parameters_equal_keras_applications(keras_tiny):
    # The fixture has 10 classes; the preset counts 1000 (768 features + bias).
    head = (1000 - CLASSES) * (768 + 1)
    assert count_trainable_params(keras_tiny) + head == 28_589_128
    assert PRESETS["convnext_tiny"]["params"] == 28_589_128


# Small, Base and Large take seconds each to build: their exact counts were
# taken from keras.applications.ConvNeXtSmall/Base/Large(weights=None)
# (trainable parameters, Keras 3.15; every parameter of a ConvNeXt is
# trainable), and are checked here against the sizes keras.applications
# publishes (its table of models, to 0.1M).
PUBLISHED = {
    "convnext_tiny": 28.6e6,
    "convnext_small": 50.2e6,
    "convnext_base": 88.5e6,
    "convnext_large": 197.7e6,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_sizes_match_the_published_figures(name):
    assert abs(PRESETS[name]["params"] - PUBLISHED[name]) < 0.1e6


def test_a_recipe_drop_path_is_the_family_option():
    from kerazoo.recipes import DROP_PATH_OPTION
    from kerazoo.recipes import ModelSpec

    assert DROP_PATH_OPTION == "drop_connect_rate"
    assert model_info("convnext_tiny").build_body.__defaults__ == (0.0, 1e-6)
    spec = ModelSpec(name="convnext_tiny", weights=None, input_size=32, drop_path=0.2)
    assert spec.drop_path == 0.2


@tensorflow_only
def test_drop_path_rises_linearly_and_features_have_strides_4_to_32():
    model = create_model(
        "convnext_tiny",
        input_shape=(32, 32, 3),
        drop_connect_rate=0.3,
        features_only=True,
    )
    body = model.get_layer("body")
    blocks = [
        block
        for stage in body.layers
        if stage.name.startswith("stage")
        for block in stage.layers
        if isinstance(block, ConvNeXtBlock)
    ]
    # keras.applications' schedule: np.linspace(0, rate, blocks).
    rates = [block.drop_path_rate for block in blocks]
    np.testing.assert_allclose(rates, np.linspace(0, 0.3, 18))
    assert blocks[0].drop is None and blocks[-1].drop.rate == pytest.approx(0.3)
    assert model.output_names == ["stride4", "stride8", "stride16", "stride32"]
    assert [tuple(o.shape[1:]) for o in model.outputs] == [
        (8, 8, 96),
        (4, 4, 192),
        (2, 2, 384),
        (1, 1, 768),
    ]


@tensorflow_only
def test_port_of_random_keras_weights_computes_the_same_logits(keras_tiny):
    # ConvNeXt's classifier is "{name}_head_dense", not "predictions": the
    # family's converter names it, and the twin gets it (10 classes, no
    # activation) with the head's layer norm and the Normalization's affine map.
    converter = ConvNeXtKerasConverter()
    head = converter.classifier_layer(keras_tiny)
    assert head is not None and head.name == "convnext_tiny_head_dense"
    model = from_keras_application(keras_tiny, "convnext_tiny", build=create_model)
    assert model.get_layer("predictions").units == CLASSES
    assert model.get_layer("predictions").get_config()["activation"] == "linear"
    preprocessing = model.get_layer("preprocessing")
    _, scale, offset = MODES["torch"]
    assert preprocessing.mode == "custom"
    np.testing.assert_allclose(preprocessing.scale, scale, rtol=1e-6)
    np.testing.assert_allclose(preprocessing.offset, offset, rtol=1e-6)
    x = np.random.default_rng(1).uniform(0, 255, (2, *SIZE)).astype("float32")
    # Eager calls: tracing `predict` costs more than the model here.
    expected = _np(keras_tiny(x, training=False))
    got = _np(model(x, training=False))
    assert got.shape == expected.shape == (2, CLASSES)
    assert np.abs(expected).max() > 1.0  # logits that say something
    # To 1e-5 of the logits' scale: float32 sums in another order.
    np.testing.assert_allclose(
        got, expected, rtol=0, atol=1e-5 * np.abs(expected).max()
    )


@tensorflow_only
def test_from_keras_application_ports_the_features(keras_tiny):
    # The same Keras network up to its head's layer norm: the pooled,
    # normalised features that kerazoo's twin without a classifier computes.
    features = keras.Model(
        keras_tiny.inputs[0],
        keras_tiny.get_layer("convnext_tiny_head_layernorm").output,
    )
    model = from_keras_application(features, "convnext_tiny", build=create_model)
    preprocessing = model.get_layer("preprocessing")
    assert preprocessing.mode == "custom"
    _, scale, offset = MODES["torch"]
    np.testing.assert_allclose(preprocessing.scale, scale, rtol=1e-6)
    np.testing.assert_allclose(preprocessing.offset, offset, rtol=1e-6)
    x = np.random.default_rng(2).uniform(0, 255, (2, *SIZE)).astype("float32")
    expected = _np(features(x, training=False))
    got = _np(model(x, training=False))
    assert got.shape == expected.shape == (2, 768)
    np.testing.assert_allclose(
        got, expected, rtol=0, atol=1e-5 * np.abs(expected).max()
    )


@tensorflow_only
def test_port_refuses_another_variant_before_assigning_anything(keras_tiny):
    # Small has 27 blocks in its third stage, Tiny 9: Tiny's weights lack them.
    model = create_model("convnext_small", input_shape=(32, 32, 3))
    before = [v.numpy().copy() for v in model.weights]
    with pytest.raises(
        WeightMismatchError, match="no .convnext_tiny_stage_2_block_9_.*Nothing was"
    ):
        ConvNeXtKerasConverter().apply(model, _source(keras_tiny))
    assert all(
        np.array_equal(v.numpy(), b) for v, b in zip(model.weights, before, strict=True)
    )


@tensorflow_only
def test_imagenet_entry_ports_through_the_cache(tmp_path, monkeypatch):
    # The manifest's entry, its file replaced by random ConvNeXtTiny weights
    # published at a file:// URL (no network), and an empty cache: the file is
    # checked by its sha256 (Keras publishes no md5 for ConvNeXt).
    entry = manifest.find_weights("convnext_tiny", "imagenet")
    assert entry.url.endswith("/convnext_tiny.h5")
    assert len(entry.sha256) == 64 and not entry.md5
    keras.utils.set_random_seed(2)
    network = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=SIZE, classifier_activation=None
    )
    _perturb(network, 2)
    path = tmp_path / "convnext_tiny.weights.h5"
    network.save_weights(path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    test = dataclasses.replace(
        entry, tag="test", url=path.as_uri(), sha256=sha256, input_size=SIZE[0]
    )
    # The same file under the real entry's sha256: not the published file.
    other = dataclasses.replace(test, tag="other", sha256=entry.sha256)
    monkeypatch.setattr(manifest, "MANIFEST", (*manifest.MANIFEST, test, other))
    home = tmp_path / "home"
    monkeypatch.setenv("KERAZOO_HOME", str(home))
    monkeypatch.delenv("KERAZOO_OFFLINE", raising=False)
    with pytest.raises(WeightsIntegrityError) as error:
        create_model("convnext_tiny", weights="other", input_shape=SIZE)
    message = str(error.value)
    assert path.as_uri() in message
    assert f"sha256 {sha256}, expected {entry.sha256}" in message
    assert not [p for p in home.rglob("*") if p.is_file()]
    model = create_model(
        "convnext_tiny", weights="test", input_shape=SIZE, classifier_activation=None
    )
    x = np.random.default_rng(3).uniform(0, 255, (2, *SIZE)).astype("float32")
    expected = _np(network(x, training=False))
    got = _np(model(x, training=False))
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(
        got, expected, rtol=0, atol=1e-5 * np.abs(expected).max()
    )
    record = cache.record_path(test)
    assert record.exists() and sha256 in record.read_text()

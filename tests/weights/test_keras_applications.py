"""keras.applications models ported into kerazoo's architectures compute the
same function (random weights with perturbed batch-norm statistics and conv
biases, so that the folding and preprocessing are exercised; no network)."""

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.testing import perturb_keras_weights
from kerazoo.weights import WeightMismatchError
from kerazoo.weights import from_keras_application

CASES = {
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50),
    "densenet121": (keras.applications.DenseNet121, keras.applications.densenet),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("include_top", [True, False])
def test_port_computes_the_same_function(name, include_top):
    builder, module = CASES[name]
    rng = np.random.default_rng(0)
    source = builder(
        weights=None,
        input_shape=(64, 64, 3),
        include_top=include_top,
        classes=10,
        classifier_activation=None,
    )
    perturb_keras_weights(source, rng)
    model = from_keras_application(source, name, build=create_model)
    x = rng.uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    expected = source.predict(module.preprocess_input(x.copy()), verbose=0)
    got = model.predict(x, verbose=0)  # preprocessing is inside the model
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() / scale < 1e-4


def test_port_refuses_the_wrong_architecture():
    source = keras.applications.DenseNet121(weights=None, input_shape=(64, 64, 3))
    with pytest.raises(WeightMismatchError, match="does not have the layers"):
        from_keras_application(source, "resnet50", build=create_model)
    with pytest.raises(ValueError, match="supported: .*resnet50"):
        from_keras_application(source, "googlenet", build=create_model)


def test_efficientnet_port_reproduces_its_normalization_layers(tmp_path):
    rng = np.random.default_rng(1)
    source = keras.applications.EfficientNetB0(
        weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation=None
    )
    perturb_keras_weights(source, rng)
    for layer in source.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.use_bias:  # SE convs
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
        if isinstance(layer, keras.layers.Normalization):  # ImageNet's statistics
            layer.adapt_mean.assign([0.485, 0.456, 0.406])
            layer.adapt_variance.assign([0.052, 0.05, 0.05])
            layer.finalize_state()
    model = from_keras_application(source, "efficientnet_b0", build=create_model)
    assert model.get_layer("preprocessing").mode == "custom"
    x = rng.uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    expected = source.predict(x, verbose=0)
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())
    model.save(tmp_path / "b0.keras")
    reloaded = keras.saving.load_model(tmp_path / "b0.keras", safe_mode=True)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), got)

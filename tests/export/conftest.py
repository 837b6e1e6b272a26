import numpy as np
import pytest

from kerazoo.layers import BatchNormalization


def randomize_norms(model, seed=0):
    """Batch norms far from the identity (as trained statistics are), so that a
    wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(recursive=True):
        if isinstance(layer, BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, c).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.5, c).astype("float32"))
    return model


@pytest.fixture
def randomize():
    return randomize_norms

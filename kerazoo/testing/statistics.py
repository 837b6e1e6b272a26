"""Trained-like batch-norm statistics for models that were never trained."""

import keras
import numpy as np

from kerazoo._compat import sublayers
from kerazoo.layers import BatchNormalization


def randomize_batch_norms(model, seed=0):
    """Gives every kerazoo batch norm of `model` statistics and parameters away
    from their initial values, as a trained network has them: moving means
    N(0, 0.5), moving variances U(0.3, 2), gammas U(0.5, 1.5), betas N(0, 0.5).

    A fresh model's batch norms are nearly the identity (and its offsets zero,
    which a graph optimizer may drop), so a test of folding or a benchmark of
    a served graph would not see a mistake or the real work. Returns `model`.
    """
    rng = np.random.default_rng(seed)
    for layer in sublayers(model, include_self=True):
        if isinstance(layer, BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, c).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.5, c).astype("float32"))
    return model


def perturb_keras_weights(model, rng=0, bias_std=0.1, logit_scale=1.0):
    """Moves a Keras model's weights away from their initial values, as
    `randomize_batch_norms` does for kerazoo's, for tests that port a
    `keras.applications` model and compare outputs: every
    `keras.layers.BatchNormalization` gets gammas U(0.5, 1.5), betas and
    moving means N(0, 0.1) and moving variances U(0.5, 1.5); convolution and
    dense biases N(0, `bias_std`); dense kernels (and a convolution named
    `logits`) are multiplied by `logit_scale`, so that random logits are large
    enough for a mistake to show.

    `rng` is a seed or a `numpy.random.Generator` (which is advanced, so that
    a test can draw its inputs from it next). Returns `model`.
    """
    rng = np.random.default_rng(rng)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.1, n))
            layer.moving_mean.assign(rng.normal(0, 0.1, n))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n))
            continue
        scaled = isinstance(layer, keras.layers.Dense) or layer.name == "logits"
        if scaled and logit_scale != 1.0:
            layer.kernel.assign(logit_scale * layer.kernel.numpy())
        if scaled or isinstance(layer, keras.layers.Conv2D):
            if getattr(layer, "use_bias", False):
                layer.bias.assign(rng.normal(0, bias_std, layer.bias.shape))
    return model

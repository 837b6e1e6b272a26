"""Trained-like batch-norm statistics for models that were never trained."""

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

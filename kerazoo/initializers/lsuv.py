"""Layer-sequential unit-variance initialization (Mishkin & Matas, 2016)."""

import keras
import numpy as np

from kerazoo._checks import check_positive
from kerazoo._checks import check_positive_int
from kerazoo.initializers.stats import _inputs


def _has_kernel(layer):
    return getattr(layer, "kernel", None) is not None


def lsuv_init(model, x, tol=0.05, max_iters=10, seed=None, verbose=0):
    """LSUV: orthogonal weights, rescaled layer by layer to unit output variance.

    For each top-level layer with a `kernel` (Dense, convolutions), in forward
    order: the kernel is replaced by an orthogonal matrix and the bias set to
    zero; then, on the batch `x`, the layer's output standard deviation is
    measured and the kernel divided by it, until it is within `tol` of 1 (or
    `max_iters` rescalings). Earlier layers are fixed before later ones are
    measured, so every layer ends with unit output variance on `x`. The
    output measured is the layer's own output: after its activation when the
    activation is part of the layer.

    Args:
        model: A built functional or Sequential `keras.Model`. Layers inside a
            nested model are not reached: call `lsuv_init` on the nested model
            (with inputs that reach it).
        x: A batch of inputs (a few hundred examples or more).
        tol: Accepted distance of each output standard deviation from 1.
        max_iters: Rescalings per layer at most.
        seed: Optional integer seed of the orthogonal matrices.
        verbose: 1 prints one line per layer.

    Returns:
        A list of `(layer name, output std after init, rescalings)`.

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016.
    """
    check_positive("tol", tol)
    check_positive_int("max_iters", max_iters)
    layers = [layer for layer in model.layers if _has_kernel(layer)]
    if not layers:
        raise ValueError(f"Model {model.name!r} has no top-level layer with a kernel.")
    x = np.asarray(x)
    rng = np.random.default_rng(seed)
    report = []
    for layer in layers:
        probe = keras.Model(_inputs(model), layer.output)
        orthogonal = keras.initializers.Orthogonal(seed=int(rng.integers(2**31)))
        layer.kernel.assign(orthogonal(layer.kernel.shape, dtype=layer.kernel.dtype))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.zeros(layer.bias.shape, layer.bias.dtype))
        iterations = 0
        std = _std(probe, x)
        while abs(std - 1.0) > tol and iterations < max_iters:
            if not np.isfinite(std) or std == 0:
                raise RuntimeError(
                    f"LSUV: layer {layer.name!r} has output std {std} on this "
                    "batch; it cannot be rescaled to 1."
                )
            layer.kernel.assign(layer.kernel.numpy() / std)
            iterations += 1
            std = _std(probe, x)
        report.append((layer.name, std, iterations))
        if verbose:
            print(
                f"lsuv {layer.name}: output std {std:.4f} after {iterations} rescalings"
            )
    return report


def _std(probe, x):
    output = keras.ops.convert_to_numpy(probe(x, training=False))
    return float(np.std(output.astype("float64")))

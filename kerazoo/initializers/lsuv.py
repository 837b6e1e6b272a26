"""Layer-sequential unit-variance initialization (Mishkin & Matas, 2016)."""

import keras
import numpy as np

from kerazoo import _compat
from kerazoo._checks import check_positive
from kerazoo._checks import check_positive_int


def _has_kernel(layer):
    return getattr(layer, "kernel", None) is not None


def lsuv_init(model, x, tol=0.05, max_iters=10, seed=None, verbose=0):
    """LSUV: orthogonal weights, rescaled layer by layer to unit output variance.

    For each layer with a `kernel` (Dense, convolutions), however deep it sits
    (inside a nested model such as a zoo model's `body`, or a composite block
    such as `kerazoo.layers.ResidualBlock`), in the order the forward pass
    calls them: the kernel is replaced by an orthogonal matrix and the bias
    set to zero; then, on the batch `x`, the layer's output standard deviation
    is measured and the kernel divided by it, until it is within `tol` of 1
    (or `max_iters` rescalings). Earlier layers are fixed before later ones are
    measured, so every layer ends with unit output variance on `x`. The
    output measured is the layer's own output: after its activation when the
    activation is part of the layer. A layer called more than once per pass
    (shared) is measured on its first call. A classifier ending in softmax
    keeps its initialization: its outputs are probabilities.

    Args:
        model: A built Keras model (functional, Sequential or subclassed).
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
    x = np.asarray(x)
    layers = _kernel_layers_in_call_order(model, x)
    if not layers:
        raise ValueError(f"Model {model.name!r} has no layer with a kernel.")
    rng = np.random.default_rng(seed)
    report = []
    for layer in layers:
        orthogonal = keras.initializers.Orthogonal(seed=int(rng.integers(2**31)))
        layer.kernel.assign(orthogonal(layer.kernel.shape, dtype=layer.kernel.dtype))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.zeros(layer.bias.shape, layer.bias.dtype))
        iterations = 0
        std = _std(model, layer, x)
        while abs(std - 1.0) > tol and iterations < max_iters:
            if not np.isfinite(std) or std == 0:
                raise RuntimeError(
                    f"LSUV: layer {layer.name!r} has output std {std} on this "
                    "batch; it cannot be rescaled to 1."
                )
            layer.kernel.assign(layer.kernel.numpy() / std)
            iterations += 1
            std = _std(model, layer, x)
        report.append((layer.name, std, iterations))
        if verbose:
            print(
                f"lsuv {layer.name}: output std {std:.4f} after {iterations} rescalings"
            )
    return report


def _ends_in_softmax(layer):
    """A classifier whose outputs are probabilities: their std cannot be 1."""
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def _kernel_layers_in_call_order(model, x):
    """The innermost layers with a kernel that a forward pass on `x` calls, in
    the order of their first call (a layer the pass never calls is left out)."""
    candidates = [
        layer
        for layer in _compat.sublayers(model)
        if _has_kernel(layer)
        and not _ends_in_softmax(layer)
        and not any(_has_kernel(inner) for inner in _compat.sublayers(layer))
    ]
    with _compat.record_outputs(candidates) as outputs:
        model(x[:2], training=False)
    by_id = {id(layer): layer for layer in candidates}
    # `outputs` holds the layers in the order of their first call.
    return [by_id[key] for key in outputs]


def _std(model, layer, x):
    """The standard deviation of `layer`'s output (its first call) in a
    forward pass of `model` on `x`."""
    with _compat.record_outputs([layer]) as outputs:
        model(x, training=False)
    output = keras.ops.convert_to_numpy(outputs[id(layer)][0])
    return float(np.std(output.astype("float64")))

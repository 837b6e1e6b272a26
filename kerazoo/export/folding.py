"""Batch-norm folding: inference-mode batch norms merged into the layer before.

In inference a batch norm is an affine map per channel, `y = x * a + b` with
`a = gamma / sqrt(moving_variance + epsilon)` and `b = beta - moving_mean * a`.
When it reads the output of a convolution or dense layer `x = W * u (+ c)` and
nothing else, the scale goes into the kernel (`W * a`, per output channel) and
the batch norm keeps only the offset (`+ b`, plus `c * a` for a layer with a
bias): one multiply over the largest tensors of the network is gone, and what is
left, a convolution followed by a per-channel addition and an activation, is the
pattern TensorFlow's graph optimizer fuses into one kernel on the CPU. For the
same reason the copy computes swish as `x * sigmoid(x)` (`kerazoo.layers.swish`)
where the model used Keras's silu, whose TensorFlow form the optimizer does not
fuse.

`fold_batch_norms(model)` returns a folded copy and leaves `model` as it was.
It finds the pairs in functional graphs (a layer whose only consumer is a
kerazoo `BatchNormalization`) and inside kerazoo's blocks (`folding_pairs()`).
Batch norms that come before their convolution (pre-activation ResNets,
DenseNet's BN-ReLU-conv) have nothing to fold into and stay as they are.

This module uses Keras and NumPy only: folding works under every backend.
"""

import dataclasses

import keras
import numpy as np

from kerazoo._compat import call_inputs
from kerazoo._compat import consumer_count
from kerazoo._compat import producer
from kerazoo._compat import sublayers
from kerazoo.layers import BatchNormalization
from kerazoo.layers import swish


@dataclasses.dataclass
class FoldingReport:
    """What `fold_batch_norms` did.

    Attributes:
        folded: `"layer -> batch norm"` paths of the folded pairs.
        kept: Paths of the batch norms left as they were, each with the
            reason.
        swish: How many layers apply swish written out
            (`kerazoo.layers.swish`) in place of Keras's silu.
    """

    folded: list = dataclasses.field(default_factory=list)
    kept: list = dataclasses.field(default_factory=list)
    swish: int = 0

    def summary(self):
        text = f"folded {len(self.folded)} batch norms into the layer before them"
        if self.kept:
            text += f"; {len(self.kept)} kept (nothing to fold into)"
        if self.swish:
            text += f"; swish written out in {self.swish} layers"
        return text


def _foldable_layer(layer):
    """Whether a layer's output channels can absorb a per-channel scale."""
    kinds = (
        keras.layers.Conv1D,
        keras.layers.Conv2D,
        keras.layers.Conv3D,
        keras.layers.DepthwiseConv2D,
        keras.layers.Dense,
    )
    if not isinstance(layer, kinds) or isinstance(
        layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)
    ):
        return False
    activation = getattr(layer, "activation", None)
    return activation is None or activation is keras.activations.linear


def _output_axis(layer):
    if isinstance(layer, keras.layers.Dense):
        return -1
    return -1 if layer.data_format == "channels_last" else 1


def _why_not(layer, norm):
    """None when `norm` folds into `layer`, else the reason it cannot."""
    if not norm.center:
        return "center=False (no offset to keep)"
    ndim = norm.input_spec.ndim
    if norm.axis % ndim != _output_axis(layer) % ndim:
        return f"normalises axis {norm.axis}, not the channels"
    return None


def _functional_pairs(model):
    """(layer, batch norm) pairs of a functional model's own graph."""
    if not isinstance(model, keras.Model) or not isinstance(model, keras.Function):
        return []
    outputs = {id(t) for t in keras.tree.flatten(model.outputs)}
    pairs = []
    for layer in model.operations:
        if not isinstance(layer, BatchNormalization):
            continue
        calls = call_inputs(layer)
        if len(calls) != 1 or len(calls[0]) != 1:
            continue
        (tensor,) = calls[0]
        source = producer(tensor)
        if (
            _foldable_layer(source)
            and len(call_inputs(source)) == 1
            and consumer_count(source) == 1
            and id(tensor) not in outputs
        ):
            pairs.append((source, layer))
    return pairs


def _block_pairs(block):
    """A block's pairs when all of them fold, else none: the block's config
    says whether it is folded (`folded=True`), so that a saved folded model
    loads as it was saved."""
    pairs = block.folding_pairs()
    if all(
        isinstance(norm, BatchNormalization)
        and _foldable_layer(layer)
        and _why_not(layer, norm) is None
        for layer, norm in pairs
    ):
        return pairs
    return []


def _find(model):
    """`(pairs, kept, blocks)`: the foldable pairs, the batch norms that stay
    with their reasons, and the blocks whose pairs fold."""
    pairs, kept, blocks = [], [], []
    for layer in sublayers(model, include_self=True):
        for source, norm in _functional_pairs(layer):
            reason = _why_not(source, norm)
            if reason is None:
                pairs.append((source, norm))
            else:
                kept.append((norm, reason))
        if hasattr(layer, "folding_pairs") and not isinstance(layer, keras.Model):
            block_pairs = _block_pairs(layer)
            if block_pairs:
                pairs.extend(block_pairs)
                blocks.append(layer)
    seen = {id(norm) for _, norm in pairs} | {id(norm) for norm, _ in kept}
    for layer in sublayers(model):
        if id(layer) in seen:
            continue
        if isinstance(layer, BatchNormalization):
            kept.append((layer, "no convolution or dense layer right before it"))
        elif isinstance(layer, keras.layers.BatchNormalization):
            kept.append((layer, "keras.layers.BatchNormalization (kerazoo's folds)"))
    return pairs, kept, blocks


def folding_pairs(model):
    """Every (layer, batch norm) pair that can be folded, with the batch norms
    that cannot: `(pairs, kept)`, `kept` a list of `(batch norm, reason)`.
    A block's pairs fold all together or not at all."""
    pairs, kept, _ = _find(model)
    return pairs, kept


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), "float64")


def _fold_pair(layer, norm):
    mean = _numpy(norm.moving_mean)
    variance = _numpy(norm.moving_variance)
    scale = 1.0 / np.sqrt(variance + norm.epsilon)
    if norm.scale:
        scale = scale * _numpy(norm.gamma)
    offset = -mean * scale
    if norm.center:
        offset = offset + _numpy(norm.beta)
    kernel = layer.kernel
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        # (kh, kw, channels, multiplier): output channel c * multiplier + m.
        factor = scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    else:
        factor = scale.reshape((1,) * (len(kernel.shape) - 1) + (-1,))
    kernel.assign((_numpy(kernel) * factor).astype(kernel.dtype))
    if getattr(layer, "use_bias", False) and layer.bias is not None:
        bias = _numpy(layer.bias)
        layer.bias.assign(np.zeros_like(bias).astype(layer.bias.dtype))
        offset = offset + bias * scale
    norm.beta.assign(offset.astype(norm.beta.dtype))
    if norm.scale:
        norm.gamma.assign(np.ones(norm.gamma.shape, norm.gamma.dtype))
    norm.moving_mean.assign(np.zeros(norm.moving_mean.shape, norm.moving_mean.dtype))
    norm.moving_variance.assign(
        np.ones(norm.moving_variance.shape, norm.moving_variance.dtype)
    )
    norm.folded = True


def fold_batch_norms(model):
    """A copy of `model` with its batch norms folded into the layer before them.

    The copy computes the model's inference-mode function with less work:
    outputs agree to float32 rounding (about 1e-6 relative). It is for
    inference and export; train the original.

    Args:
        model: A functional Keras model (every kerazoo model is one). Its
            custom layers must be registered for serialization.

    Returns:
        `(folded_model, report)`, the report a `FoldingReport`.

    Example:

    >>> from kerazoo.models import create_model
    >>> model = create_model("resnet20", num_classes=10)
    >>> folded, report = fold_batch_norms(model)
    >>> report.summary()
    'folded 19 batch norms into the layer before them'
    """
    copy = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model)
    )
    copy.set_weights(model.get_weights())
    pairs, kept, blocks = _find(copy)
    for block in blocks:
        block.folded = True
    report = FoldingReport()
    for layer, norm in pairs:
        _fold_pair(layer, norm)
        report.folded.append(f"{layer.path} -> {norm.path}")
    report.kept = [f"{norm.path}: {reason}" for norm, reason in kept]
    report.swish = _write_out_swish(copy)
    return copy, report


def _write_out_swish(model):
    """Puts `kerazoo.layers.swish` (`x * sigmoid(x)`) in place of Keras's
    silu in every layer of `model`, blocks included; returns how many.
    TensorFlow's optimizer fuses the written-out form into the convolution
    before it, which Keras's `tf.nn.silu` (a scale by `beta`, a custom
    gradient) hides from it."""
    count = 0
    for layer in sublayers(model):
        if getattr(layer, "activation", None) is keras.activations.silu:
            layer.activation = swish
            # A block keeps its activation for its config; its layers apply it.
            count += not sublayers(layer)
    return count

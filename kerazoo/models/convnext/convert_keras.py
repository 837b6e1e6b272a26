"""keras.applications' ConvNeXtTiny, Small, Base and Large into kerazoo's
ConvNeXts: Keras's layer names (`{name}_stage_{i}_block_{j}_...`, with the
Keras model's name in front) onto the model's variables; the Normalization
layer becomes its preprocessing."""

import re

import numpy as np

from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.convert import Port
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import keras_head
from kerazoo.weights.convert import keras_layer
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.keras_applications import KerasApplicationConverter

VARIANTS = ("tiny", "small", "base", "large")
_STEM = re.compile(r"^(?:(.+)_stem/)?(.+)_stem_conv/kernel$")
# The layer norm after the pooling when the Keras model has no classifier
# (`include_top=False`): Keras gives it no name of its own.
_NOTOP_NORM = re.compile(r"^(layer_normalization(?:_\d+)?)/gamma$")


def grouped_to_depthwise(kernel):
    """Keras's depthwise convolution as a grouped `Conv2D` (`groups=C`),
    `(kh, kw, 1, C)`, as a `DepthwiseConv2D` kernel, `(kh, kw, C, 1)`."""
    return np.transpose(kernel, (0, 1, 3, 2))


def _prefix(source):
    for key in source:
        match = _STEM.match(key)
        if match:
            return match.group(2)
    raise WeightMismatchError(
        "The source has no ConvNeXt stem ('{name}_stem_conv/kernel'): is it a "
        "keras.applications ConvNeXt? Nothing was loaded."
    )


def _layer_scale_key(source, key):
    """Keras's LayerScale leaves its variable unnamed, so Keras numbers it
    (`variable`, `variable_1`, ...) by the order of creation: the one variable
    under the layer's name, whatever its number."""
    scope = f"{key}_layer_scale/"
    found = [name for name in source if name.startswith(scope)]
    return found[0] if len(found) == 1 else f"{scope}variable"


def _block_ports(block, key, source):
    ports = [
        Port(
            block.depthwise.kernel.path,
            (f"{key}_depthwise_conv/kernel",),
            grouped_to_depthwise,
        ),
        Port(block.depthwise.bias.path, (f"{key}_depthwise_conv/bias",)),
        *keras_layer(block.norm, f"{key}_layernorm"),
        *keras_layer(block.expand, f"{key}_pointwise_conv_1"),
        *keras_layer(block.project, f"{key}_pointwise_conv_2"),
    ]
    if block.gamma is not None:
        ports.append(Port(block.gamma.path, (_layer_scale_key(source, key),)))
    return ports


def _head_norm(source, prefix):
    key = f"{prefix}_head_layernorm"
    if f"{key}/gamma" in source:
        return key
    for name in source:
        match = _NOTOP_NORM.match(name)
        if match:
            return match.group(1)
    return key  # missing: the plan names it


class ConvNeXtKerasConverter(KerasApplicationConverter):
    """keras.applications ConvNeXtTiny, Small, Base and Large: the stem
    (`{name}_stem_conv`, `_stem_layernorm`), the downsampling layers
    (`{name}_downsampling_layernorm_{i}`, `_conv_{i}`) at the start of stages
    2-4, block `j` of stage `i` as Keras's `{name}_stage_{i - 1}_block_{j -
    1}_` (its grouped depthwise kernel transposed), the head's layer norm
    (`{name}_head_layernorm` onto `top`) and dense layer (`{name}_head_dense`
    onto kerazoo's `predictions`); the Normalization layer becomes the port's
    preprocessing."""

    models = tuple(f"convnext_{variant}" for variant in VARIANTS)
    copies_preprocessing = True

    def classifier_name(self, keras_model):
        """Keras names ConvNeXt's classifier `{name}_head_dense`, `name` the
        prefix of its layers (the Keras model's name when it was built)."""
        return f"{_prefix([v.path for v in keras_model.weights])}_head_dense"

    def ports(self, model, source):
        prefix = _prefix(source)
        body = model.get_layer("body")
        stem, top = body.get_layer("stem"), body.get_layer("top")
        ports = [
            *keras_layer(stem.get_layer("conv"), f"{prefix}_stem/{prefix}_stem_conv"),
            *keras_layer(
                stem.get_layer("norm"), f"{prefix}_stem/{prefix}_stem_layernorm"
            ),
        ]
        for i, stage in enumerate(body_stages(model)):
            if i > 0:
                scope = f"{prefix}_downsampling_block_{i - 1}/{prefix}_downsampling"
                ports += keras_layer(
                    stage.get_layer("downsample_norm"), f"{scope}_layernorm_{i - 1}"
                )
                ports += keras_layer(
                    stage.get_layer("downsample_conv"), f"{scope}_conv_{i - 1}"
                )
            for j, block in enumerate(stage_blocks(stage)):
                ports += _block_ports(block, f"{prefix}_stage_{i}_block_{j}", source)
        ports += keras_layer(top.get_layer("norm"), _head_norm(source, prefix))
        return [*ports, *keras_head(f"{prefix}_head_dense")]

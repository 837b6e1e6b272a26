"""keras.applications' MobileNetV2 and MobileNetV3 into kerazoo's MobileNets.

Keras numbers the blocks through the network (`block_{i}_`,
`expanded_conv_{i}_`; the first, which has no expansion, is
`expanded_conv_`), kerazoo per stage: the ports follow the blocks in order.
MobileNetV3's two 1x1 convolutions on the pooled features (`conv_2`,
`logits`) become kerazoo's `"pre_logits"` and `"predictions"` Dense layers:
the same kernels without their 1x1 window.
"""

from kerazoo.weights.assign import HEAD
from kerazoo.weights.convert import Port
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import keras_batch_norm
from kerazoo.weights.convert import keras_conv_bn
from kerazoo.weights.convert import keras_head
from kerazoo.weights.convert import keras_layer
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.keras_applications import KerasApplicationConverter

V2_WIDTHS = ("035", "050", "075", "100", "130", "140")


def _blocks(model):
    """The MBConv blocks of the body, stage after stage."""
    return [block for stage in body_stages(model) for block in stage_blocks(stage)]


def _conv_stage(model, stage, source_conv, source_norm, source):
    part = model.get_layer("body").get_layer(stage)
    return keras_conv_bn(
        part.get_layer("conv"),
        part.get_layer("conv_bn"),
        source_conv,
        source_norm,
        source,
    )


def _block_ports(block, prefix, norm, source):
    """Expansion (when the block has one), depthwise, squeeze-excite (when it
    has one) and projection; `norm` is Keras's suffix of their batch norms."""
    ports = []
    if block.expand is not None:
        ports += keras_conv_bn(
            block.expand,
            block.expand_norm,
            f"{prefix}expand",
            f"{prefix}expand_{norm}",
            source,
        )
    ports += keras_layer(block.depthwise, f"{prefix}depthwise")
    ports += keras_batch_norm(block.depthwise_norm, f"{prefix}depthwise_{norm}")
    if block.se is not None:
        ports += keras_layer(block.se.reduce, f"{prefix}squeeze_excite_conv")
        ports += keras_layer(block.se.expand, f"{prefix}squeeze_excite_conv_1")
    ports += keras_conv_bn(
        block.project,
        block.project_norm,
        f"{prefix}project",
        f"{prefix}project_{norm}",
        source,
    )
    return ports


def _unwindowed(kernel):
    """A 1x1 convolution's kernel, `(1, 1, in, out)`, as a Dense kernel."""
    return kernel.reshape(kernel.shape[-2:])


class MobileNetV2KerasConverter(KerasApplicationConverter):
    """keras.applications MobileNetV2 at any width: `Conv1`, the blocks,
    `Conv_1` and `predictions`. Its input normalisation is `preprocess_input`'s
    ("tf"), outside the model, as kerazoo's registry default."""

    models = tuple(f"mobilenet_v2_{width}" for width in V2_WIDTHS)

    def ports(self, model, source):
        ports = _conv_stage(model, "stem", "Conv1", "bn_Conv1", source)
        for i, block in enumerate(_blocks(model)):
            prefix = f"block_{i}_" if i else "expanded_conv_"
            ports += _block_ports(block, prefix, "BN", source)
        ports += _conv_stage(model, "top", "Conv_1", "Conv_1_bn", source)
        return [*ports, *keras_head()]


class MobileNetV3KerasConverter(KerasApplicationConverter):
    """keras.applications MobileNetV3Small and MobileNetV3Large (and their
    minimalistic variants): `conv`, the blocks, `conv_1`, then the head's
    `conv_2` and `logits`; its Rescaling layer becomes the port's
    preprocessing."""

    models = (
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "mobilenet_v3_small_minimal",
        "mobilenet_v3_large_minimal",
    )
    copies_preprocessing = True

    def ports(self, model, source):
        ports = _conv_stage(model, "stem", "conv", "conv_bn", source)
        for i, block in enumerate(_blocks(model)):
            prefix = f"expanded_conv_{i}_" if i else "expanded_conv_"
            ports += _block_ports(block, prefix, "bn", source)
        ports += _conv_stage(model, "top", "conv_1", "conv_1_bn", source)
        return [
            *ports,
            # Part of the head: absent with include_top=False, in both models.
            Port("pre_logits/kernel", ("conv_2/kernel",), _unwindowed, optional=True),
            Port("pre_logits/bias", ("conv_2/bias",), optional=True),
            Port(f"{HEAD}kernel", ("logits/kernel",), _unwindowed),
            Port(f"{HEAD}bias", ("logits/bias",)),
        ]

"""keras.applications' EfficientNetV2B0-B3, S, M and L into kerazoo's
EfficientNetV2s: Keras's layer names (`block{stage}{a, b, ...}_...`) onto the
model's variables; the Rescaling (and, for B0-B3, Normalization) layers become
its preprocessing."""

from kerazoo.weights.convert import Port
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import keras_batch_norm
from kerazoo.weights.convert import keras_conv_bn
from kerazoo.weights.convert import keras_head
from kerazoo.weights.convert import keras_layer
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.keras_applications import KerasApplicationConverter

VARIANTS = ("b0", "b1", "b2", "b3", "s", "m", "l")


def _block_ports(block, prefix, source):
    """A block's expansion (when it has one; the fused block's is its full
    convolution), depthwise convolution (unfused blocks), squeeze-excite (when
    it has one) and projection."""
    ports = []
    if block.expand is not None:
        ports += keras_conv_bn(
            block.expand,
            block.expand_norm,
            f"{prefix}expand_conv",
            f"{prefix}expand_bn",
            source,
        )
    if block.depthwise is not None:
        ports.append(Port(block.depthwise.kernel.path, (f"{prefix}dwconv2/kernel",)))
        ports += keras_batch_norm(block.depthwise_norm, f"{prefix}bn")
    if block.se is not None:
        ports += keras_layer(block.se.reduce, f"{prefix}se_reduce")
        ports += keras_layer(block.se.expand, f"{prefix}se_expand")
    ports += keras_conv_bn(
        block.project,
        block.project_norm,
        f"{prefix}project_conv",
        f"{prefix}project_bn",
        source,
    )
    return ports


class EfficientNetV2KerasConverter(KerasApplicationConverter):
    """keras.applications EfficientNetV2B0-B3, S, M and L: `stem_conv`, block
    `j` of stage `s` as Keras's `block{s}{a, b, ...}_`, `top_conv` and
    `predictions`; the Rescaling and Normalization layers become the port's
    preprocessing."""

    models = tuple(f"efficientnetv2_{variant}" for variant in VARIANTS)
    copies_preprocessing = True
    # The input normalization's statistics (B0-B3): reproduced by the
    # preprocessing.
    ignored = (r"normalization(_\d+)?/",)

    def ports(self, model, source):
        body = model.get_layer("body")
        stem, top = body.get_layer("stem"), body.get_layer("top")
        ports = keras_conv_bn(
            stem.get_layer("conv"),
            stem.get_layer("conv_bn"),
            "stem_conv",
            "stem_bn",
            source,
        )
        for s, stage in enumerate(body_stages(model)):
            for j, block in enumerate(stage_blocks(stage)):
                ports += _block_ports(
                    block, f"block{s + 1}{chr(ord('a') + j)}_", source
                )
        ports += keras_conv_bn(
            top.get_layer("conv"),
            top.get_layer("conv_bn"),
            "top_conv",
            "top_bn",
            source,
        )
        return [*ports, *keras_head()]

"""keras.applications' EfficientNetB0-B7 into kerazoo's EfficientNets:
Keras's layer names (`block{stage}{a, b, ...}_...`) onto the model's
variables; the Rescaling and Normalization layers become its preprocessing."""

from kerazoo.weights.convert import Port
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import keras_batch_norm
from kerazoo.weights.convert import keras_conv_bn
from kerazoo.weights.convert import keras_head
from kerazoo.weights.convert import keras_layer
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.keras_applications import KerasApplicationConverter


class EfficientNetKerasConverter(KerasApplicationConverter):
    """keras.applications EfficientNetB0-B7: block `j` of stage `s` is Keras's
    `block{s}{a, b, ...}_`; the Rescaling and Normalization layers become the
    port's preprocessing."""

    models = tuple(f"efficientnet_b{i}" for i in range(8))
    copies_preprocessing = True
    # The input normalization's statistics: reproduced by the preprocessing.
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
                prefix = f"block{s + 1}{chr(ord('a') + j)}_"
                if block.expand is not None:
                    ports += keras_conv_bn(
                        block.expand,
                        block.expand_norm,
                        f"{prefix}expand_conv",
                        f"{prefix}expand_bn",
                        source,
                    )
                ports.append(
                    Port(block.depthwise.kernel.path, (f"{prefix}dwconv/kernel",))
                )
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
        ports += keras_conv_bn(
            top.get_layer("conv"),
            top.get_layer("conv_bn"),
            "top_conv",
            "top_bn",
            source,
        )
        return [*ports, *keras_head()]

"""keras.applications' ResNet50/101/152 into kerazoo's ResNets: Keras's
layer names (`conv{stage}_block{block}_{conv}_conv`) onto the model's
variables, each convolution's bias folded into the batch norm after it."""

from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import keras_conv_bn
from kerazoo.weights.convert import keras_head
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.keras_applications import KerasApplicationConverter


class ResNetKerasConverter(KerasApplicationConverter):
    """keras.applications ResNet50/101/152 (v1: the stride on the first 1x1
    convolution of a block, Keras's batch-norm epsilon; the convolutions'
    biases folded into the batch norms)."""

    models = ("resnet50", "resnet101", "resnet152")
    options = {"stride_on": "1x1", "norm_epsilon": 1.001e-5}

    def ports(self, model, source):
        stem = model.get_layer("body").get_layer("stem")
        ports = keras_conv_bn(
            stem.get_layer("conv1"),
            stem.get_layer("conv1_bn"),
            "conv1_conv",
            "conv1_bn",
            source,
        )
        for s, stage in enumerate(body_stages(model)):
            for j, block in enumerate(stage_blocks(stage)):
                prefix = f"conv{s + 2}_block{j + 1}"
                pairs = zip(block.convs, block.norms, strict=True)
                for k, (conv, norm) in enumerate(pairs):
                    ports += keras_conv_bn(
                        conv,
                        norm,
                        f"{prefix}_{k + 1}_conv",
                        f"{prefix}_{k + 1}_bn",
                        source,
                    )
                if block.projection is not None:
                    ports += keras_conv_bn(
                        block.projection,
                        block.projection_norm,
                        f"{prefix}_0_conv",
                        f"{prefix}_0_bn",
                        source,
                    )
        return [*ports, *keras_head()]

"""keras.applications' DenseNet121/169/201 into kerazoo's DenseNets: Keras's
layer names (`conv{stage}_block{layer}_{0,1,2}`, `pool{stage}_`, `bn`) onto
the model's variables."""

from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import keras_batch_norm
from kerazoo.weights.convert import keras_conv_bn
from kerazoo.weights.convert import keras_head
from kerazoo.weights.convert import keras_layer
from kerazoo.weights.keras_applications import KerasApplicationConverter


class DenseNetKerasConverter(KerasApplicationConverter):
    """keras.applications DenseNet121/169/201 (Keras's batch-norm epsilon)."""

    models = ("densenet121", "densenet169", "densenet201")
    options = {"norm_epsilon": 1.001e-5}

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
            dense = stage.get_layer("dense_block")
            for j, layers in enumerate(dense.dense_layers):
                bn1, _, conv1, bn2, _, conv2 = layers
                prefix = f"conv{s + 2}_block{j + 1}"
                ports += keras_batch_norm(bn1, f"{prefix}_0_bn")
                ports += keras_conv_bn(
                    conv1, bn2, f"{prefix}_1_conv", f"{prefix}_1_bn", source
                )
                ports += keras_layer(conv2, f"{prefix}_2_conv")
            if "transition" in {layer.name for layer in stage.layers}:
                transition = stage.get_layer("transition")
                ports += keras_batch_norm(transition.norm, f"pool{s + 2}_bn")
                ports += keras_layer(transition.conv, f"pool{s + 2}_conv")
            else:
                ports += keras_batch_norm(stage.get_layer("final_bn"), "bn")
        return [*ports, *keras_head()]

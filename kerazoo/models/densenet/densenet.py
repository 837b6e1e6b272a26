"""The DenseNet body (Huang et al. 2017), from `kerazoo.layers.DenseBlock` and
`TransitionBlock`."""

import keras

from kerazoo.layers import BatchNormalization
from kerazoo.layers import DenseBlock
from kerazoo.layers import TransitionBlock
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage


def densenet_body(inputs, blocks, growth_rate=32, compression=0.5, norm_epsilon=1e-5):
    """A 7x7/2 convolution and 3x3/2 max-pool, then dense blocks (DenseNet-BC:
    1x1 bottlenecks of 4k) separated by transitions that halve the channels and
    the size, and a final batch norm and ReLU. Stage i is dense block i followed
    by its transition (the last stage ends with the final norm instead)."""

    def stem(x):
        # Symmetric padding, as in the original network and its pretrained
        # weights.
        x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = conv_bn_act(
            x,
            2 * growth_rate,
            7,
            2,
            name="conv1",
            epsilon=norm_epsilon,
            padding="valid",
        )
        x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
        return keras.layers.MaxPooling2D(3, strides=2, name="pool")(x)

    x = stage("stem", stem, inputs)
    for i, layers in enumerate(blocks):
        last = i == len(blocks) - 1

        def build(x, layers=layers, last=last):
            x = DenseBlock(
                layers, growth_rate, norm_epsilon=norm_epsilon, name="dense_block"
            )(x)
            if last:
                x = BatchNormalization(epsilon=norm_epsilon, name="final_bn")(x)
                return keras.layers.Activation("relu", name="final_act")(x)
            return TransitionBlock(
                compression, norm_epsilon=norm_epsilon, name="transition"
            )(x)

        x = stage(f"stage{i + 1}", build, x)
    return x

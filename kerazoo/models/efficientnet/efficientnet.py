"""The EfficientNet body (Tan & Le 2019), B0-B7 and Lite0-4 from one B0
definition and compound-scaling coefficients, with `kerazoo.layers.MBConvBlock`."""

import math

import keras

from kerazoo.layers import MBConvBlock
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage

# B0, Table 1: (kernel, repeats, output filters, expand ratio, stride).
B0_STAGES = (
    (3, 1, 16, 1, 1),
    (3, 2, 24, 6, 2),
    (5, 2, 40, 6, 2),
    (3, 3, 80, 6, 2),
    (5, 3, 112, 6, 1),
    (5, 4, 192, 6, 2),
    (3, 1, 320, 6, 1),
)


def round_filters(filters, width, divisor=8):
    """Scales a channel count by `width`, to a multiple of `divisor`, never
    more than 10% below the exact value."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats, depth):
    return math.ceil(depth * repeats)


def efficientnet_body(
    inputs,
    width,
    depth,
    lite=False,
    drop_connect_rate=0.2,
    norm_epsilon=1e-3,
    norm_momentum=0.99,
    padding="same",
):
    """Stem (3x3/2 convolution), seven stages of MBConv blocks, and a 1x1
    convolution to 1280 (scaled) channels (`top`).

    Lite variants: ReLU6 instead of swish, no squeeze-excite, and the stem, the
    head and the repeats of the first and last stages kept at B0's values.

    `padding`: `"same"` (Keras's) or `"symmetric"` (PyTorch's, for
    torchvision's and timm's weights): the strided convolutions (the stem's
    and the blocks' depthwise ones) pad `kernel // 2` pixels on every side.
    """
    activation = "relu6" if lite else "swish"
    se_ratio = None if lite else 0.25
    stem_filters = 32 if lite else round_filters(32, width)
    top_filters = 1280 if lite else round_filters(1280, width)
    common = {"norm_epsilon": norm_epsilon, "norm_momentum": norm_momentum}
    if padding != "same":
        common["padding"] = padding

    def stem(x):
        if padding == "symmetric":
            x = keras.layers.ZeroPadding2D(1, name="conv_pad")(x)
        return conv_bn_act(
            x,
            stem_filters,
            3,
            2,
            name="conv",
            activation=activation,
            epsilon=norm_epsilon,
            momentum=norm_momentum,
            padding="valid" if padding == "symmetric" else "same",
        )

    x = stage("stem", stem, inputs)
    repeats = []
    for i, (_, r, *_rest) in enumerate(B0_STAGES):
        fixed = lite and i in (0, len(B0_STAGES) - 1)
        repeats.append(r if fixed else round_repeats(r, depth))
    total, index = sum(repeats), 0
    for i, (kernel, _, filters, expand, strides) in enumerate(B0_STAGES):

        def blocks(
            x,
            i=i,
            kernel=kernel,
            filters=filters,
            expand=expand,
            strides=strides,
            start=index,
        ):
            for j in range(repeats[i]):
                x = MBConvBlock(
                    round_filters(filters, width),
                    expand_ratio=expand,
                    kernel_size=kernel,
                    strides=strides if j == 0 else 1,
                    se_ratio=se_ratio,
                    activation=activation,
                    drop_rate=drop_connect_rate * (start + j) / total,
                    name=f"block{j + 1}",
                    **common,
                )(x)
            return x

        x = stage(f"stage{i + 1}", blocks, x)
        index += repeats[i]

    def top(x):
        return conv_bn_act(
            x,
            top_filters,
            1,
            name="conv",
            activation=activation,
            epsilon=norm_epsilon,
            momentum=norm_momentum,
        )

    return stage("top", top, x)

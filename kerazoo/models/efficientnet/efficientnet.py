"""EfficientNet B0-B7 (Tan & Le 2019) and EfficientNet-Lite0-4, from one B0
definition and compound-scaling coefficients, with `kerazoo.layers.MBConvBlock`."""

import math

from kerazoo.layers import MBConvBlock
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage
from kerazoo.models.registry import register_model

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
# Trainable parameters, 1000 classes: B0-B7 as keras.applications reports them;
# Lite0-2 as the official EfficientNet-Lite weights; Lite3/4 as built here
# (published rounded: 8.2M, 13.0M).
PARAMS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
    "efficientnet_lite0": 4_652_008,
    "efficientnet_lite1": 5_416_680,
    "efficientnet_lite2": 6_092_072,
    "efficientnet_lite3": 8_197_096,
    "efficientnet_lite4": 13_006_568,
}
# name: (width, depth, resolution, dropout)
SCALING = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}


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
):
    """Stem (3x3/2 convolution), seven stages of MBConv blocks, and a 1x1
    convolution to 1280 (scaled) channels (`top`).

    Lite variants: ReLU6 instead of swish, no squeeze-excite, and the stem, the
    head and the repeats of the first and last stages kept at B0's values.
    """
    activation = "relu6" if lite else "swish"
    se_ratio = None if lite else 0.25
    stem_filters = 32 if lite else round_filters(32, width)
    top_filters = 1280 if lite else round_filters(1280, width)
    common = {"norm_epsilon": norm_epsilon, "norm_momentum": norm_momentum}

    def stem(x):
        return conv_bn_act(
            x,
            stem_filters,
            3,
            2,
            name="conv",
            activation=activation,
            epsilon=norm_epsilon,
            momentum=norm_momentum,
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


def _efficientnet(name):
    width, depth, resolution, dropout = SCALING[name]
    lite = "lite" in name

    @register_model(
        name,
        family="efficientnet_lite" if lite else "efficientnet",
        params=PARAMS[name],
        input_size=resolution,
        min_input_size=32,
        preprocessing="lite" if lite else "torch",
        dropout=dropout,
        paper="Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional "
        "Neural Networks, ICML 2019",
    )
    def build(inputs, drop_connect_rate=0.2, norm_epsilon=1e-3, norm_momentum=0.99):
        return efficientnet_body(
            inputs,
            width,
            depth,
            lite=lite,
            drop_connect_rate=drop_connect_rate,
            norm_epsilon=norm_epsilon,
            norm_momentum=norm_momentum,
        )

    build.__name__ = name
    build.__doc__ = (
        f"{name}: width x{width}, depth x{depth}, {resolution}x{resolution} input."
    )
    return build


for _name in SCALING:
    globals()[_name] = _efficientnet(_name)

"""MobileNetV2 and MobileNetV3 bodies, from `kerazoo.layers.MBConvBlock`.

Both are a strided 3x3 stem, stages of inverted-residual blocks and a 1x1
convolution (`top`) to the width the classifier pools. The block tables and the
channel rounding are those of the papers and of keras.applications, so that a
body built here has keras.applications' variables, one for one.
"""

import keras

from kerazoo.layers import MBConvBlock
from kerazoo.layers.mbconv_block import make_divisible
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage

# MobileNetV2, Table 2: (expansion, output filters, repeats, first stride).
V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
V2_TOP = 1280

# MobileNetV3, Tables 1 and 2, one stage per output width: each block is
# (kernel, expansion, output filters, squeeze-excite, activation, stride).
# "RE" is ReLU, "HS" hard-swish. The expansions are the papers' expanded
# widths over the input widths (72 / 16 = 4.5); the block rounds them back.
V3_SMALL_STAGES = (
    ((3, 1, 16, True, "RE", 2),),
    ((3, 72 / 16, 24, False, "RE", 2), (3, 88 / 24, 24, False, "RE", 1)),
    (
        (5, 4, 40, True, "HS", 2),
        (5, 6, 40, True, "HS", 1),
        (5, 6, 40, True, "HS", 1),
    ),
    ((5, 3, 48, True, "HS", 1), (5, 3, 48, True, "HS", 1)),
    (
        (5, 6, 96, True, "HS", 2),
        (5, 6, 96, True, "HS", 1),
        (5, 6, 96, True, "HS", 1),
    ),
)
V3_LARGE_STAGES = (
    ((3, 1, 16, False, "RE", 1),),
    ((3, 4, 24, False, "RE", 2), (3, 3, 24, False, "RE", 1)),
    (
        (5, 3, 40, True, "RE", 2),
        (5, 3, 40, True, "RE", 1),
        (5, 3, 40, True, "RE", 1),
    ),
    (
        (3, 6, 80, False, "HS", 2),
        (3, 2.5, 80, False, "HS", 1),
        (3, 2.3, 80, False, "HS", 1),
        (3, 2.3, 80, False, "HS", 1),
    ),
    ((3, 6, 112, True, "HS", 1), (3, 6, 112, True, "HS", 1)),
    (
        (5, 6, 160, True, "HS", 2),
        (5, 6, 160, True, "HS", 1),
        (5, 6, 160, True, "HS", 1),
    ),
)
V3_STAGES = {"small": V3_SMALL_STAGES, "large": V3_LARGE_STAGES}
# Width of the Dense layer after pooling (the papers' 1x1 convolution on the
# pooled features), before the classifier.
V3_PRE_LOGITS = {"small": 1024, "large": 1280}
# The top convolution widens the last block's output six times.
V3_TOP_EXPANSION = 6
ACTIVATIONS = {"RE": "relu", "HS": "hard_swish"}


def v2_filters(filters, width):
    """A MobileNetV2 block's output width: truncated, then made divisible by 8
    (as keras.applications rounds it)."""
    return make_divisible(int(filters * width))


def v2_top_filters(width):
    """The last convolution's width: 1280, widened (never narrowed) with the
    network."""
    return make_divisible(V2_TOP * width) if width > 1.0 else V2_TOP


def v3_pre_logits(size, width=1.0):
    """Units of MobileNetV3's Dense layer after pooling: widened (never
    narrowed) with the network."""
    units = V3_PRE_LOGITS[size]
    return make_divisible(units * width) if width > 1.0 else units


def _conv_stage(
    name, x, filters, kernel_size, strides, activation, common, padding="same"
):
    def build(x):
        if padding == "symmetric" and strides > 1:
            # PyTorch's padding=k // 2 on every side, then "valid".
            x = keras.layers.ZeroPadding2D(kernel_size // 2, name="conv_pad")(x)
        return conv_bn_act(
            x,
            filters,
            kernel_size,
            strides,
            name="conv",
            activation=activation,
            epsilon=common["norm_epsilon"],
            momentum=common["norm_momentum"],
            padding="valid" if padding == "symmetric" and strides > 1 else "same",
        )

    return stage(name, build, x)


def _block_stage(name, x, blocks):
    """A stage of `MBConvBlock`s, from a list of their keyword arguments."""

    def build(x, blocks=blocks):
        for j, kwargs in enumerate(blocks):
            x = MBConvBlock(name=f"block{j + 1}", **kwargs)(x)
        return x

    return stage(name, build, x)


def mobilenet_v2_body(inputs, width=1.0, norm_epsilon=1e-3, norm_momentum=0.99):
    """MobileNetV2: stem (3x3/2 convolution, ReLU6), seven stages of inverted
    residuals without squeeze-excite, and a 1x1 convolution to 1280 channels
    (`top`).

    Args:
        inputs: The preprocessed image tensor.
        width: Width multiplier (alpha): 0.35 to 1.4 for the published networks.
        norm_epsilon: Epsilon of every batch norm (the weights' 1e-3).
        norm_momentum: Momentum of every batch norm (keras.applications trains
            with 0.999; kerazoo's families default to 0.99, which settles in
            fewer steps when fine-tuning).
    """
    common = {"norm_epsilon": norm_epsilon, "norm_momentum": norm_momentum}
    x = _conv_stage("stem", inputs, make_divisible(32 * width), 3, 2, "relu6", common)
    for i, (expand, filters, repeats, strides) in enumerate(V2_STAGES):
        blocks = [
            {
                "filters": v2_filters(filters, width),
                "expand_ratio": expand,
                "kernel_size": 3,
                "strides": strides if j == 0 else 1,
                "activation": "relu6",
                **common,
            }
            for j in range(repeats)
        ]
        x = _block_stage(f"stage{i + 1}", x, blocks)
    return _conv_stage("top", x, v2_top_filters(width), 1, 1, "relu6", common)


def mobilenet_v3_body(
    inputs,
    size="large",
    width=1.0,
    minimalistic=False,
    norm_epsilon=1e-3,
    norm_momentum=0.99,
    padding="same",
):
    """MobileNetV3 Small or Large: stem (3x3/2 convolution to 16 channels),
    stages of inverted residuals with ReLU or hard-swish and hard-sigmoid
    squeeze-excite, and a 1x1 convolution to six times the last block's width
    (`top`). The Dense layer the classifier puts after pooling
    (`v3_pre_logits`) is part of the head.

    Args:
        inputs: The preprocessed image tensor.
        size: `"small"` or `"large"`.
        width: Width multiplier (alpha) of the blocks (the stem stays at 16).
        minimalistic: The papers' minimalistic variant: 3x3 kernels, ReLU
            everywhere and no squeeze-excite.
        norm_epsilon: Epsilon of every batch norm (the weights' 1e-3).
        norm_momentum: Momentum of every batch norm (keras.applications trains
            with 0.999; kerazoo's families default to 0.99).
        padding: How the strided convolutions (stem, depthwise) pad:
            `"same"` (Keras's, keras.applications' weights) or `"symmetric"`
            (PyTorch's `k // 2` on every side, torchvision's and timm's).
    """
    common = {"norm_epsilon": norm_epsilon, "norm_momentum": norm_momentum}
    top_activation = "relu" if minimalistic else "hard_swish"
    x = _conv_stage("stem", inputs, 16, 3, 2, top_activation, common, padding)
    for i, rows in enumerate(V3_STAGES[size]):
        blocks = []
        for kernel, expand, filters, se, activation, strides in rows:
            se = se and not minimalistic
            blocks.append(
                {
                    "filters": make_divisible(filters * width),
                    "expand_ratio": expand,
                    "kernel_size": 3 if minimalistic else kernel,
                    "strides": strides,
                    "se_ratio": 0.25 if se else None,
                    "se_from": "expanded",
                    "se_activation": "relu",
                    "se_gate_activation": "hard_sigmoid",
                    "divisor": 8,
                    "activation": "relu" if minimalistic else ACTIVATIONS[activation],
                    # Only when set: the default blocks' configs stay as they were.
                    **({"padding": padding} if padding != "same" else {}),
                    **common,
                }
            )
        x = _block_stage(f"stage{i + 1}", x, blocks)
    top = make_divisible(x.shape[-1] * V3_TOP_EXPANSION)
    return _conv_stage("top", x, top, 1, 1, top_activation, common)

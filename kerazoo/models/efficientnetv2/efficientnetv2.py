"""The EfficientNetV2 body (Tan & Le 2021): fused-MBConv stages at high
resolution, MBConv stages with squeeze-excite after them, from
`kerazoo.layers.MBConvBlock`.

The block tables are the paper's (Table 4 for S) and the official
implementation's (B0-B3, M, L), as keras.applications has them, and so are
the width and depth scaling of B1-B3: a body built here has keras.applications'
variables, one for one.
"""

import math

from kerazoo.layers import MBConvBlock
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage

# Every stage: (fused, repeats, output filters, expand ratio, squeeze-excite
# ratio or None, first stride). Every kernel is 3x3; the SE squeezes the
# block's input width, as EfficientNet's.
B_STAGES = (
    (True, 1, 16, 1, None, 1),
    (True, 2, 32, 4, None, 2),
    (True, 2, 48, 4, None, 2),
    (False, 3, 96, 4, 0.25, 2),
    (False, 5, 112, 6, 0.25, 1),
    (False, 8, 192, 6, 0.25, 2),
)
S_STAGES = (
    (True, 2, 24, 1, None, 1),
    (True, 4, 48, 4, None, 2),
    (True, 4, 64, 4, None, 2),
    (False, 6, 128, 4, 0.25, 2),
    (False, 9, 160, 6, 0.25, 1),
    (False, 15, 256, 6, 0.25, 2),
)
M_STAGES = (
    (True, 3, 24, 1, None, 1),
    (True, 5, 48, 4, None, 2),
    (True, 5, 80, 4, None, 2),
    (False, 7, 160, 4, 0.25, 2),
    (False, 14, 176, 6, 0.25, 1),
    (False, 18, 304, 6, 0.25, 2),
    (False, 5, 512, 6, 0.25, 1),
)
L_STAGES = (
    (True, 4, 32, 1, None, 1),
    (True, 7, 64, 4, None, 2),
    (True, 7, 96, 4, None, 2),
    (False, 10, 192, 4, 0.25, 2),
    (False, 19, 224, 6, 0.25, 1),
    (False, 25, 384, 6, 0.25, 2),
    (False, 7, 640, 6, 0.25, 1),
)
# size: (stem filters, stages), before width scaling.
ARCHITECTURES = {
    "b": (32, B_STAGES),
    "s": (24, S_STAGES),
    "m": (24, M_STAGES),
    "l": (32, L_STAGES),
}
TOP_FILTERS = 1280


def round_filters(filters, width, divisor=8):
    """Scales a channel count by `width` to the nearest multiple of `divisor`
    (at least `divisor`). Unlike EfficientNet's rounding, it does not add a
    `divisor` back when the result falls more than 10% below the exact value
    (B3's 16 * 1.2 stays 16): EfficientNetV2's weights were trained so."""
    return int(max(divisor, int(filters * width + divisor / 2) // divisor * divisor))


def round_repeats(repeats, depth):
    return math.ceil(depth * repeats)


def efficientnetv2_body(
    inputs,
    size,
    width=1.0,
    depth=1.0,
    drop_connect_rate=0.2,
    norm_epsilon=1e-3,
    norm_momentum=0.99,
):
    """Stem (3x3/2 convolution, swish), stages of fused-MBConv then MBConv
    blocks, and a 1x1 convolution to 1280 (scaled) channels (`top`).

    Args:
        inputs: The preprocessed image tensor.
        size: `"b"` (B0-B3, scaled by `width` and `depth`), `"s"`, `"m"` or
            `"l"`.
        width: Width coefficient (channels).
        depth: Depth coefficient (blocks per stage).
        drop_connect_rate: Stochastic-depth rate of the last block; block `i`
            of `n` drops its residual branch with `rate * i / n`.
        norm_epsilon: Epsilon of every batch norm (the weights' 1e-3).
        norm_momentum: Momentum of every batch norm (keras.applications trains
            with 0.9; kerazoo's families default to 0.99).
    """
    stem_filters, stages = ARCHITECTURES[size]
    common = {"norm_epsilon": norm_epsilon, "norm_momentum": norm_momentum}

    def conv(x, filters, kernel_size, strides=1):
        return conv_bn_act(
            x,
            filters,
            kernel_size,
            strides,
            name="conv",
            activation="swish",
            epsilon=norm_epsilon,
            momentum=norm_momentum,
        )

    x = stage(
        "stem", lambda t: conv(t, round_filters(stem_filters, width), 3, 2), inputs
    )
    repeats = [round_repeats(row[1], depth) for row in stages]
    total, index = sum(repeats), 0
    for i, (fused, _, filters, expand, se_ratio, strides) in enumerate(stages):
        blocks = [
            {
                "filters": round_filters(filters, width),
                "expand_ratio": expand,
                "kernel_size": 3,
                "strides": strides if j == 0 else 1,
                "se_ratio": se_ratio,
                "activation": "swish",
                "drop_rate": drop_connect_rate * (index + j) / total,
                "fused": fused,
                **common,
            }
            for j in range(repeats[i])
        ]

        def build(x, blocks=blocks):
            for j, kwargs in enumerate(blocks):
                x = MBConvBlock(name=f"block{j + 1}", **kwargs)(x)
            return x

        x = stage(f"stage{i + 1}", build, x)
        index += repeats[i]
    return stage("top", lambda t: conv(t, round_filters(TOP_FILTERS, width), 1), x)

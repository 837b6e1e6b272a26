"""The ConvNeXt body (Liu et al. 2022): a 4x4/4 "patchify" stem, four stages
of `kerazoo.layers.ConvNeXtBlock`, each after the first entered through a
layer norm and a 2x2/2 convolution, and the head's layer norm (`top`).

The depths and widths are the paper's (Table 1 and section 3), as
keras.applications has them: a body built here has keras.applications'
variables, one for one.
"""

import keras
import numpy as np

from kerazoo.layers import ConvNeXtBlock
from kerazoo.layers import LayerNormalization
from kerazoo.models._common import stage

# size: (blocks per stage, channels per stage).
ARCHITECTURES = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
}
# Every layer norm of the network, as the published weights were trained.
NORM_EPSILON = 1e-6


def drop_path_rates(rate, blocks):
    """Stochastic-depth rate of each of `blocks` blocks: rising linearly from
    0 (the first block) to `rate` (the last), as the paper's code and
    keras.applications schedule it."""
    return [float(r) for r in np.linspace(0.0, rate, blocks)]


def convnext_body(
    inputs,
    size,
    drop_connect_rate=0.0,
    layer_scale_init_value=1e-6,
):
    """Stem (4x4/4 convolution with bias, layer norm), stages `stage1` ...
    `stage4` of ConvNeXt blocks (stages 2-4 start with a layer norm and a
    2x2/2 convolution that doubles the channels), and `top`.

    `top` is the head's layer norm, with the global average pooling before
    it: keras.applications (and the paper's code) normalise the pooled
    features, and a layer norm does not commute with the average, so the
    pooling sits in the body to compute the published function. The body's
    output is therefore a 1x1 map of normalised features; kerazoo's head pools
    it (an identity) and classifies. The stride-4 to stride-32 feature maps
    (`create_model(..., features_only=True)`) are the stem's and stages'
    outputs, before `top`.

    Args:
        inputs: The preprocessed image tensor.
        size: `"tiny"`, `"small"`, `"base"` or `"large"`.
        drop_connect_rate: Stochastic-depth rate of the last block; the rates
            rise linearly from 0 at the first block (`drop_path_rates`).
            keras.applications' default, 0.0, turns it off.
        layer_scale_init_value: Initial per-channel layer scale of every
            block (1e-6), or None for none.
    """
    depths, widths = ARCHITECTURES[size]
    rates = drop_path_rates(drop_connect_rate, sum(depths))

    def stem(x):
        x = keras.layers.Conv2D(widths[0], 4, strides=4, name="conv")(x)
        return LayerNormalization(epsilon=NORM_EPSILON, name="norm")(x)

    x = stage("stem", stem, inputs)
    index = 0
    for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
        block_rates = rates[index : index + depth]

        def build(x, i=i, width=width, block_rates=block_rates):
            if i > 0:
                x = LayerNormalization(epsilon=NORM_EPSILON, name="downsample_norm")(x)
                x = keras.layers.Conv2D(width, 2, strides=2, name="downsample_conv")(x)
            for j, rate in enumerate(block_rates):
                x = ConvNeXtBlock(
                    drop_path_rate=rate,
                    layer_scale_init_value=layer_scale_init_value,
                    norm_epsilon=NORM_EPSILON,
                    name=f"block{j + 1}",
                )(x)
            return x

        x = stage(f"stage{i + 1}", build, x)
        index += depth

    def top(x):
        x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
        return LayerNormalization(epsilon=NORM_EPSILON, name="norm")(x)

    return stage("top", top, x)

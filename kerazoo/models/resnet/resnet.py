"""The ResNet bodies (He et al. 2015): the ImageNet network and the CIFAR-10
network of section 4.2, from `kerazoo.layers.ResidualBlock`."""

import keras

from kerazoo.layers import ResidualBlock
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage


def resnet_body(
    inputs,
    kind,
    depths,
    widths=(64, 128, 256, 512),
    stride_on="3x3",
    norm_epsilon=1e-5,
    norm_momentum=0.9,
    shortcut=True,
    padding="same",
):
    """The ImageNet ResNet body: a 7x7/2 stem with a 3x3/2 max-pool, then four
    stages of residual blocks; each stage after the first halves the size in its
    first block, whose shortcut is a 1x1 projection (option B). `padding`: the
    blocks' (`ResidualBlock`), how their stride-2 3x3 convolutions pad:
    `"same"` (Keras's) or `"symmetric"` (PyTorch's, for torchvision's and
    timm's weights)."""

    def stem(x):
        # Symmetric padding, as the original network and every set of its
        # pretrained weights (Caffe, torchvision, keras.applications) have it.
        x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = conv_bn_act(
            x,
            64,
            7,
            2,
            name="conv1",
            epsilon=norm_epsilon,
            momentum=norm_momentum,
            padding="valid",
        )
        x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
        return keras.layers.MaxPooling2D(3, strides=2, name="pool")(x)

    x = stage("stem", stem, inputs)
    for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):

        def blocks(x, i=i, depth=depth, width=width):
            for j in range(depth):
                x = ResidualBlock(
                    width,
                    kind=kind,
                    strides=2 if (j == 0 and i > 0) else 1,
                    shortcut=shortcut,
                    stride_on=stride_on,
                    padding=padding,
                    norm_epsilon=norm_epsilon,
                    norm_momentum=norm_momentum,
                    name=f"block{j + 1}",
                )(x)
            return x

        x = stage(f"stage{i + 1}", blocks, x)
    return x


def cifar_body(inputs, n, shortcut=True, norm_epsilon=1e-5, norm_momentum=0.9):
    """The CIFAR-10 network of section 4.2: a 3x3 conv of 16 filters, then
    three stages of `n` basic blocks (16, 32, 64 filters; 32x32, 16x16, 8x8),
    `6n + 2` weighted layers in all. Shortcuts that change shape are option A
    (subsample and zero-pad: no parameters)."""

    def stem(x):
        return conv_bn_act(
            x, 16, 3, name="conv1", epsilon=norm_epsilon, momentum=norm_momentum
        )

    x = stage("stem", stem, inputs)
    for i, width in enumerate((16, 32, 64)):

        def blocks(x, i=i, width=width):
            for j in range(n):
                x = ResidualBlock(
                    width,
                    strides=2 if (j == 0 and i > 0) else 1,
                    shortcut=shortcut,
                    shortcut_type="zero_pad",
                    norm_epsilon=norm_epsilon,
                    norm_momentum=norm_momentum,
                    name=f"block{j + 1}",
                )(x)
            return x

        x = stage(f"stage{i + 1}", blocks, x)
    return x

"""ResNets (He et al. 2015): ImageNet ResNet-18 ... 152 and the CIFAR-10
networks of section 4.2, with their plain (shortcut-free) twins."""

import keras

from kerazoo.layers import ResidualBlock
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage
from kerazoo.models.registry import register_model

_PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"


def resnet_body(
    inputs,
    kind,
    depths,
    widths=(64, 128, 256, 512),
    stride_on="3x3",
    norm_epsilon=1e-5,
    norm_momentum=0.9,
    shortcut=True,
):
    """The ImageNet ResNet body: a 7x7/2 stem with a 3x3/2 max-pool, then four
    stages of residual blocks; each stage after the first halves the size in its
    first block, whose shortcut is a 1x1 projection (option B)."""

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
                    norm_epsilon=norm_epsilon,
                    norm_momentum=norm_momentum,
                    name=f"block{j + 1}",
                )(x)
            return x

        x = stage(f"stage{i + 1}", blocks, x)
    return x


PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    # CIFAR networks, 10 classes; the plain ones have the same size (option A
    # shortcuts have no parameters).
    20: 269_722,
    32: 464_154,
    44: 658_586,
    56: 853_018,
    110: 1_727_962,
}


def _imagenet(name, kind, depths):
    @register_model(
        name,
        family="resnet",
        params=PARAMS[name],
        input_size=224,
        min_input_size=32,
        preprocessing="caffe",
        paper=_PAPER,
    )
    def build(inputs, stride_on="3x3", norm_epsilon=1e-5, norm_momentum=0.9):
        return resnet_body(
            inputs,
            kind,
            depths,
            stride_on=stride_on,
            norm_epsilon=norm_epsilon,
            norm_momentum=norm_momentum,
        )

    build.__name__ = name
    build.__doc__ = f"ResNet-{name[6:]}: {kind} blocks, stages of {depths}."
    return build


resnet18 = _imagenet("resnet18", "basic", (2, 2, 2, 2))
resnet34 = _imagenet("resnet34", "basic", (3, 4, 6, 3))
resnet50 = _imagenet("resnet50", "bottleneck", (3, 4, 6, 3))
resnet101 = _imagenet("resnet101", "bottleneck", (3, 4, 23, 3))
resnet152 = _imagenet("resnet152", "bottleneck", (3, 8, 36, 3))


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


def _cifar(name, depth, shortcut):
    n = (depth - 2) // 6

    @register_model(
        name,
        family="resnet_cifar" if shortcut else "plain_cifar",
        params=PARAMS[depth],
        input_size=32,
        min_input_size=8,
        preprocessing="unit",
        paper=_PAPER + ", section 4.2",
        num_classes=10,
    )
    def build(inputs, norm_epsilon=1e-5, norm_momentum=0.9):
        return cifar_body(
            inputs, n, shortcut, norm_epsilon=norm_epsilon, norm_momentum=norm_momentum
        )

    build.__name__ = name
    kind = "residual" if shortcut else "plain (no shortcuts)"
    build.__doc__ = f"CIFAR-10 {kind} network with {depth} layers (n={n})."
    return build


for _depth in (20, 32, 44, 56, 110):
    globals()[f"resnet{_depth}"] = _cifar(f"resnet{_depth}", _depth, True)
    globals()[f"plain{_depth}"] = _cifar(f"plain{_depth}", _depth, False)

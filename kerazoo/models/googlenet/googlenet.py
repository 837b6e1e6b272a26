"""The GoogLeNet body (Szegedy et al. 2014), from
`kerazoo.layers.InceptionBlock`, and its auxiliary classifier."""

import keras

from kerazoo._checks import check_choice
from kerazoo.layers import InceptionBlock
from kerazoo.models._common import conv_bn_act
from kerazoo.models._common import stage

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE_1 = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def inception_module(spec, inception="reduced", **kwargs):
    """The InceptionBlock of one row of Table 1, `(#1x1, #3x3 reduce, #3x3,
    #5x5 reduce, #5x5, pool proj)`; `inception="naive"` drops the three 1x1
    reductions (the paper's Figure 2a). Other keyword arguments go to the block."""
    f1, r3, f3, r5, f5, pp = spec
    if inception == "naive":
        r3 = r5 = pp = None
    return InceptionBlock(
        f1,
        f3,
        f5,
        filters_3x3_reduce=r3,
        filters_5x5_reduce=r5,
        filters_pool_proj=pp,
        **kwargs,
    )


def _inception(x, key, inception, batch_norm):
    return inception_module(
        TABLE_1[key], inception, batch_norm=batch_norm, name=f"inception_{key}"
    )(x)


def _pool(x, name):
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)


def googlenet_body(inputs, inception="reduced", batch_norm=True, aux_classifiers=False):
    """GoogLeNet as in Table 1 of the paper.

    Options:
        inception: `"reduced"` (the paper's modules, with 1x1 reductions) or
            `"naive"` (Figure 2a: no reductions, the pool branch passes its
            input through, so the channels grow module after module).
        batch_norm: Batch norm after every convolution (the convolutions then
            have no bias), as in later Inception versions and torchvision; False
            gives the paper's original convolutions with biases. The paper's
            local response normalization is left out.
        aux_classifiers: Adds the two auxiliary classifiers on inception (4a)
            and (4d) (outputs `aux1`, `aux2` after `predictions`), for training.
    """
    check_choice("inception", inception, ("reduced", "naive"))

    def stem(x):
        x = conv_bn_act(x, 64, 7, 2, name="conv1", batch_norm=batch_norm)
        x = _pool(x, "pool1")
        x = conv_bn_act(x, 64, 1, name="conv2_reduce", batch_norm=batch_norm)
        x = conv_bn_act(x, 192, 3, name="conv2", batch_norm=batch_norm)
        return _pool(x, "pool2")

    def stage1(x):
        for key in ("3a", "3b"):
            x = _inception(x, key, inception, batch_norm)
        return x

    def stage2(x):
        x = _pool(x, "pool3")
        taps = []
        for key in ("4a", "4b", "4c", "4d", "4e"):
            x = _inception(x, key, inception, batch_norm)
            if aux_classifiers and key in ("4a", "4d"):
                taps.append(x)
        return [x, *taps] if taps else x

    def stage3(x):
        x = _pool(x, "pool4")
        for key in ("5a", "5b"):
            x = _inception(x, key, inception, batch_norm)
        return x

    x = stage("stem", stem, inputs)
    x = stage("stage1", stage1, x)
    x = stage("stage2", stage2, x)
    taps = []
    if aux_classifiers:
        x, *taps = x
        if min(taps[0].shape[1:3]) < 5:
            raise ValueError(
                "GoogLeNet's auxiliary classifiers need inputs of at least 80x80 "
                f"(a 5x5 pool on inception 4a's output). Received: {inputs.shape}"
            )
    x = stage("stage3", stage3, x)
    return [x, *taps] if taps else x


def auxiliary_classifier(x, num_classes, activation, name):
    """The paper's auxiliary classifier: 5x5/3 average pool, 1x1 conv (128),
    fully connected 1024, dropout 0.7, classifier."""
    x = keras.layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = keras.layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(x)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = keras.layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return keras.layers.Dense(num_classes, activation=activation, name=name)(x)

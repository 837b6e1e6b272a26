"""The registered EfficientNetV2s and their pretrained weights.

`PRESETS`: name -> architecture (`size`, width and depth coefficients),
default input size, preprocessing, trainable parameters (1000 classes, equal
to keras.applications' for the same configuration; the tests build B0 and S of
both, the zoo tests build every one) and keras.applications' constructor.
`WEIGHTS`: the family's manifest entries (`kerazoo.weights.manifest`):
keras.applications' ImageNet files of every variant.
"""

from kerazoo.models.efficientnetv2.convert_keras import EfficientNetV2KerasConverter
from kerazoo.weights.keras_applications import imagenet_weights

PAPER = "Tan & Le, EfficientNetV2: Smaller Models and Faster Training, ICML 2021"

# B0-B3 take the ImageNet mean and std ("torch", as EfficientNet); S, M and L
# x / 128 - 1 ("efficientnetv2"). Dropout before the classifier: 0.2 for every
# variant, as keras.applications builds them.
PRESETS = {
    f"efficientnetv2_{variant}": {
        "size": variant[0],
        "width": width,
        "depth": depth,
        "resolution": resolution,
        "preprocessing": "torch" if variant.startswith("b") else "efficientnetv2",
        "params": params,
        "application": f"EfficientNetV2{variant.upper()}",
    }
    for variant, width, depth, resolution, params in (
        ("b0", 1.0, 1.0, 224, 7_139_704),
        ("b1", 1.0, 1.1, 240, 8_141_052),
        ("b2", 1.1, 1.2, 260, 10_096_086),
        ("b3", 1.2, 1.4, 300, 14_358_406),
        ("s", 1.0, 1.0, 384, 21_458_488),
        ("m", 1.0, 1.0, 480, 54_139_356),
        ("l", 1.0, 1.0, 480, 118_515_272),
    )
}

# keras.applications' ImageNet files (URL and md5 as Keras publishes them).
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
WEIGHTS = tuple(
    imagenet_weights(
        name,
        PRESETS[name]["application"],
        f"{_KERAS}{name.replace('_', '-')}.h5",
        md5,
        converter=EfficientNetV2KerasConverter,
        preprocessing="custom",
        input_size=PRESETS[name]["resolution"],
    )
    for name, md5 in (
        ("efficientnetv2_b0", "21ecbf6da12460d5c40bb2f29ceb2188"),
        ("efficientnetv2_b1", "069f0534ff22adf035c89e2d9547a9dc"),
        ("efficientnetv2_b2", "424e49f28180edbde1e94797771950a7"),
        ("efficientnetv2_b3", "1f1fc43bd98a6e4fd8fdfd551e02c7a0"),
        ("efficientnetv2_s", "e1d88a8495beba45748fedd0cecbe016"),
        ("efficientnetv2_m", "a3bf6aa3276309f4fc6a34aa114c95cd"),
        ("efficientnetv2_l", "27e6d408b53c7ebc868fefa357689935"),
    )
)

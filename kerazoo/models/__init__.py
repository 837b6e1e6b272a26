"""kerazoo's model zoo: GoogLeNet, ResNet, DenseNet, EfficientNet, EfficientNetV2
and MobileNet, built from `kerazoo.layers` blocks, with a registry.

`list_models()`, `create_model(name, ...)`, `model_info(name)`,
`register_model` for new families; `ScopedModel` / `scoped_model` for nested
models whose variable paths survive reloading; `ImagePreprocessing`, the layer
that normalises raw images inside every model.
"""

# Importing the families registers their models.
from kerazoo.models import convnext  # noqa: F401
from kerazoo.models import densenet  # noqa: F401
from kerazoo.models import efficientnet  # noqa: F401
from kerazoo.models import efficientnetv2  # noqa: F401
from kerazoo.models import googlenet  # noqa: F401
from kerazoo.models import mobilenet  # noqa: F401
from kerazoo.models import resnet  # noqa: F401
from kerazoo.models.analysis import count_trainable_params
from kerazoo.models.analysis import flops
from kerazoo.models.create import create_model
from kerazoo.models.create import model_info
from kerazoo.models.preprocessing import ImagePreprocessing
from kerazoo.models.registry import ModelInfo
from kerazoo.models.registry import list_models
from kerazoo.models.registry import register_model
from kerazoo.models.scoped import ScopedModel
from kerazoo.models.scoped import scoped_model

__all__ = [
    "ImagePreprocessing",
    "ModelInfo",
    "ScopedModel",
    "count_trainable_params",
    "create_model",
    "flops",
    "list_models",
    "model_info",
    "register_model",
    "scoped_model",
]

"""ResNets (He et al. 2015): ImageNet ResNet-18 ... 152 and the CIFAR-10
networks of section 4.2, with their plain (shortcut-free) twins.

`resnet.py` builds them, `presets.py` lists the registered ones and their
weights, `convert_keras.py` ports keras.applications' ResNet50/101/152,
`convert_torch.py` torchvision's and timm's ResNet state dicts.
"""

from kerazoo.models.registry import register_model
from kerazoo.models.resnet.convert_keras import ResNetKerasConverter
from kerazoo.models.resnet.convert_torch import ResNetTorchConverter
from kerazoo.models.resnet.presets import PAPER
from kerazoo.models.resnet.presets import PRESETS
from kerazoo.models.resnet.presets import WEIGHTS
from kerazoo.models.resnet.resnet import cifar_body
from kerazoo.models.resnet.resnet import resnet_body
from kerazoo.weights.convert import register_converter
from kerazoo.weights.manifest import register_weights

__all__ = ["PRESETS", "WEIGHTS", "cifar_body", "resnet_body"]


def _imagenet(name, kind, depths, params):
    @register_model(
        name,
        family="resnet",
        params=params,
        input_size=224,
        min_input_size=32,
        preprocessing="caffe",
        paper=PAPER,
    )
    def build(
        inputs, stride_on="3x3", norm_epsilon=1e-5, norm_momentum=0.9, padding="same"
    ):
        return resnet_body(
            inputs,
            kind,
            depths,
            stride_on=stride_on,
            norm_epsilon=norm_epsilon,
            norm_momentum=norm_momentum,
            padding=padding,
        )

    build.__name__ = name
    build.__doc__ = f"ResNet-{name[6:]}: {kind} blocks, stages of {depths}."
    return build


def _cifar(name, depth, shortcut, params):
    n = (depth - 2) // 6

    @register_model(
        name,
        family="resnet_cifar" if shortcut else "plain_cifar",
        params=params,
        input_size=32,
        min_input_size=8,
        preprocessing="unit",
        paper=PAPER + ", section 4.2",
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


for _name, _preset in PRESETS.items():
    if "depths" in _preset:
        globals()[_name] = _imagenet(
            _name, _preset["kind"], _preset["depths"], _preset["params"]
        )
    else:
        globals()[_name] = _cifar(
            _name, _preset["depth"], _preset["shortcut"], _preset["params"]
        )

register_converter(ResNetKerasConverter())
register_converter(ResNetTorchConverter())
register_weights(*WEIGHTS)

"""MobileNetV2 (widths 0.35 to 1.4) and MobileNetV3 Small and Large, built from
`kerazoo.layers.MBConvBlock`.

`mobilenet.py` builds them, `presets.py` lists the registered ones and their
weights, `convert_keras.py` ports keras.applications' MobileNetV2 and
MobileNetV3, `convert_torch.py` torchvision's and timm's MobileNetV3 state
dicts (built with `padding="symmetric"`, PyTorch's padding).

Names: `mobilenet_v2_035` ... `mobilenet_v2_140` (the width times 100),
`mobilenet_v3_small`, `mobilenet_v3_large`, and the minimalistic variants
`mobilenet_v3_small_minimal`, `mobilenet_v3_large_minimal` (3x3 kernels, ReLU,
no squeeze-excite). MobileNetV3's classifier has a Dense layer
(`"pre_logits"`, hard-swish; ReLU when minimalistic) between the pooling and
the dropout, its papers' 1x1 convolution on the pooled features; with
`include_top=False` the model ends at the pooled `top` features, as
keras.applications' does.
"""

from kerazoo.models.mobilenet.convert_keras import MobileNetV2KerasConverter
from kerazoo.models.mobilenet.convert_keras import MobileNetV3KerasConverter
from kerazoo.models.mobilenet.convert_torch import MobileNetV3TorchConverter
from kerazoo.models.mobilenet.mobilenet import mobilenet_v2_body
from kerazoo.models.mobilenet.mobilenet import mobilenet_v3_body
from kerazoo.models.mobilenet.mobilenet import v3_pre_logits
from kerazoo.models.mobilenet.presets import PAPER_V2
from kerazoo.models.mobilenet.presets import PAPER_V3
from kerazoo.models.mobilenet.presets import PRESETS
from kerazoo.models.mobilenet.presets import WEIGHTS
from kerazoo.models.registry import register_model
from kerazoo.weights.convert import register_converter
from kerazoo.weights.manifest import register_weights

__all__ = ["PRESETS", "WEIGHTS", "mobilenet_v2_body", "mobilenet_v3_body"]


def _register_v2(name, width, params):
    @register_model(
        name,
        family="mobilenet_v2",
        params=params,
        input_size=224,
        min_input_size=32,
        preprocessing="tf",
        dropout=0.0,
        paper=PAPER_V2,
    )
    def build(inputs, norm_epsilon=1e-3, norm_momentum=0.99):
        return mobilenet_v2_body(
            inputs, width, norm_epsilon=norm_epsilon, norm_momentum=norm_momentum
        )

    build.__name__ = name
    build.__doc__ = f"{name}: MobileNetV2, width x{width}, 224x224 input."
    return build


def _register_v3(name, size, width, params, minimalistic=False):
    @register_model(
        name,
        family="mobilenet_v3",
        params=params,
        input_size=224,
        min_input_size=32,
        preprocessing="tf",
        dropout=0.2,
        paper=PAPER_V3,
        pre_logits=(
            v3_pre_logits(size, width),
            "relu" if minimalistic else "hard_swish",
        ),
    )
    def build(inputs, norm_epsilon=1e-3, norm_momentum=0.99, padding="same"):
        return mobilenet_v3_body(
            inputs,
            size,
            width,
            minimalistic=minimalistic,
            norm_epsilon=norm_epsilon,
            norm_momentum=norm_momentum,
            padding=padding,
        )

    variant = ", minimalistic" if minimalistic else ""
    build.__name__ = name
    build.__doc__ = f"{name}: MobileNetV3-{size.title()}{variant}, 224x224 input."
    return build


for _name, _preset in PRESETS.items():
    if _preset["version"] == 2:
        globals()[_name] = _register_v2(_name, _preset["width"], _preset["params"])
    else:
        globals()[_name] = _register_v3(
            _name,
            _preset["size"],
            _preset["width"],
            _preset["params"],
            _preset.get("minimalistic", False),
        )

register_converter(MobileNetV2KerasConverter())
register_converter(MobileNetV3KerasConverter())
register_converter(MobileNetV3TorchConverter())
register_weights(*WEIGHTS)

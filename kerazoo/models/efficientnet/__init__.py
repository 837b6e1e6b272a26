"""EfficientNet B0-B7 (Tan & Le 2019) and EfficientNet-Lite0-4, from one B0
definition and compound-scaling coefficients, with `kerazoo.layers.MBConvBlock`.

`efficientnet.py` builds them, `presets.py` lists the registered ones and their
weights, `convert_keras.py` ports keras.applications' EfficientNetB0-B7 and
`convert_lite.py` the official EfficientNet-Lite checkpoints and
`convert_torch.py` torchvision's and timm's EfficientNet-B0-B7 state dicts
(built with `padding="symmetric"`, PyTorch's padding).
"""

from kerazoo.models.efficientnet.convert_keras import EfficientNetKerasConverter
from kerazoo.models.efficientnet.convert_lite import EfficientNetLiteConverter
from kerazoo.models.efficientnet.convert_torch import EfficientNetTorchConverter
from kerazoo.models.efficientnet.efficientnet import B0_STAGES
from kerazoo.models.efficientnet.efficientnet import efficientnet_body
from kerazoo.models.efficientnet.efficientnet import round_filters
from kerazoo.models.efficientnet.efficientnet import round_repeats
from kerazoo.models.efficientnet.presets import PAPER
from kerazoo.models.efficientnet.presets import PRESETS
from kerazoo.models.efficientnet.presets import WEIGHTS
from kerazoo.models.registry import register_model
from kerazoo.weights.convert import register_converter
from kerazoo.weights.manifest import register_weights

__all__ = [
    "B0_STAGES",
    "PRESETS",
    "WEIGHTS",
    "efficientnet_body",
    "round_filters",
    "round_repeats",
]


def _efficientnet(name, width, depth, resolution, dropout, params):
    lite = "lite" in name

    @register_model(
        name,
        family="efficientnet_lite" if lite else "efficientnet",
        params=params,
        input_size=resolution,
        min_input_size=32,
        preprocessing="lite" if lite else "torch",
        dropout=dropout,
        paper=PAPER,
    )
    def build(
        inputs,
        drop_connect_rate=0.2,
        norm_epsilon=1e-3,
        norm_momentum=0.99,
        padding="same",
    ):
        return efficientnet_body(
            inputs,
            width,
            depth,
            lite=lite,
            drop_connect_rate=drop_connect_rate,
            norm_epsilon=norm_epsilon,
            norm_momentum=norm_momentum,
            padding=padding,
        )

    build.__name__ = name
    build.__doc__ = (
        f"{name}: width x{width}, depth x{depth}, {resolution}x{resolution} input."
    )
    return build


for _name, _preset in PRESETS.items():
    globals()[_name] = _efficientnet(_name, **_preset)

register_converter(EfficientNetKerasConverter())
register_converter(EfficientNetLiteConverter())
register_converter(EfficientNetTorchConverter())
register_weights(*WEIGHTS)

"""EfficientNetV2 B0-B3, S, M and L (Tan & Le 2021), built from
`kerazoo.layers.MBConvBlock` (`fused=True` in the early stages).

`efficientnetv2.py` builds them, `presets.py` lists the registered ones and
their weights, `convert_keras.py` ports keras.applications' EfficientNetV2s.

Names: `efficientnetv2_b0` ... `efficientnetv2_b3`, `efficientnetv2_s`,
`efficientnetv2_m`, `efficientnetv2_l`. As in keras.applications, B0-B3
normalise their input with the ImageNet mean and std (`"torch"`), S, M and L
to `x / 128 - 1` (`"efficientnetv2"`).
"""

from kerazoo.models.efficientnetv2.convert_keras import EfficientNetV2KerasConverter
from kerazoo.models.efficientnetv2.efficientnetv2 import ARCHITECTURES
from kerazoo.models.efficientnetv2.efficientnetv2 import efficientnetv2_body
from kerazoo.models.efficientnetv2.efficientnetv2 import round_filters
from kerazoo.models.efficientnetv2.presets import PAPER
from kerazoo.models.efficientnetv2.presets import PRESETS
from kerazoo.models.efficientnetv2.presets import WEIGHTS
from kerazoo.models.registry import register_model
from kerazoo.weights.convert import register_converter
from kerazoo.weights.manifest import register_weights

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "WEIGHTS",
    "efficientnetv2_body",
    "round_filters",
]


def _efficientnetv2(name, size, width, depth, resolution, preprocessing, params):
    @register_model(
        name,
        family="efficientnetv2",
        params=params,
        input_size=resolution,
        min_input_size=32,
        preprocessing=preprocessing,
        dropout=0.2,
        paper=PAPER,
    )
    def build(inputs, drop_connect_rate=0.2, norm_epsilon=1e-3, norm_momentum=0.99):
        return efficientnetv2_body(
            inputs,
            size,
            width,
            depth,
            drop_connect_rate=drop_connect_rate,
            norm_epsilon=norm_epsilon,
            norm_momentum=norm_momentum,
        )

    build.__name__ = name
    build.__doc__ = (
        f"{name}: EfficientNetV2-{name.rsplit('_', 1)[1].upper()}, width x{width}, "
        f"depth x{depth}, {resolution}x{resolution} input."
    )
    return build


for _name, _preset in PRESETS.items():
    globals()[_name] = _efficientnetv2(
        _name,
        _preset["size"],
        _preset["width"],
        _preset["depth"],
        _preset["resolution"],
        _preset["preprocessing"],
        _preset["params"],
    )

register_converter(EfficientNetV2KerasConverter())
register_weights(*WEIGHTS)

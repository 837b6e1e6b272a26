"""ConvNeXt Tiny, Small, Base and Large (Liu et al. 2022), built from
`kerazoo.layers.ConvNeXtBlock`.

`convnext.py` builds them, `presets.py` lists the registered ones and their
weights, `convert_keras.py` ports keras.applications' ConvNeXts, `convert_torch.py`
torchvision's and timm's ConvNeXt state dicts.

Names: `convnext_tiny`, `convnext_small`, `convnext_base`, `convnext_large`.
As in keras.applications, they normalise their input with the ImageNet mean
and std (`"torch"`) and have no dropout before the classifier; the head's
layer norm (after the global pooling) is the body's `top` stage
(`convnext_body`). Family options: `drop_connect_rate` (stochastic depth of
the last block, rising linearly from 0; default 0.0, what `model.drop_path`
of a recipe sets) and `layer_scale_init_value` (1e-6).
"""

from kerazoo.models.convnext.convert_keras import ConvNeXtKerasConverter
from kerazoo.models.convnext.convert_torch import ConvNeXtTorchConverter
from kerazoo.models.convnext.convnext import ARCHITECTURES
from kerazoo.models.convnext.convnext import convnext_body
from kerazoo.models.convnext.convnext import drop_path_rates
from kerazoo.models.convnext.presets import PAPER
from kerazoo.models.convnext.presets import PRESETS
from kerazoo.models.convnext.presets import WEIGHTS
from kerazoo.models.registry import register_model
from kerazoo.weights.convert import register_converter
from kerazoo.weights.manifest import register_weights

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "WEIGHTS",
    "convnext_body",
    "drop_path_rates",
]


def _convnext(name, size, resolution, preprocessing, params):
    @register_model(
        name,
        family="convnext",
        params=params,
        input_size=resolution,
        min_input_size=32,
        preprocessing=preprocessing,
        dropout=0.0,
        paper=PAPER,
    )
    def build(inputs, drop_connect_rate=0.0, layer_scale_init_value=1e-6):
        return convnext_body(
            inputs,
            size,
            drop_connect_rate=drop_connect_rate,
            layer_scale_init_value=layer_scale_init_value,
        )

    depths, widths = ARCHITECTURES[size]
    build.__name__ = name
    build.__doc__ = (
        f"{name}: ConvNeXt-{size[0].upper()}, blocks {depths}, channels {widths}, "
        f"{resolution}x{resolution} input."
    )
    return build


for _name, _preset in PRESETS.items():
    globals()[_name] = _convnext(
        _name,
        _preset["size"],
        _preset["resolution"],
        _preset["preprocessing"],
        _preset["params"],
    )

register_converter(ConvNeXtKerasConverter())
register_converter(ConvNeXtTorchConverter())
register_weights(*WEIGHTS)

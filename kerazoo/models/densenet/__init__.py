"""DenseNets (Huang et al. 2017), from `kerazoo.layers.DenseBlock` and
`TransitionBlock`.

`densenet.py` builds them, `presets.py` lists the registered ones and their
weights, `convert_keras.py` ports keras.applications' DenseNet121/169/201.
"""

from kerazoo.models.densenet.convert_keras import DenseNetKerasConverter
from kerazoo.models.densenet.densenet import densenet_body
from kerazoo.models.densenet.presets import PAPER
from kerazoo.models.densenet.presets import PRESETS
from kerazoo.models.densenet.presets import WEIGHTS
from kerazoo.models.registry import register_model
from kerazoo.weights.convert import register_converter
from kerazoo.weights.manifest import register_weights

__all__ = ["PRESETS", "WEIGHTS", "densenet_body"]


def _densenet(name, blocks, params):
    @register_model(
        name,
        family="densenet",
        params=params,
        input_size=224,
        min_input_size=32,
        preprocessing="torch",
        paper=PAPER,
    )
    def build(inputs, growth_rate=32, compression=0.5, norm_epsilon=1e-5):
        return densenet_body(
            inputs, blocks, growth_rate, compression, norm_epsilon=norm_epsilon
        )

    build.__name__ = name
    build.__doc__ = f"DenseNet-BC with dense blocks of {blocks} layers, k=32."
    return build


for _name, _preset in PRESETS.items():
    globals()[_name] = _densenet(_name, _preset["blocks"], _preset["params"])

register_converter(DenseNetKerasConverter())
register_weights(*WEIGHTS)

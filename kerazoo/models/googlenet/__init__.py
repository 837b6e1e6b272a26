"""GoogLeNet (Szegedy et al. 2014), from `kerazoo.layers.InceptionBlock`.

`googlenet.py` builds it (and the auxiliary classifiers), `presets.py` lists
the registered model.
"""

from kerazoo.models.googlenet.googlenet import TABLE_1
from kerazoo.models.googlenet.googlenet import auxiliary_classifier
from kerazoo.models.googlenet.googlenet import googlenet_body
from kerazoo.models.googlenet.googlenet import inception_module
from kerazoo.models.googlenet.presets import PAPER
from kerazoo.models.googlenet.presets import PRESETS
from kerazoo.models.registry import register_model

__all__ = [
    "PRESETS",
    "TABLE_1",
    "auxiliary_classifier",
    "googlenet_body",
    "inception_module",
]

for _name, _preset in PRESETS.items():
    register_model(
        _name,
        family="googlenet",
        params=_preset["params"],
        input_size=_preset["input_size"],
        min_input_size=32,
        preprocessing="torch",
        dropout=_preset["dropout"],
        paper=PAPER,
    )(googlenet_body)

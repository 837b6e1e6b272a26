"""Each model family is one folder of `kerazoo/models/` (architecture, presets,
converters), registered by one import line in `kerazoo/models/__init__.py`:
every folder's presets are registered as they say, and every pretrained entry
of the manifest has a registered converter."""

import importlib
import pathlib

import pytest

import kerazoo.models
from kerazoo.models import list_models
from kerazoo.models import model_info
from kerazoo.weights import manifest
from kerazoo.weights.convert import find_converter

MODELS = pathlib.Path(kerazoo.models.__file__).parent
FAMILIES = sorted(p.parent.name for p in MODELS.glob("*/__init__.py"))


def test_the_families_are_folders():
    assert {"densenet", "efficientnet", "googlenet", "resnet"} <= set(FAMILIES)
    assert not [p.name for p in MODELS.glob("*.py") if p.stem in FAMILIES]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_folder_registers_its_presets(family):
    package = importlib.import_module(f"kerazoo.models.{family}")
    presets = importlib.import_module(f"kerazoo.models.{family}.presets")
    assert presets.PRESETS, f"{family}/presets.py lists no model"
    for name, preset in presets.PRESETS.items():
        assert name in list_models(), f"{name} is not registered"
        info = model_info(name)
        assert info.params == preset["params"]
        # Registered by this folder (imported by kerazoo/models/__init__.py).
        assert info.build_body.__module__.startswith(package.__name__)
    for entry in getattr(presets, "WEIGHTS", ()):
        assert entry in manifest.MANIFEST
        assert entry.tag in model_info(entry.model).weights


@pytest.mark.parametrize("entry", manifest.MANIFEST, ids=lambda e: f"{e.model}-{e.tag}")
def test_every_pretrained_entry_has_a_converter(entry):
    converter = find_converter(entry.converter, entry.model)
    assert entry.model in converter.models
    for key, value in entry.options:
        assert converter.options[key] == value


def test_the_public_names_of_the_families_still_import():
    from kerazoo.models.efficientnet import round_filters
    from kerazoo.models.googlenet import auxiliary_classifier
    from kerazoo.models.googlenet import inception_module
    from kerazoo.models.resnet import cifar_body
    from kerazoo.models.resnet import resnet_body

    assert round_filters(32, 1.1) == 32
    assert all(
        map(callable, (auxiliary_classifier, inception_module, cifar_body, resnet_body))
    )

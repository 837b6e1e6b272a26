"""The zoo's catalog, read without Keras: what `kerazoo models` lists and what
recipe validation checks model names and optimizer arguments against, in well
under a second.

`kerazoo/catalog.json` ships in the package. It is generated from the registry,
the weights manifest and `kerazoo.optimizers.arguments` by `python -m
kerazoo.models.catalog` (which also writes the table of `docs/models.md`), and
`tests/models/test_catalog.py` fails when either is stale, so the catalog always
says what `kerazoo.models` builds and what `kerazoo.optimizers` takes.
Models registered by user code (`kerazoo.models.register_model`) are in the
registry only.
"""

import fnmatch
import functools
import json
from importlib import resources

FILE = "catalog.json"


@functools.cache
def entries():
    """Every built-in model as a dict: `name`, `family`, `params` (trainable,
    default classes), `input_size`, `min_input_size`, `num_classes`,
    `preprocessing`, `paper`, `options` (the family options `create_model`
    takes, with their defaults) and `weights` (a list of `tag`, `source`,
    `license`, `converter`), in the registry's order."""
    text = (resources.files("kerazoo") / FILE).read_text()
    return tuple(json.loads(text)["models"])


def names(pattern=None):
    """Built-in model names, `pattern` filtering with shell wildcards."""
    found = [entry["name"] for entry in entries()]
    return [n for n in found if fnmatch.fnmatch(n, pattern)] if pattern else found


def entry(name):
    """The catalog entry of a built-in model, or None."""
    return next((e for e in entries() if e["name"] == name), None)


@functools.cache
def optimizers():
    """`{name: {argument: default}}` of every optimizer name that
    `kerazoo.optimizers.get` takes (`kerazoo.optimizers.arguments`)."""
    text = (resources.files("kerazoo") / FILE).read_text()
    return json.loads(text)["optimizers"]


def optimizer_arguments(name):
    """`{argument: default}` of optimizer `name` (an unknown name: {})."""
    return optimizers().get(str(name).lower(), {})

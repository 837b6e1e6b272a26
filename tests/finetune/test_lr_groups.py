"""Stage 2's learning-rate groups: `stage2.body_lr_multiplier` as a factor or
a mapping {regex: factor}, and `stage2.layer_decay` (a factor per body stage)."""

import pathlib
import re

import keras
import numpy as np
import pytest

from kerazoo.finetune import build
from kerazoo.finetune import run
from kerazoo.finetune.freezing import body_stages
from kerazoo.finetune.freezing import describe_multipliers
from kerazoo.finetune.freezing import lr_multipliers
from kerazoo.finetune.freezing import unfreeze
from kerazoo.models import create_model
from kerazoo.recipes import RecipeError
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")


def recipe(tmp_path, *overrides):
    return load_recipe(TINY, [f"output_dir={tmp_path / 'run'}", *overrides])


@pytest.mark.parametrize(
    "overrides, path, message",
    [
        (
            ["stage2.body_lr_multiplier={'body/(': 0.5}"],
            "stage2.body_lr_multiplier",
            "'body/(' is not a valid regular expression",
        ),
        (
            ["stage2.body_lr_multiplier={'body/stem/': -0.5}"],
            "stage2.body_lr_multiplier",
            "factor of 'body/stem/' must be a number >= 0",
        ),
        (["stage2.body_lr_multiplier=-1"], "stage2.body_lr_multiplier", ">= 0"),
        (["stage2.body_lr_multiplier={}"], "stage2.body_lr_multiplier", "non-empty"),
        (["stage2.body_lr_multiplier=fast"], "stage2.body_lr_multiplier", "mapping"),
        (
            ["stage2.body_lr_multiplier={'body/.*': 0.1}", "stage2.layer_decay=0.7"],
            "stage2.layer_decay",
            "stage2.body_lr_multiplier is a mapping",
        ),
        (["stage2.layer_decay=0"], "stage2.layer_decay", "greater than 0"),
        (["stage2.layer_decay=1.5"], "stage2.layer_decay", "less than or equal to 1"),
    ],
)
def test_bad_groups_are_refused_naming_the_key(tmp_path, overrides, path, message):
    with pytest.raises(RecipeError) as error:
        recipe(tmp_path, *overrides)
    line = next(line for line in str(error.value).splitlines() if message in line)
    assert line.strip().startswith(f"{path}:")


def test_a_mapping_keeps_its_order_and_a_float_stays_a_float(tmp_path):
    groups = "{'body/stage[23]/.*': 0.5, 'body/.*': 0.1, 'predictions/': 2}"
    r = recipe(tmp_path, f"stage2.body_lr_multiplier={groups}")
    assert list(r.stage2.body_lr_multiplier.items()) == [
        ("body/stage[23]/.*", 0.5),
        ("body/.*", 0.1),
        ("predictions/", 2.0),
    ]
    assert r.stage2.layer_decay is None
    r = recipe(tmp_path, "stage2.body_lr_multiplier=0.5", "stage2.layer_decay=0.5")
    assert r.stage2.body_lr_multiplier == 0.5 and r.stage2.layer_decay == 0.5
    assert recipe(tmp_path).stage2.body_lr_multiplier == 1.0


def test_layer_decay_gives_each_stage_of_a_zoo_body_its_power():
    model = create_model(
        "efficientnet_lite0",
        weights=None,
        input_shape=(32, 32, 3),
        include_top=False,
        pooling="avg",
    )
    body = model.get_layer("body")
    stages = body_stages(body)
    names = [s.name for s in stages]
    assert names[0] == "stem" and names[-1] == "top" and len(names) == 9
    groups = lr_multipliers(body, 0.5, layer_decay=0.8)
    assert list(groups) == [f"body/{name}/" for name in names]
    for i, (pattern, factor) in enumerate(groups.items()):
        assert factor == pytest.approx(0.5 * 0.8 ** (len(names) - i)), pattern
    # Every body weight falls in its own stage's group (`re.match`, first
    # match wins, as the optimizer resolves it); the head is in none (factor 1).
    for stage in stages:
        for weight in stage.weights:
            hit = next(p for p in groups if re.match(p, weight.path))
            assert hit == f"body/{stage.name}/", weight.path
    assert "top" in describe_multipliers(groups)
    # unfreeze leaves the exponents as they were, and frozen stages out.
    unfreeze(body, 2)
    assert lr_multipliers(body, 1.0, 0.8) == {
        "body/stage7/": pytest.approx(0.8**2),
        "body/top/": pytest.approx(0.8),
    }
    # Off: today's single group, or none at all.
    assert lr_multipliers(body, 0.1) == {"body/": 0.1}
    assert lr_multipliers(body, 1.0) is None
    mapping = {"body/stage7/.*": 0.5, "body/.*": 0.1}
    assert lr_multipliers(body, mapping) == mapping


def _trainable(parts):
    return {
        w.path: keras.ops.convert_to_numpy(w) for w in parts["model"].trainable_weights
    }


def _before_and_after(tmp_path, *overrides):
    """A one-epoch stage 2 of the tiny recipe over the whole body: the
    trainable weights before and after, and the report."""
    r = recipe(
        tmp_path,
        "stage1.epochs=0",
        "stage2.epochs=1",
        "stage2.unfreeze=all",
        *overrides,
    )
    keras.utils.set_random_seed(r.seed)
    parts = build(r, 10)
    unfreeze(parts["body"], "all", r.batchnorm)
    before = _trainable(parts)
    lines = []
    report = run(r, log=lines.append)
    report["log"] = lines
    parts["model"].load_weights(tmp_path / "run" / "stage2.weights.h5")
    return before, _trainable(parts), report


def _moved(before, after, prefix):
    """How far the kernels under `prefix` moved, relative to their size."""
    paths = [p for p in before if p.startswith(prefix) and p.endswith("kernel")]
    assert paths, prefix
    delta = sum(np.linalg.norm(after[p] - before[p]) ** 2 for p in paths)
    size = sum(np.linalg.norm(before[p]) ** 2 for p in paths)
    return float(np.sqrt(delta / size))


def test_layer_decay_trains_early_stages_less_and_is_reported(tmp_path):
    before, after, report = _before_and_after(tmp_path, "stage2.layer_decay=0.1")
    # resnet20: stem, stage1, stage2, stage3 at 1e-4, 1e-3, 1e-2, 1e-1.
    assert report["stage2"]["lr_multipliers"] == {
        "body/stem/": pytest.approx(1e-4),
        "body/stage1/": pytest.approx(1e-3),
        "body/stage2/": pytest.approx(1e-2),
        "body/stage3/": pytest.approx(1e-1),
    }
    moved = [_moved(before, after, f"body/{s}/") for s in ("stem", "stage1", "stage3")]
    head = _moved(before, after, "predictions/")
    assert 0 < moved[0] < moved[1] < moved[2] < head, moved
    # Without the decay the stem moves more than stage3 here; with it, 1000x
    # slower in rate, over 100x less.
    assert moved[2] > 100 * moved[0], moved
    (line,) = [line for line in report["log"] if line.startswith("stage 2:")]
    assert "lr multipliers layer decay 0.1: body/stem/ x0.0001, ..." in line, line
    assert "body/stage3/ x0.1 (4 groups)" in line, line


def test_a_factor_0_group_does_not_move(tmp_path):
    groups = "{'body/stem/': 0, 'body/stage1/': 0, 'body/': 0.5}"
    before, after, report = _before_and_after(
        tmp_path, f"stage2.body_lr_multiplier={groups}"
    )
    assert report["stage2"]["lr_multipliers"] == {
        "body/stem/": 0.0,
        "body/stage1/": 0.0,
        "body/": 0.5,
    }
    for path in before:
        if path.startswith(("body/stem/", "body/stage1/")):
            np.testing.assert_array_equal(after[path], before[path], err_msg=path)
    assert _moved(before, after, "body/stage3/") > 0


@pytest.mark.parametrize("name", ["layer_decay", "lr_groups"])
def test_the_docs_examples_are_valid_recipes(tmp_path, name):
    page = (pathlib.Path(__file__).parents[2] / "docs" / "finetuning.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    (block,) = [b for b in blocks if b.startswith(f"name: {name}\n")]
    path = tmp_path / f"{name}.yaml"
    path.write_text(block)
    stage2 = load_recipe(path).stage2
    if name == "layer_decay":
        assert stage2.layer_decay == 0.8 and stage2.body_lr_multiplier == 1.0
    else:
        assert list(stage2.body_lr_multiplier.values()) == [0.0, 0.5, 0.1]

"""`kerazoo experiment`: recipes are validated, and each experiment's small
version writes its figures and finite numbers, with verdicts that follow from
those numbers."""

import json
import math

import pytest
import yaml

from kerazoo.cli import main
from kerazoo.experiments import EXPERIMENTS
from kerazoo.experiments import ExperimentError
from kerazoo.experiments import load_experiment
from kerazoo.experiments import run_experiment
from kerazoo.experiments._common import RECIPES
from kerazoo.experiments._common import parse_set

# Smaller still than --quick: enough to exercise every code path in seconds.
TINY = {
    "optimizers": {
        "surface_steps": 60,
        "epochs": 2,
        "regime_epochs": 1,
        "regime_examples": 64,
    },
    "initialization": {
        "activations": ["tanh", "relu"],
        "depth": 4,
        "width": 32,
        "probe_batch": 64,
        "train_activations": ["relu"],
        "train_depth": 3,
        "epochs": 1,
    },
    "normalization": {"epochs": 1, "sweep_steps": 20, "batch_sizes": [1, 4]},
    "inception": {
        "step_batch": 2,
        "step_repeats": 1,
        "googlenet_step_size": 32,
        "googlenet_flops_size": 32,
        "epochs": 1,
    },
    "degradation": {
        "data": "digits",
        "depths": [8, 14],
        "dense_depths": [10],
        "epochs": 1,
    },
    "transfer": {
        "pretrain_epochs": 1,
        "near_shots": [10],
        # The far setting (two EfficientNet-Lite0 runs) costs minutes: its
        # parts are the near setting's, with the zoo's ImageNet weights.
        "far_shots": [],
        "epochs_few": 1,
        "epochs_all": 1,
    },
}


def test_every_experiment_has_a_recipe_and_a_tiny_test():
    assert sorted(TINY) == sorted(EXPERIMENTS)
    for name in EXPERIMENTS:
        recipe = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        assert recipe["experiment"] == name
        assert set(recipe["quick"]) <= set(recipe["settings"])
        assert set(TINY[name]) <= set(recipe["settings"])


def test_quick_and_overrides_apply_in_order(tmp_path):
    name, output_dir, settings = load_experiment("degradation", quick=True)
    assert (name, output_dir) == ("degradation", "runs/experiments/degradation-quick")
    assert settings["depths"] == [8, 20] and settings["epochs"] == 3
    _, output_dir, settings = load_experiment(
        "degradation", quick=True, overrides={"epochs": 7, "output_dir": str(tmp_path)}
    )
    assert (output_dir, settings["epochs"]) == (str(tmp_path), 7)
    assert load_experiment("degradation")[2]["epochs"] == 12


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("optimiser", {}, "Did you mean 'optimizers'"),
        ("optimizers", {"epoch": 3}, "Did you mean 'epochs'"),
        ("optimizers", {"epochs": "many"}, "`epochs` must be int"),
        ("optimizers", {"epochs": 2.5}, "`epochs` must be int"),
        ("normalization", {"batch_sizes": []}, "`batch_sizes` must be list"),
        ("missing.yaml", {}, "No experiment recipe at missing.yaml"),
    ],
)
def test_bad_input_is_refused_with_the_key(name, overrides, message):
    with pytest.raises(ExperimentError, match=message):
        load_experiment(name, overrides=overrides)


def test_set_values_are_read_as_yaml():
    assert parse_set(["epochs=3", "lr=0.1", "depths=[8, 20]", "data=digits"]) == {
        "epochs": 3,
        "lr": 0.1,
        "depths": [8, 20],
        "data": "digits",
    }
    with pytest.raises(ExperimentError, match="key.path=value"):
        parse_set(["epochs"])


def test_cli_reports_a_bad_setting(capsys):
    assert main(["experiment", "inception", "--set", "epoch=1"]) == 2
    assert "Did you mean 'epochs'" in capsys.readouterr().err


def test_show_prints_the_packaged_recipe_to_edit_and_run(tmp_path, capsys):
    assert main(["experiment", "optimizers", "--show"]) == 0
    text = capsys.readouterr().out
    assert text == (RECIPES / "optimizers.yaml").read_text()
    copy = tmp_path / "mine.yaml"
    copy.write_text(text.replace("  epochs: 20", "  epochs: 7"))
    assert load_experiment(str(copy))[2]["epochs"] == 7
    assert main(["experiment", "optimiser", "--show"]) == 2
    assert "Did you mean 'optimizers'" in capsys.readouterr().err


def _finite(value):
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def _check_verdicts(name, result):
    """Each experiment's verdicts re-derived from the numbers it recorded."""
    numbers = result["numbers"]
    held = {v["claim"]: v["held"] for v in result["verdicts"]}
    if name == "optimizers":
        loss = {r: c["epoch_loss"][-1] for r, c in numbers["network"].items()}
        claim = "momentum lowers the training loss faster than SGD on a network"
        assert held[claim] == (loss["momentum"] < loss["sgd"])
    elif name == "normalization":
        assert held[next(c for c in held if c.startswith("batch norm fails"))] == (
            numbers["instance_minus_batch_at_smallest"] > 0.1
            and any(
                r["norm"] == "batch"
                and r["batch_size"] == 4
                and r["test_accuracy"]
                > next(
                    q["test_accuracy"]
                    for q in numbers["batch_size_sweep"]
                    if (q["norm"], q["batch_size"]) == ("batch", 1)
                )
                + 0.1
                for r in numbers["batch_size_sweep"]
            )
        )
    elif name == "inception":
        rows = {r["what"]: r for r in numbers["rows"]}
        naive, reduced = rows["GoogLeNet, naive"], rows["GoogLeNet, reduced"]
        assert held["1x1 reductions make the GoogLeNet cheaper"] == (
            reduced["flops"] < naive["flops"] and reduced["params"] < naive["params"]
        )
        # GoogLeNet's published ~6.8M parameters (with a 1000-class head).
        assert 6.5e6 < reduced["params"] < 7.5e6
    elif name == "degradation":
        err = {k: c["final_train_error"] for k, c in numbers["curves"].items()}
        claim = next(c for c in held if c.startswith("a deeper plain network"))
        assert held[claim] == (err["plain14"] > err["plain8"])
    elif name == "transfer":
        curves = numbers["curves"]["near"]
        p, q = curves["pretrained/10"], curves["scratch/10"]
        claim = next(c for c in held if c.startswith("near, 10 labels per class"))
        mean = [sum(c["val_accuracy"]) / len(c["val_accuracy"]) for c in (p, q)]
        assert held[claim] == (mean[0] > mean[1] + 0.02)
    elif name == "initialization":
        growth = numbers["growth_per_layer"]
        claim = next(c for c in held if c.startswith("He keeps relu"))
        assert held[claim] == (0.8 <= growth["relu/He"] <= 1.25)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_tiny_run_writes_figures_numbers_and_verdicts(name, tmp_path, capsys):
    result = run_experiment(
        name, quick=True, overrides={**TINY[name], "output_dir": str(tmp_path)}
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["experiment"] == name and saved["quick"] is True
    assert saved["figures"] and all(
        (tmp_path / f).stat().st_size > 5000 for f in saved["figures"]
    )
    assert saved["verdicts"] and all(
        isinstance(v["held"], bool) for v in saved["verdicts"]
    )
    assert _finite(saved["numbers"]), saved["numbers"]
    _check_verdicts(name, result)
    out = capsys.readouterr().out
    assert all(v["claim"] in out for v in saved["verdicts"])

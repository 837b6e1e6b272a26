import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerazoo
from kerazoo import cli
from kerazoo import layers
from kerazoo.data import load_digits_splits
from kerazoo.models import list_models


def test_console_script_version():
    # The script sits beside the interpreter of an installed environment.
    beside = os.path.join(os.path.dirname(sys.executable), "kerazoo")
    exe = beside if os.path.exists(beside) else shutil.which("kerazoo")
    assert exe, "the kerazoo console script is not installed (pip install -e .)"
    result = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"kerazoo {kerazoo.__version__}"


def test_layers_lists_every_layer_with_arguments(capsys):
    assert cli.main(["layers", "-v"]) == 0
    out = capsys.readouterr().out
    for name in layers.__all__:
        assert re.search(rf"^{name}\s+\S", out, re.M), f"{name} missing:\n{out}"
    assert "filters_3x3_reduce=None" in out
    assert f"{len(layers.__all__)} layers" in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "layers" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_demo_refuses_bad_epochs(value, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--epochs", value])
    assert exc.value.code == 2
    assert f"expected a positive integer, got '{value}'" in capsys.readouterr().err


def test_digits_splits_are_fixed_and_stratified():
    a, b = load_digits_splits(seed=0), load_digits_splits(seed=0)
    sizes = {k: len(v[1]) for k, v in a.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 270
    for k in a:
        np.testing.assert_array_equal(a[k][0], b[k][0])
    x, y = a["train"]
    assert x.shape[1:] == (8, 8, 1) and x.dtype == np.uint8 and x.max() == 255
    assert np.bincount(y, minlength=10).min() >= 0.09 * len(y)
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        load_digits_splits(test_fraction=1.5)


def test_demo_trains_saves_and_reloads(tmp_path, capsys):
    assert cli.main(["demo", "--epochs", "3", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy:\s+([0-9.]+)", out).group(1))
    # Chance is 0.1; three epochs of this network reach well above 0.8.
    assert accuracy > 0.8, out
    path = tmp_path / "demo.keras"
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["demo.keras"]  # no temp left
    model = keras.saving.load_model(path, safe_mode=True)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {
        "ResidualBlock",
        "InceptionBlock",
        "MBConvBlock",
        "DenseBlock",
        "TransitionBlock",
        "BatchNormalization",
    } <= kinds
    assert os.path.getsize(path) > 100_000


def test_init_report_command(tmp_path, capsys):
    code = cli.main(
        [
            "init-report",
            "--depth",
            "4",
            "--width",
            "32",
            "--batch-size",
            "200",
            "--activation",
            "relu",
            "--initializer",
            "he_normal",
            "--initializer",
            "normal:1.0",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "he_normal: keeps its scale" in out
    assert "normal:1.0: explodes" in out
    assert (tmp_path / "init_report.png").exists()
    assert (tmp_path / "init_report.csv").exists()


def test_init_report_command_bad_initializer(tmp_path, capsys):
    code = cli.main(
        ["init-report", "--initializer", "he_nromal", "--output-dir", str(tmp_path)]
    )
    assert code == 2
    assert "Did you mean 'he_normal'" in capsys.readouterr().err
    assert not (tmp_path / "init_report.csv").exists()


def test_models_lists_the_zoo(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^resnet50\s+resnet\s+25,557,032\s+224x224\s+1000", out, re.M)
    assert re.search(r"^resnet20\s+resnet_cifar\s+269,722\s+32x32\s+10", out, re.M)
    assert f"{len(list_models())} models" in out
    assert re.search(r"^mobilenet_v3_small\s+mobilenet", out, re.M)


def test_models_counts_with_options(capsys):
    code = cli.main(["models", "plain2?", "--count", "--option", "num_classes=3"])
    assert code == 0
    out = capsys.readouterr().out
    assert re.search(r"^plain20\s+plain_cifar\s+269,267", out, re.M)  # 3 classes
    assert cli.main(["models", "resnet18", "--option", "bogus"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert cli.main(["models", "nothing*"]) == 2

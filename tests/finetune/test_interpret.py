"""`kerazoo interpret RUN_DIR`: the files it writes, its tables, and Grad-CAM
that finds the region which decides the class, for every zoo family."""

import json
import re

import keras
import numpy as np
import pytest
from PIL import Image

from kerazoo import cli
from kerazoo.api import load_model
from kerazoo.finetune import build
from kerazoo.finetune import run
from kerazoo.finetune.interpret import GradCAM
from kerazoo.finetune.interpret import InterpretError
from kerazoo.finetune.interpret import class_table
from kerazoo.finetune.interpret import confused_pairs
from kerazoo.finetune.interpret import interpret
from kerazoo.finetune.interpret import parse_indices
from kerazoo.finetune.interpret import upsample
from kerazoo.models import list_models
from kerazoo.models import model_info
from kerazoo.recipes import validate_recipe

SIDE = 32


def _quadrant(row, column):
    """0 top left, 1 top right, 2 bottom left, 3 bottom right."""
    return 2 * (row // (SIDE // 2)) + column // (SIDE // 2)


def write_squares(root, seed=0):
    """Split folders of 32x32 images: `plain` is dark noise, `square` the same
    with a bright 10x10 square in one quadrant (drawn per image). Returns the
    quadrant of each test `square` image, by file."""
    rng = np.random.default_rng(seed)
    planted = {}
    for split, n in (("train", 30), ("val", 6), ("test", 6)):
        for name in ("plain", "square"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 40, (SIDE, SIDE, 3)).astype("uint8")
                if name == "square":
                    quadrant = int(rng.integers(4))
                    top, left = 2 + 18 * (quadrant // 2), 2 + 18 * (quadrant % 2)
                    image[top : top + 10, left : left + 10] = 255
                    if split == "test":
                        planted[folder / f"{i:02d}.png"] = quadrant
                Image.fromarray(image).save(folder / f"{i:02d}.png")
    return planted


@pytest.fixture(scope="module")
def squares_run(tmp_path_factory):
    """A finished run of a random-weight ResNet-20 whose head, trained on the
    frozen body's features, tells the squares from the plain noise."""
    root = tmp_path_factory.mktemp("squares")
    planted = write_squares(root / "data")
    recipe = validate_recipe(
        {
            "name": "squares",
            "model": {"name": "resnet20", "weights": None, "input_size": SIDE},
            "data": {"uri": f"folder:{root / 'data'}", "deterministic": True},
            "head": {"dropout": 0.0},
            "stage1": {
                "epochs": 15,
                "batch_size": 16,
                "optimizer": {"name": "adam", "learning_rate": 0.003},
            },
            "stage2": {
                "epochs": 0,
                "optimizer": {"name": "adam", "learning_rate": 0.001},
            },
            "output_dir": str(root / "run"),
        }
    )
    keras.utils.set_random_seed(0)
    report = run(recipe, log=lambda line: None)
    assert report["test_accuracy"] >= 0.9, report["test_accuracy"]
    return root / "run", planted


def test_grad_cam_peaks_in_the_planted_quadrant(squares_run):
    run_dir, planted = squares_run
    model = load_model(run_dir / "model.keras")
    cam = GradCAM(model)
    assert cam.layer.name == "stage3"  # the body's last feature map
    files = sorted(planted)
    images = np.stack([np.asarray(Image.open(f), "float32") for f in files])
    maps, probabilities = cam(images)
    # The Grad-CAM pass computes what the model computes.
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert maps.shape == (len(files), 8, 8)
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    peaks = [
        _quadrant(*np.unravel_index(np.argmax(m), m.shape))
        for m in upsample(maps, (SIDE, SIDE))
    ]
    assert peaks == [planted[f] for f in files]
    assert len(set(peaks)) > 1  # the squares are not all in one corner


def test_interpret_writes_every_file(squares_run, capsys):
    run_dir, _ = squares_run
    code = cli.main(["interpret", str(run_dir), "--images", "0,7,11", "--top", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = run_dir / "interpret"
    names = ("top_losses.png", "grad_cam.png", "report.html", "interpret.json")
    for name in names:
        assert (folder / name).stat().st_size > 0, name
    for name in ("top_losses.png", "grad_cam.png"):
        assert Image.open(folder / name).format == "PNG"
    summary = json.loads((folder / "interpret.json").read_text())
    assert summary["grad_cam"]["images"] == [0, 7, 11]
    assert summary["grad_cam"]["layer"] == "body/stage3"
    assert len(summary["top_losses"]) == 5
    losses = [row["loss"] for row in summary["top_losses"]]
    assert losses == sorted(losses, reverse=True)
    report = json.loads((run_dir / "report.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(report["test_accuracy"])
    assert [row["class"] for row in summary["classes"]] == ["plain", "square"]
    assert [row["support"] for row in summary["classes"]] == [6, 6]
    # One self-contained page: the run's two plots and the two new figures
    # inlined, the tables in HTML, nothing fetched from elsewhere.
    page = (folder / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<table>" in page and "<td>square</td>" in page
    assert "Most confused pairs" in page
    assert "open " in out and "report.html" in out


def test_tables_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 1, 1])
    rows, averages = class_table(labels, predicted, ["a", "b", "c"])
    assert rows[0] == {
        "class": "a",
        "precision": 1.0,
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(0.5),
        "support": 3,
    }
    assert rows[1]["precision"] == pytest.approx(2 / 5)
    assert rows[2] == {
        "class": "c",
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    assert averages["macro"]["recall"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    matrix = [[1, 2, 0], [0, 2, 0], [0, 1, 0]]
    assert confused_pairs(matrix, ["a", "b", "c"]) == [
        {"true": "a", "predicted": "b", "count": 2, "share": pytest.approx(2 / 3)},
        {"true": "c", "predicted": "b", "count": 1, "share": 1.0},
    ]


def test_a_directory_that_is_not_a_run_says_what_is_missing(tmp_path, capsys):
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(InterpretError, match="no recipe.yaml, model.keras"):
        interpret(tmp_path, log=lambda line: None)
    assert cli.main(["interpret", str(tmp_path / "nothing")]) == 1
    assert "no run directory at" in capsys.readouterr().err


def test_image_positions(squares_run):
    assert parse_indices("0, 5,7,5") == [0, 5, 7]
    for bad in ("", "a,b", "-1", "1,,x"):
        with pytest.raises(ValueError, match="--images takes"):
            parse_indices(bad)
    with pytest.raises(InterpretError, match="the test split has 12 images"):
        interpret(squares_run[0], images=[3, 12], log=lambda line: None)


def _smallest_of_each_family():
    smallest = {}
    for name in list_models():
        info = model_info(name)
        if info.family not in smallest or info.params < smallest[info.family][1]:
            smallest[info.family] = (name, info.params)
    return sorted(name for name, _ in smallest.values())


@pytest.mark.parametrize("name", _smallest_of_each_family())
def test_grad_cam_on_every_family(name):
    recipe = validate_recipe(
        {
            "model": {"name": name, "weights": None, "input_size": 64},
            "stage1": {"epochs": 0, "optimizer": {"name": "adam", "learning_rate": 1}},
            "stage2": {"epochs": 0, "optimizer": {"name": "adam", "learning_rate": 1}},
        }
    )
    parts = build(recipe, 3)
    model = parts["model"]
    cam = GradCAM(model)
    body_output = parts["body"].outputs[0]
    assert cam.shape == tuple(body_output.shape[1:])
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("f4")
    maps, probabilities = cam(images, classes=[0, 2])
    assert maps.shape == (2, *cam.shape[:2])
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_grad_cam_equals_its_closed_form_for_a_pooled_linear_head():
    # Body -> global average pooling -> softmax Dense: the centred logit of
    # class c is linear in the map, so its gradient at every position is
    # (W[:, c] - mean_j W[:, j]) / (h * w), whatever the backend's autograd.
    recipe = validate_recipe(
        {
            "model": {"name": "resnet20", "weights": None, "input_size": SIDE},
            "stage1": {"epochs": 0, "optimizer": {"name": "adam", "learning_rate": 1}},
            "stage2": {"epochs": 0, "optimizer": {"name": "adam", "learning_rate": 1}},
        }
    )
    parts = build(recipe, 4)
    model = parts["model"]
    rng = np.random.default_rng(1)
    head = model.get_layer("predictions")
    head.kernel.assign(rng.normal(0, 0.5, head.kernel.shape).astype("float32"))
    images = rng.uniform(0, 255, (3, SIDE, SIDE, 3)).astype("float32")
    classes = [0, 3, 1]
    maps, _ = GradCAM(model)(images, classes=classes)
    preprocessed = model.get_layer("preprocessing")(images)
    fmap = keras.ops.convert_to_numpy(parts["body"](preprocessed, training=False))
    kernel = keras.ops.convert_to_numpy(head.kernel)
    centred = kernel - kernel.mean(axis=1, keepdims=True)
    expected = np.maximum(np.einsum("nhwk,kn->nhw", fmap, centred[:, classes]), 0)
    expected /= expected.reshape(3, -1).max(axis=1).reshape(-1, 1, 1)
    assert np.ptp(expected) > 0.5
    np.testing.assert_allclose(maps, expected, atol=1e-4)

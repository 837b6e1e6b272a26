"""Stage 1's features on disk: killed mid-way, the pass goes on and gives the
features of an uninterrupted pass; a second run reuses them."""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np

from kerazoo.data import load_data
from kerazoo.data.pipeline import Pipelines
from kerazoo.finetune import build
from kerazoo.finetune import run
from kerazoo.finetune.engine import extract_features
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")

# Builds the tiny recipe's model with its seed and extracts the test split's
# features in batches of 4; with KILL set it kills itself (SIGKILL) at the
# second progress line, i.e. after two batches were written.
SCRIPT = """
import os, signal, sys
import keras
from kerazoo.data import load_data
from kerazoo.data.pipeline import Pipelines
from kerazoo.finetune import build
from kerazoo.finetune import run
from kerazoo.finetune.engine import extract_features
from kerazoo.recipes import load_recipe

recipe = load_recipe(sys.argv[1])
keras.utils.set_random_seed(recipe.seed)
parts = build(recipe, 10)
pipelines = Pipelines(load_data("digits"), recipe.model.image_size)
lines = []

def log(line):
    lines.append(line)
    print(line, flush=True)
    if os.environ.get("KILL") and len(lines) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

extract_features(parts, pipelines, "test", sys.argv[2], batch_size=4, log=log,
                 every=0)
"""


def _features(directory, recipe):
    keras.utils.set_random_seed(recipe.seed)
    parts = build(recipe, 10)
    pipelines = Pipelines(load_data("digits"), recipe.model.image_size)
    lines = []
    file = extract_features(
        parts, pipelines, "test", directory, batch_size=4, log=lines.append
    )
    return file, lines


def test_killed_feature_extraction_resumes_with_the_same_features(tmp_path):
    recipe = load_recipe(TINY)
    script = tmp_path / "extract.py"
    script.write_text(textwrap.dedent(SCRIPT))
    cache = tmp_path / "cache"
    env = {**os.environ, "KILL": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.run(
        [sys.executable, str(script), str(TINY), str(cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "images/s, ETA" in killed.stdout
    resumed, lines = _features(cache, recipe)
    assert any("going on from image" in line for line in lines), lines
    assert resumed.complete and resumed.rows == 270
    fresh, _ = _features(tmp_path / "fresh", recipe)
    np.testing.assert_allclose(resumed.array(), fresh.array(), atol=1e-6)
    np.testing.assert_array_equal(resumed.labels, fresh.labels)
    # The same body, weights and images: a second pass reuses the file.
    _, again = _features(cache, recipe)
    assert any("reusing" in line for line in again), again
    # Other weights: another key, another file.
    keras.utils.set_random_seed(1)
    parts = build(recipe, 10)
    pipelines = Pipelines(load_data("digits"), recipe.model.image_size)
    other = extract_features(parts, pipelines, "test", cache, log=lambda line: None)
    assert other.path != resumed.path
    assert not np.allclose(other.array(), resumed.array())


def test_a_run_on_a_folder_with_broken_files_reports_them(tmp_path):
    """The run goes on past broken files, names them in report.json, and keeps
    its disk caches under output_dir/cache for the next run."""
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "data"))
    from image_files import write_broken
    from image_files import write_folder

    write_folder(tmp_path / "photos", {"cat": 12, "dog": 12})
    kinds = write_broken(tmp_path / "photos" / "dog")
    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path / 'run'}",
            f"data.uri=folder:{tmp_path / 'photos'}?validation=0.25&test=0.25",
            "data.cache=disk",
            "stage1.epochs=1",
            "stage2.epochs=1",
        ],
    )
    lines = []
    report = run(recipe, log=lines.append)
    skipped = {
        pathlib.Path(f["path"]).name: f["reason"]
        for f in report["data"]["skipped_files"]
    }
    assert skipped == {k: v for k, v in kinds.items() if v}
    assert report["data"]["cache"]["mode"] == "disk"
    assert any(line.startswith("data cache: on disk") for line in lines)
    assert any("3 unreadable files skipped" in line for line in lines)
    assert sum(report["data"]["sizes"].values()) == 24 + 4  # listed, not opened
    data = load_data(recipe.data.uri, seed=recipe.seed)
    broken = sum(
        1 for p in data.splits["test"].paths if pathlib.Path(p).name in skipped
    )
    assert report["test_images"] == data.sizes["test"] - broken
    cache = tmp_path / "run" / "cache"
    assert len(list(cache.glob("*.images"))) == 3
    assert len(list(cache.glob("features-*.npy"))) == 3

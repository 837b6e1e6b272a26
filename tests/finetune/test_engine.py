"""The two-stage engine on a small model: what each stage may change, cached
features, outputs, resuming, NaN handling and distribution."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from kerazoo.finetune import FinetuneError
from kerazoo.finetune import build
from kerazoo.finetune import freeze
from kerazoo.finetune import run
from kerazoo.finetune import unfreeze
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def recipe(tmp_path, *overrides):
    return load_recipe(TINY, [f"output_dir={tmp_path / 'run'}", *overrides])


def weights(model, prefix):
    return {
        w.path: keras.ops.convert_to_numpy(w)
        for w in model.weights
        if w.path.startswith(prefix)
    }


def reference_parts(r):
    """The model the engine builds, before training (same seed, same order)."""
    keras.utils.set_random_seed(r.seed)
    return build(r, 10)


def load_into(parts, path):
    parts["model"].load_weights(path)
    return parts


def test_stage1_leaves_body_bit_identical_and_caching_changes_nothing(tmp_path):
    heads = []
    for cached in (True, False):
        keras.utils.clear_session()
        out = tmp_path / str(cached)
        r = recipe(
            out, "stage2.epochs=0", f"stage1.cache_features={str(cached).lower()}"
        )
        report = run(r, log=lambda line: None)
        assert report["stage1"]["cached_features"] is cached
        initial = reference_parts(r)["model"]
        before = weights(initial, "body/")
        keras.utils.clear_session()
        trained = load_into(reference_parts(r), out / "run" / "stage1.weights.h5")
        after = weights(trained["model"], "body/")
        assert any("moving_variance" in p for p in before)  # BN statistics included
        assert before.keys() == after.keys()
        for path in before:
            np.testing.assert_array_equal(before[path], after[path], err_msg=path)
        head = weights(trained["model"], "predictions/")
        assert not np.array_equal(
            head["predictions/kernel"],
            weights(initial, "predictions/")["predictions/kernel"],
        )
        heads.append(head)
    # Training the head on cached features gives the head that running the
    # frozen body every epoch gives.
    for path in heads[0]:
        np.testing.assert_allclose(
            heads[0][path], heads[1][path], atol=2e-5, err_msg=path
        )


def test_feature_pass_runs_a_folded_copy_of_the_body(tmp_path, monkeypatch):
    """The cached features come from a copy of the body with its batch norms
    folded (trained-like statistics here) and equal the body's own features;
    a model that cannot be folded runs as it is."""
    import tensorflow as tf

    from kerazoo.export import folding
    from kerazoo.finetune.engine import body_features
    from kerazoo.testing import randomize_batch_norms

    r = recipe(tmp_path)
    images = np.random.default_rng(0).uniform(0, 255, (13, 32, 32, 3))
    labels = np.arange(13) % 10
    dataset = tf.data.Dataset.from_tensor_slices(
        (images.astype("float32"), labels)
    ).batch(5)
    parts = reference_parts(r)
    randomize_batch_norms(parts["body"])
    expected = keras.ops.convert_to_numpy(
        parts["features"](images.astype("float32"), training=False)
    )
    features, got_labels = body_features(parts, dataset)
    assert parts["_folding"] == "19 batch norms folded"
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)

    def refuse(model):
        raise ValueError("cannot copy this model")

    monkeypatch.setattr(folding, "fold_batch_norms", refuse)
    parts = reference_parts(r)
    randomize_batch_norms(parts["body"])
    features, _ = body_features(parts, dataset)
    assert parts["_folding"] == "not folded (ValueError: cannot copy this model)"
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_unfreeze_last_stage_with_frozen_batchnorm_trains_only_that_stage(tmp_path):
    r = recipe(tmp_path)
    parts = reference_parts(r)
    model, body = parts["model"], parts["body"]
    freeze(body)
    assert not body.trainable_weights
    paths = unfreeze(body, 1, batchnorm="frozen")
    assert paths and all(p.startswith("body/stage3/") for p in paths)
    assert not any("gamma" in p or "beta" in p for p in paths)
    before = weights(model, "")
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.train_on_batch(x, np.arange(8) % 10)
    after = weights(model, "")
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed == set(paths) | {"predictions/kernel", "predictions/bias"}
    with pytest.raises(ValueError, match="has 4 stages"):
        unfreeze(body, 5)
    with pytest.raises(ValueError, match="matches no weight"):
        unfreeze(body, "body/stage9/.*")
    paths = unfreeze(body, r"body/stage2/", batchnorm="train")
    assert paths and all(p.startswith("body/stage2/") for p in paths)


def test_full_run_writes_report_figures_and_model(tmp_path):
    r = recipe(tmp_path)
    lines = []
    report = run(r, log=lines.append)
    out = tmp_path / "run"
    saved = json.loads((out / "report.json").read_text())
    assert saved["test_accuracy"] == report["test_accuracy"]
    assert 0 <= report["test_accuracy"] <= 1 and report["test_images"] == 270
    assert saved["recipe"]["model"]["name"] == "resnet20"
    assert np.sum(saved["confusion"]) == 270
    history = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[:3] for row in history[1:]] == [
        ["1", "0", "1"],
        ["1", "1", "2"],
        ["2", "0", "3"],
        ["2", "1", "4"],
    ]
    for name in ("curves.png", "confusion.png", "model.keras", "recipe.yaml"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "backup").exists()
    # Stage 2 (unfreeze: 1) left the first stages as stage 1 ended.
    stage1 = weights(
        load_into(reference_parts(r), out / "stage1.weights.h5")["model"], "body/"
    )
    final = keras.saving.load_model(out / "model.keras", safe_mode=True)
    final_weights = weights(final, "body/")
    for path, value in stage1.items():
        same = np.array_equal(value, final_weights[path])
        assert same == (not path.startswith("body/stage3/")), path
    # Rerunning a finished run reports it and trains nothing.
    lines.clear()
    again = run(r, log=lines.append)
    assert again["test_accuracy"] == report["test_accuracy"]
    assert "already holds this finished run" in lines[0]
    # Killed after stage 2 but before the report: the rerun reports stage 2's model.
    state = json.loads((out / "state.json").read_text())
    state["finished"] = False
    (out / "state.json").write_text(json.dumps(state))
    (out / "report.json").unlink()
    lines.clear()
    keras.utils.clear_session()
    again = run(r, log=lines.append)
    assert any(
        line.startswith("stage 2: done earlier (val_accuracy")
        and line.endswith("loading its weights")
        for line in lines
    ), lines
    assert again["test_accuracy"] == report["test_accuracy"]
    # Another recipe may not reuse the directory.
    with pytest.raises(FinetuneError, match="different recipe"):
        run(recipe(tmp_path, "seed=5"), log=lambda line: None)


def test_nan_stops_with_backup_intact_then_resumes(tmp_path, monkeypatch):
    # 7 batches an epoch: batch 9 of stage 2 is in its second epoch.
    r = recipe(tmp_path, "stage2.epochs=3")
    monkeypatch.setenv("KERAZOO_FAULT_NAN_BATCH", "2,9")
    with pytest.raises(
        FinetuneError, match="stage 2 stopped: the loss became NaN"
    ) as info:
        run(r, log=lambda line: None)
    assert "epoch 2" in str(info.value)
    backup = tmp_path / "run" / "backup" / "stage2"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 1
    monkeypatch.delenv("KERAZOO_FAULT_NAN_BATCH")
    lines = []
    keras.utils.clear_session()
    report = run(recipe(tmp_path, "stage2.epochs=3"), log=lines.append)
    assert any("stage 1: done earlier" in line for line in lines)
    assert any("stage 2: resuming after epoch 1 of 3" in line for line in lines)
    assert report["stage2"]["epochs"] == 3


def _wait_for_rows(path, rows, process, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if path.exists() and len(path.read_text().strip().splitlines()) > rows:
            return True
        time.sleep(0.05)
    return False


def test_killed_run_resumes_from_last_epoch(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "kerazoo.cli",
        "finetune",
        str(TINY),
        "--set",
        f"output_dir={out}",
        "--set",
        "stage2.epochs=6",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert _wait_for_rows(out / "history_stage2.csv", 2, first), "no stage-2 epochs"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    done_before = len((out / "history_stage2.csv").read_text().strip().splitlines()) - 1
    assert 2 <= done_before < 6
    second = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "stage 1: done earlier" in second.stdout
    resumed = [
        line for line in second.stdout.splitlines() if "resuming after epoch" in line
    ]
    assert resumed
    # The backup follows an epoch's history row: a kill between the two reruns
    # that epoch (its row is replaced, never doubled below).
    after = int(resumed[0].split("after epoch ")[1].split()[0])
    assert done_before - 1 <= after <= done_before and after >= 1
    epochs = [
        row.split(",")[:2] for row in (out / "history.csv").read_text().splitlines()[1:]
    ]
    assert epochs == [["1", "0"], ["1", "1"]] + [["2", str(e)] for e in range(6)]


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
two = [tf.config.LogicalDeviceConfiguration()] * 2
tf.config.set_logical_device_configuration(cpu, two)
from kerazoo.finetune import run
from kerazoo.recipes import load_recipe
r = load_recipe(
    sys.argv[1],
    ["distribution=mirrored", "stage1.epochs=1", "stage2.epochs=1",
     "output_dir=" + sys.argv[2]],
)
report = run(r)
print("TEST_ACCURACY", report["test_accuracy"])
"""


def test_mirrored_over_two_logical_cpus(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(TINY), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distribution: mirrored, 2 replicas" in result.stdout
    assert "TEST_ACCURACY" in result.stdout


@pytest.mark.parametrize(
    "name", ["tf_flowers_efficientnet_lite0.yaml", "cifar10_resnet56.yaml"]
)
def test_tfds_recipes_run_on_mock_data(tmp_path, name):
    import tensorflow_datasets as tfds

    # The recipes' data, stages and schedules as written; ResNet-56 is swapped
    # for ResNet-20 (same family and code) to keep the test short.
    smaller = ["model.name=resnet20"] if "resnet56" in name else []
    r = load_recipe(
        ROOT / "recipes" / name,
        [
            *smaller,
            f"output_dir={tmp_path / 'run'}",
            "model.input_size=32",
            "stage1.epochs=1",
            "stage2.epochs=1",
            "stage1.batch_size=8",
            "stage2.batch_size=8",
            f"data.data_dir={tmp_path / 'tfds'}",
        ],
    )
    with tfds.testing.mock_data(num_examples=16):
        report = run(r, log=lambda line: None)
    assert report["test_images"] == 16
    assert len(report["data"]["classes"]) == {"tf": 5, "ci": 10}[name[:2]]


def test_early_stopping_and_tensorboard_when_asked(tmp_path):
    r = recipe(
        tmp_path,
        "stage2.epochs=0",
        "stage1.epochs=8",
        "stage1.optimizer.learning_rate=1e-9",
        "stage1.early_stopping={monitor: val_accuracy, patience: 1}",
        "tensorboard=true",
    )
    report = run(r, log=lambda line: None)
    # A negligible learning rate leaves val_accuracy as it is: stopped after 2.
    assert report["stage1"]["epochs"] == 2
    assert list((tmp_path / "run" / "logs" / "stage1").rglob("events.out.tfevents*"))


def test_mixed_precision_run_and_auto_on_a_cpu(tmp_path):
    """`precision: mixed_bfloat16` trains under that policy (float32 variables,
    float32 probabilities) and leaves the global policy as it was; `auto` is
    float32 on a machine without a GPU."""
    from kerazoo.finetune.engine import precision_policy

    lines = []
    report = run(
        recipe(
            tmp_path, "precision=mixed_bfloat16", "stage1.epochs=1", "stage2.epochs=1"
        ),
        log=lines.append,
    )
    assert 0 <= report["test_accuracy"] <= 1
    assert any(line.startswith("precision: mixed_bfloat16") for line in lines)
    # jit_compile: auto is Keras's rule, XLA on JAX and on a TensorFlow GPU.
    expected = keras.backend.backend() == "jax"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        expected = bool(tf.config.list_physical_devices("GPU"))
    assert report["stage1"]["jit_compile"] is expected
    assert report["stage2"]["jit_compile"] is expected
    assert keras.config.dtype_policy().name == "float32"
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    conv = next(
        layer
        for layer in model.get_layer("body")._flatten_layers()
        if isinstance(layer, keras.layers.Conv2D)
    )
    assert conv.dtype_policy.name == "mixed_bfloat16"
    assert conv.kernel.dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        assert precision_policy("auto") == "float32"


def test_restore_best_ends_the_stage_with_its_best_epoch(tmp_path):
    """The final model is the best epoch's, named in the report; with
    restore_best false it is the last epoch's."""
    kernels = {}
    for restore in (True, False):
        keras.utils.clear_session()
        out = tmp_path / str(restore)
        r = recipe(out, "stage2.epochs=0", f"restore_best={str(restore).lower()}")
        report = run(r, log=lambda line: None)
        rows = report["stage1"]
        history = np.genfromtxt(
            out / "run" / "history_stage1.csv", delimiter=",", names=True
        )
        best = int(np.argmax(history["val_accuracy"])) + 1
        assert best != len(history), "the tiny recipe's best epoch is not its last"
        saved = keras.saving.load_model(out / "run" / "model.keras")
        kernels[restore] = saved.get_layer("predictions").get_weights()[0]
        if restore:
            assert rows["restored_epoch"] == best == rows["best_epoch"]
            assert rows["val_accuracy"] == pytest.approx(history["val_accuracy"].max())
            assert (
                report["final_weights"]
                == f"stage1 epoch {best} of 2 (best val_accuracy)"
            )
            parts = reference_parts(r)
            parts["model"].load_weights(
                out / "run" / "checkpoints" / "best_stage1.weights.h5"
            )
            np.testing.assert_array_equal(
                kernels[restore],
                parts["model"].get_layer("predictions").get_weights()[0],
            )
        else:
            assert "restored_epoch" not in rows
            assert report["final_weights"] == "stage1 epoch 2 of 2 (last)"
    assert not np.array_equal(kernels[True], kernels[False])

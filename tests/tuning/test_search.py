"""keras-tuner search from a recipe: ranked results, conditional
hyperparameters, and resuming after a SIGKILL without redoing trials."""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from kerazoo.recipes import load_recipe
from kerazoo.tuning import search

TINY = pathlib.Path(__file__).resolve().parents[1] / "finetune" / "tiny.yaml"


def _trials(directory):
    out = {}
    for path in sorted((directory / "search").glob("trial_*/trial.json")):
        try:
            trial = json.loads(path.read_text())
        except json.JSONDecodeError:  # being written now
            continue
        out[trial["trial_id"]] = (trial["status"], path.stat().st_mtime_ns)
    return out


def test_search_ranks_trials_with_conditional_hyperparameters(tmp_path):
    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path}",
            "search={max_trials: 4, epochs: 1, batch_sizes: [8, 16], "
            "optimizers: [momentum, rmsprop, adam], "
            "initializers: [he_normal, xavier_uniform]}",
        ],
    )
    lines = []
    rows = search(recipe, log=lines.append)
    assert len(rows) == 4
    scores = [r["objective"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    for row in rows:
        assert row["optimizer"] in ("momentum", "rmsprop", "adam")
        assert row["initializer"] in ("he_normal", "xavier_uniform")
        assert row["batch_size"] in (8, 16)
        assert 1e-4 <= row["learning_rate"] <= 1e-1
        other = set(row["other"])
        expected = {
            "momentum": {"momentum"},
            "rmsprop": {"rho"},
            "adam": {"beta_1_adam", "beta_2_adam"},
        }[row["optimizer"]]
        assert other == expected, row
    with (tmp_path / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [int(r["rank"]) for r in table] == list(range(1, 5))
    assert (tmp_path / "results.png").stat().st_size > 0
    assert any(line.startswith("best: ") for line in lines)


def test_momentum_and_nesterov_share_one_momentum_hyperparameter(tmp_path):
    """Registered under both families with one condition: a trial of one
    family reloaded after a trial of the other still finds its value."""
    import keras_tuner

    from kerazoo.tuning.search import SearchHyperModel

    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path}",
            "search={max_trials: 2, optimizers: [nesterov, momentum, adam]}",
        ],
    )
    model = SearchHyperModel(recipe, feature_dim=8, num_classes=10)
    hp = keras_tuner.HyperParameters()
    configs = {}
    for family in ("nesterov", "momentum"):
        hp.values["optimizer"] = family
        configs[family] = model.optimizer_config(hp)
    assert [h.name for h in hp.space].count("momentum") == 1
    reloaded = keras_tuner.HyperParameters.from_config(hp.get_config())
    reloaded.values["optimizer"] = "momentum"
    assert (
        model.optimizer_config(reloaded)["momentum"] == configs["momentum"]["momentum"]
    )
    assert "momentum" in configs["nesterov"]


def test_search_folder_of_another_space_is_refused(tmp_path):
    first = load_recipe(
        TINY, [f"output_dir={tmp_path}", "search={max_trials: 1, epochs: 1}"]
    )
    search(first, log=lambda line: None)
    other = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path}",
            "search={max_trials: 1, epochs: 1, optimizers: [adam]}",
        ],
    )
    with pytest.raises(ValueError, match=r"another space \(search.optimizers: "):
        search(other, log=lambda line: None)
    assert len(_trials(tmp_path)) == 1


def test_recipe_without_search_section():
    with pytest.raises(ValueError, match="no `search` section"):
        search(load_recipe(TINY))


def test_killed_search_resumes_without_redoing_trials(tmp_path):
    command = [
        sys.executable,
        "-m",
        "kerazoo.cli",
        "tune",
        str(TINY),
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "search={max_trials: 5, epochs: 15}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp_path / "first.log", "w+")
    first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            done = [s for s, _ in _trials(tmp_path).values() if s == "COMPLETED"]
            if len(done) >= 2:
                break
            time.sleep(0.05)
        if first.poll() is not None:
            log.seek(0)
            tail = log.read()[-3000:]
            pytest.fail(f"the search ended before it could be killed:\n{tail}")
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    before = {
        k: mtime for k, (s, mtime) in _trials(tmp_path).items() if s == "COMPLETED"
    }
    assert 2 <= len(before) < 5
    second = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{len(before)} trials already completed" in second.stdout
    after = _trials(tmp_path)
    completed = [k for k, (s, _) in after.items() if s == "COMPLETED"]
    assert len(completed) == 5
    for trial_id, mtime in before.items():
        assert after[trial_id][1] == mtime, f"trial {trial_id} was redone"


_WRITE_STATE_ON_A_FULL_DISK = """
import json, resource, signal, sys
from keras_tuner.src import utils
from kerazoo.tuning.search import atomic_state_files

with atomic_state_files():
    utils.save_json(sys.argv[1], {"trial_id": "00", "status": "RUNNING"})
    # The disk fills up: a file may not grow past 4 KiB (EFBIG, not a signal).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    try:
        utils.save_json(sys.argv[1], {"status": "COMPLETED", "x": list(range(10**5))})
    except Exception as e:
        print("refused:", type(e).__name__)
"""


def test_state_files_keep_their_last_whole_contents_when_a_write_fails(tmp_path):
    """keras-tuner's state is written by rename within the search: a write cut
    short (here a full disk; a kill is the same) leaves the previous state,
    where keras-tuner's own writer leaves a truncated file that cannot be
    resumed from."""
    path = tmp_path / "trial.json"
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_STATE_ON_A_FULL_DISK, str(path)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout
    assert json.loads(path.read_text()) == {"trial_id": "00", "status": "RUNNING"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial.json"]


def test_unreadable_search_state_is_named_before_the_search_starts(tmp_path):
    trial = tmp_path / "search" / "trial_03"
    trial.mkdir(parents=True)
    (trial / "trial.json").write_text('{"trial_id": "03", "sta')
    recipe = load_recipe(TINY, [f"output_dir={tmp_path}", "search={max_trials: 4}"])
    with pytest.raises(
        ValueError, match=r"trial_03/trial.json is not readable JSON .* Restore it"
    ):
        search(recipe, log=lambda line: None)
    assert not (tmp_path / "search" / "space.json").exists()


def test_completed_trial_still_listed_as_ongoing_is_not_run_again(tmp_path):
    """keras-tuner writes a finished trial's file, then its own state, which
    lists the trial as ongoing until the next one starts: a kill in between
    left a completed trial that the resumed search ran again."""
    first = load_recipe(
        TINY, [f"output_dir={tmp_path}", "search={max_trials: 2, epochs: 1}"]
    )
    search(first, log=lambda line: None)
    before = _trials(tmp_path)
    assert [s for s, _ in before.values()] == ["COMPLETED", "COMPLETED"]
    last = max(before)
    oracle = tmp_path / "search" / "oracle.json"
    state = json.loads(oracle.read_text())
    state["ongoing_trials"] = {"tuner0": last}  # as at the kill
    oracle.write_text(json.dumps(state))
    more = load_recipe(
        TINY, [f"output_dir={tmp_path}", "search={max_trials: 3, epochs: 1}"]
    )
    lines = []
    search(more, log=lines.append)
    after = _trials(tmp_path)
    assert after[last] == before[last], "the completed trial ran again"
    assert [s for s, _ in after.values()] == ["COMPLETED"] * 3
    assert any("2 trials already completed" in line for line in lines)


def test_parallel_runs_a_chief_and_two_workers(tmp_path):
    """`--parallel 2`: a chief and two workers on 127.0.0.1 (keras-tuner's
    distributed mode, here on the CPU) complete max_trials, none twice."""
    command = [
        sys.executable,
        "-m",
        "kerazoo.cli",
        "tune",
        str(TINY),
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "search={max_trials: 6, epochs: 1}",
        "--parallel",
        "2",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout
    assert "no GPU visible: 2 workers share the CPU" in out
    assert (
        "no authentication" in out and "[worker 1]" in out and "[chief] best: " in out
    )
    with (tmp_path / "results.csv").open() as f:
        trials = [row["trial"] for row in csv.DictReader(f)]
    assert len(trials) == 6 and len(set(trials)) == 6
    assert len(list((tmp_path / "search").glob("trial_*"))) == 6
    # Both workers ran trials.
    assert {p.name for p in (tmp_path / "search").glob("tuner*.json")} == {
        "tuner0.json",
        "tuner1.json",
    }
    assert (tmp_path / "best_recipe.yaml").exists()


def test_one_gpu_per_worker(monkeypatch):
    from kerazoo.tuning.parallel import gpu_assignment
    from kerazoo.tuning.parallel import visible_gpus

    assert gpu_assignment(2, []) == [None, None]
    assert gpu_assignment(2, ["0", "1"]) == ["0", "1"]
    assert gpu_assignment(3, ["2", "5"]) == ["2", "5", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert visible_gpus() == ["3", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_trial_left_running_by_a_crash_runs_again(tmp_path):
    """The window keras-tuner leaves open: a new trial's file is written before
    the oracle's state, so a kill between the two leaves a RUNNING trial that
    the oracle does not list as ongoing. Rerunning must run it, not skip it."""
    recipe = load_recipe(
        TINY, [f"output_dir={tmp_path}", "search={max_trials: 3, epochs: 1}"]
    )
    search(recipe, log=lambda line: None)
    path = next((tmp_path / "search").glob("trial_1/trial.json"))
    trial = json.loads(path.read_text())
    trial["status"], trial["metrics"] = "RUNNING", {"metrics": {}}
    path.write_text(json.dumps(trial))
    lines = []
    rows = search(recipe, log=lines.append)
    assert "trial 1 was interrupted: it runs again" in lines
    assert len(rows) == 3
    statuses = [status for status, _ in _trials(tmp_path).values()]
    assert statuses == ["COMPLETED"] * 3


def test_best_recipe_reproduces_the_best_head(tmp_path):
    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path}",
            "search={max_trials: 2, epochs: 1, optimizers: [adam, rmsprop]}",
        ],
    )
    rows = search(recipe, log=lambda line: None)
    best = load_recipe(tmp_path / "best_recipe.yaml")
    assert best.search is None and best.output_dir == str(tmp_path / "best")
    assert best.head.initializer == rows[0]["initializer"]
    assert best.stage1.optimizer.name == rows[0]["optimizer"]
    assert best.stage1.optimizer.learning_rate == rows[0]["learning_rate"]
    # Stage 2 keeps the recipe's ratio of learning rates (0.01 / 0.01 here)
    # and, the head being what was searched, the body keeps its own start.
    assert best.stage2.optimizer.learning_rate == rows[0]["learning_rate"]
    assert best.model.initializer is None


def test_full_runs_search_stage2_and_initialise_every_layer(tmp_path):
    """Stage-2 choices make each trial a whole fine-tuning run; without
    pretrained weights the initializer draws every layer. The best trial's
    recipe, run by `kerazoo finetune`, reaches the same objective."""
    from kerazoo.finetune import run

    recipe = load_recipe(
        TINY,
        [
            f"output_dir={tmp_path / 'search'}",
            "model.input_size=16",
            "stage1.epochs=1",
            "stage2.epochs=1",
            "search={max_trials: 2, optimizers: [adam], unfreeze: [1, all], "
            "body_lr_multiplier: {min: 0.1, max: 1.0}}",
        ],
    )
    lines = []
    rows = search(recipe, log=lines.append)
    assert len(rows) == 2
    for row in rows:
        assert set(row["other"]) >= {"unfreeze", "body_lr_multiplier"}
        assert row["other"]["unfreeze"] in ("1", "all")
        assert 0.1 <= row["other"]["body_lr_multiplier"] <= 1.0
    assert any("each a fine-tuning run from random weights" in x for x in lines)
    best = load_recipe(tmp_path / "search" / "best_recipe.yaml")
    assert best.model.initializer == rows[0]["initializer"]
    assert str(best.stage2.unfreeze) == rows[0]["other"]["unfreeze"]
    assert best.stage2.body_lr_multiplier == rows[0]["other"]["body_lr_multiplier"]
    run(best, log=lambda line: None)
    again = [
        float(r["val_accuracy"])
        for r in csv.DictReader(
            (tmp_path / "search" / "best" / "history_stage2.csv").open()
        )
    ]
    assert max(again) == pytest.approx(rows[0]["objective"], abs=1e-6)


@pytest.mark.parametrize(
    "search_section, message",
    [
        (
            "{oracle: hyperband, unfreeze: [1]}",
            "hyperband sets each trial's epochs",
        ),
        ("{unfreeze: [0]}", "`all` or a number of stages >= 1"),
        ("{body_lr_multiplier: {min: 1.0, max: 0.1}}", "must be below max"),
    ],
)
def test_bad_stage2_search_is_refused_before_any_trial(search_section, message):
    from kerazoo.recipes import RecipeError

    with pytest.raises(RecipeError, match=message):
        load_recipe(TINY, [f"search={search_section}"])


def test_searched_body_multiplier_refuses_a_mapping_of_groups():
    from kerazoo.recipes import RecipeError

    with pytest.raises(RecipeError, match="is a mapping of groups"):
        load_recipe(
            TINY,
            [
                "stage2.body_lr_multiplier={'body/stage3/': 0.5}",
                "search={body_lr_multiplier: {min: 0.1, max: 1.0}}",
            ],
        )


def test_stage2_choices_need_stage2(tmp_path):
    from kerazoo.recipes import RecipeError

    with pytest.raises(RecipeError, match="stage2.epochs is 0"):
        load_recipe(TINY, ["stage2.epochs=0", "search={unfreeze: [1]}"])
    with pytest.raises(RecipeError, match="would discard the 'imagenet' weights"):
        load_recipe(
            TINY,
            [
                "model={name: efficientnet_lite0, weights: imagenet, input_size: 32, "
                "initializer: he_normal}"
            ],
        )

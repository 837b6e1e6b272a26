"""`kerazoo.distributed` without a cluster: where a process finds the others,
how each process's batches are cut, and the errors that stop a run early."""

import numpy as np
import pytest
import tensorflow as tf
import yaml

from kerazoo import distributed
from kerazoo.distributed import Cluster
from kerazoo.distributed import DistributedError
from kerazoo.distributed import Padding
from kerazoo.distributed import World
from kerazoo.recipes import RecipeError
from kerazoo.recipes import validate_recipe

TINY = "tests/distributed/tiny.yaml"


def test_cluster_from_flags_then_environment():
    environ = {
        "KERAZOO_COORDINATOR": "10.0.0.1:1234",
        "KERAZOO_NUM_PROCESSES": "4",
        "KERAZOO_PROCESS_ID": "3",
        "KERAZOO_DISTRIBUTED_TIMEOUT": "20",
    }
    assert Cluster.from_env(environ=environ) == Cluster("10.0.0.1:1234", 4, 3, 20)
    # A flag wins over its variable.
    flags = Cluster.from_env("127.0.0.1:5", None, 1, None, environ=environ)
    assert flags == Cluster("127.0.0.1:5", 4, 1, 20)
    nothing = Cluster.from_env(environ={})
    assert not nothing.given and nothing.timeout == distributed.DEFAULT_TIMEOUT


@pytest.mark.parametrize(
    "values, message",
    [
        ({"KERAZOO_COORDINATOR": "h:1"}, "missing: --num-processes"),
        (
            {"KERAZOO_COORDINATOR": "h:1", "KERAZOO_NUM_PROCESSES": "2"},
            "missing: --process-id (KERAZOO_PROCESS_ID)",
        ),
        (
            {
                "KERAZOO_COORDINATOR": "h:1",
                "KERAZOO_NUM_PROCESSES": "2",
                "KERAZOO_PROCESS_ID": "2",
            },
            "process_id: 2; it must be in [0, 2)",
        ),
        (
            {
                "KERAZOO_COORDINATOR": "no-port",
                "KERAZOO_NUM_PROCESSES": "2",
                "KERAZOO_PROCESS_ID": "0",
            },
            "give HOST:PORT",
        ),
        ({"KERAZOO_NUM_PROCESSES": "two"}, "'two' is not a whole number"),
        ({"KERAZOO_DISTRIBUTED_TIMEOUT": "0"}, "give a positive number of seconds"),
    ],
)
def test_bad_cluster_values_are_named(values, message):
    with pytest.raises(DistributedError) as error:
        Cluster.from_env(environ=values)
    assert message in str(error.value)


def test_one_process_world_gives_back_what_it_gets():
    world = World()
    dataset = tf.data.Dataset.range(5).batch(2)
    assert world.writer and not world.distributed
    assert world.local_batch(30, "stage1.batch_size") == 30
    assert world.steps(100, 30) is None
    assert world.training(dataset, 2) is dataset
    assert world.evaluation(dataset, 2) is dataset


def _world(process_id):
    return World(process_id=process_id, num_processes=2, devices=4, distributed=True)


def test_batches_are_split_over_every_device():
    world = _world(0)
    assert world.local_batch(8, "stage1.batch_size") == 4
    with pytest.raises(DistributedError) as error:
        world.local_batch(6, "stage2.batch_size")
    assert "stage2.batch_size: 6 images do not split evenly over 4 devices" in str(
        error.value
    )
    assert world.evaluation_batch(64) == 64 and world.evaluation_batch(62) == 64
    # As many steps as one process takes over the whole split.
    assert world.steps(100, 8) == 13 and world.steps(3, 8) == 1


def test_training_batches_never_run_short():
    # A shard of 5 images in batches of 2: endless, always full.
    shard = tf.data.Dataset.range(5).batch(2)
    batches = list(_world(1).training(shard, 2).take(4).as_numpy_iterator())
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4, 0], [1, 2]]


def test_evaluation_rows_cover_the_split_once_with_the_padding_weighed_zero():
    images = np.arange(10, dtype="float32").reshape(10, 1)
    labels = np.arange(10, dtype="int32")
    split = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    padding = Padding()
    seen, weights = [], []
    for process in (0, 1):
        rows = _world(process).evaluation(split, 4, padding)
        batches = list(rows.as_numpy_iterator())
        # Every process: three batches of 2 rows (the last global batch of 2
        # real rows padded to 4).
        assert [len(x) for x, _, _ in batches] == [2, 2, 2]
        seen.append(np.concatenate([y for _, y, _ in batches]))
        weights.append(np.concatenate([w for _, _, w in batches]))
    assert seen[0].tolist() == [0, 1, 4, 5, 8, 9]
    assert seen[1].tolist() == [2, 3, 6, 7, 0, 0]
    assert weights[0].tolist() == [1, 1, 1, 1, 1, 1]
    assert weights[1].tolist() == [1, 1, 1, 1, 0, 0]
    # Two passes (one a process) counted: 20 real rows, 4 padding.
    assert (padding.real, padding.extra) == (20, 4)
    assert padding.loss_scale() == pytest.approx(24 / 20)


def test_one_hot_labels_are_padded_too():
    x = np.zeros((3, 2, 2, 1), "float32")
    y = np.eye(3, dtype="float32")
    split = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    ((xs, ys, ws),) = _world(1).evaluation(split, 4).as_numpy_iterator()
    assert xs.shape == (2, 2, 2, 1) and ys.tolist() == [[0, 0, 1], [0, 0, 0]]
    assert ws.tolist() == [1, 0]


def test_data_parallel_needs_the_jax_backend():
    import keras

    if keras.backend.backend() == "jax":
        pytest.skip("this test process runs the JAX backend")
    with pytest.raises(DistributedError) as error:
        distributed.start(Cluster())
    assert "needs the JAX backend (set KERAS_BACKEND=jax" in str(error.value)


def test_multi_worker_left_the_schema_for_data_parallel():
    data = yaml.safe_load(open(TINY))
    data["distribution"] = "multi_worker"
    with pytest.raises(RecipeError) as error:
        validate_recipe(data)
    assert "multi_worker is gone" in str(error.value)
    assert "use 'data_parallel'" in str(error.value)
    data["distribution"] = "data_parallel"
    assert validate_recipe(data).distribution == "data_parallel"


def test_cluster_flags_need_a_data_parallel_recipe(tmp_path, capsys):
    from kerazoo.cli import main

    argv = [
        "finetune",
        TINY,
        "--set",
        "distribution=none",
        "--set",
        f"output_dir={tmp_path / 'out'}",
        "--coordinator",
        "127.0.0.1:1",
        "--num-processes",
        "2",
        "--process-id",
        "0",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "the recipe's distribution is none; set distribution: data_parallel" in err
    assert not (tmp_path / "out").exists()


def test_bad_cluster_flags_stop_before_the_recipe_is_read(capsys):
    from kerazoo.cli import main

    argv = ["finetune", TINY, "--coordinator", "127.0.0.1:1", "--process-id", "0"]
    assert main(argv) == 2
    assert "missing: --num-processes" in capsys.readouterr().err

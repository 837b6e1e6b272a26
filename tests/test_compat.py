"""`kerazoo/_compat.py` is the only place for private and version-dependent APIs
(docs: DESIGN.md, "Layout"): no other module names them, and each of its
functions still does its job on the installed Keras, keras-tuner, TensorFlow
and tensorflow-datasets."""

import json
import pathlib
import re

import keras
import numpy as np
import pytest

from kerazoo import _compat

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kerazoo"

# Private modules and attributes that only kerazoo/_compat.py may name.
PRIVATE = re.compile(
    r"\bkeras\.src\b|\bkeras_tuner\.src\b|\btensorflow\.python\b"
    r"|\b_flatten_layers\b|\b_inbound_nodes\b|\b_outbound_nodes\b"
    r"|\b_keras_history\b|\b_retry_queue\b|\._operations\b"
    r"|\b_model_variables_moving_average\b"
)
# Modules that may still name them (none do).
ALLOWED = set()


def private_uses(root):
    """`["path:line: text"]` for each line of `root`'s modules, outside
    `_compat.py`, that names a private API."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).as_posix()
        if relative == "kerazoo/_compat.py" or relative in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_private_apis_are_named_only_in_compat():
    assert (PACKAGE / "_compat.py").is_file()
    found = private_uses(PACKAGE)
    assert not found, (
        "private or version-dependent APIs outside kerazoo/_compat.py (add a "
        "function there):\n" + "\n".join(found)
    )


def test_the_scan_finds_each_kind_of_use(tmp_path):
    package = tmp_path / "kerazoo"
    package.mkdir()
    (package / "_compat.py").write_text("x._flatten_layers()\n")
    (package / "a.py").write_text(
        "from keras.src import ops\n"
        "import tensorflow.python.ops\n"
        "q = oracle._retry_queue\n"
        "set_retry_queue(oracle, [])\n"
        "layers = model._operations\n"
    )
    found = private_uses(package)
    assert [line.split(":")[1] for line in found] == ["1", "2", "3", "5"]


def test_every_compat_function_documents_what_it_wraps_and_versions():
    functions = [
        getattr(_compat, name)
        for name in dir(_compat)
        if not name.startswith("_")
        and callable(getattr(_compat, name))
        and getattr(getattr(_compat, name), "__module__", "") == _compat.__name__
    ]
    assert len(functions) >= 10
    for function in functions:
        doc = function.__doc__ or ""
        assert "Checked against" in doc, function.__name__
        assert re.search(r"\b(Wraps|Reads|Writes|Replaces|Matches)\b", doc), (
            function.__name__
        )


# --- Keras: sublayers and the functional graph --------------------------------


def _nested_model():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="inner_dense")], name="inner"
    )
    shared = keras.layers.Dense(3, name="shared")
    x = keras.Input((4,), name="x")
    y = inner(x)
    z = shared(y)
    w = shared(z)
    out = keras.layers.Dense(2, name="out")(keras.layers.Add(name="add")([z, w]))
    return keras.Model(x, out, name="outer"), x, y, z


def test_record_outputs_sees_layers_inside_nested_models_and_is_undone():
    model, *_ = _nested_model()
    inner = model.get_layer("inner").get_layer("inner_dense")
    shared = model.get_layer("shared")
    x = np.ones((2, 4), "float32")
    with _compat.record_outputs([shared, inner]) as outputs:
        out = model(x)
    # In call order, a shared layer once per call.
    assert list(outputs) == [id(inner), id(shared)]
    assert len(outputs[id(shared)]) == 2
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs[id(inner)][0]),
        keras.ops.convert_to_numpy(inner(x)),
        rtol=1e-6,
    )
    assert "call" not in vars(shared) and "call" not in vars(inner)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(out)
    )


def test_sublayers_walks_nested_models_and_blocks_once_each():
    from kerazoo.layers import ResidualBlock

    model, *_ = _nested_model()
    names = [layer.name for layer in _compat.sublayers(model)]
    assert "inner_dense" in names
    assert names.count("shared") == 1
    assert "outer" not in names
    assert _compat.sublayers(model, include_self=True)[0] is model
    own = [layer.name for layer in _compat.sublayers(model, recursive=False)]
    assert "inner_dense" not in own and "inner" in own

    block = ResidualBlock(8)
    block.build((None, 8, 8, 8))
    inside = _compat.sublayers(block)
    assert inside and all(isinstance(layer, keras.layers.Layer) for layer in inside)
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in inside)


def test_the_graph_functions_follow_calls_and_tensors():
    model, x, y, z = _nested_model()
    inner = model.get_layer("inner")
    shared = model.get_layer("shared")
    out = model.get_layer("out")

    (call,) = _compat.call_inputs(inner)
    assert len(call) == 1 and call[0] is x
    calls = _compat.call_inputs(shared)
    assert len(calls) == 2
    assert calls[0][0] is y and calls[1][0] is z
    assert len(_compat.call_inputs(model.get_layer("add"))[0]) == 2
    assert _compat.call_inputs(keras.layers.Dense(1)) == []

    assert _compat.consumer_count(inner) == 1
    assert _compat.consumer_count(shared) == 3  # itself once, then add
    assert _compat.consumer_count(out) == 0

    assert _compat.producer(y) is inner
    assert _compat.producer(z) is shared
    assert isinstance(_compat.producer(x), keras.layers.InputLayer)
    assert _compat.producer(keras.KerasTensor((2, 3))) is None


# --- Keras: weights --------------------------------------------------------------


def test_assign_shape_mismatch_reads_keras_assign_error():
    variable = keras.Variable(np.zeros((2, 3)), name="kernel")
    with pytest.raises(ValueError) as info:
        variable.assign(np.zeros((3, 3)))
    assert _compat.assign_shape_mismatch(info.value) == (
        variable.path,
        "(2, 3)",
        "(3, 3)",
    )
    assert _compat.assign_shape_mismatch(ValueError("something else")) is None


def _classifier(classes):
    x = keras.Input((4,))
    h = keras.layers.Dense(6, name="hidden")(x)
    return keras.Model(x, keras.layers.Dense(classes, name="predictions")(h))


def test_assign_shape_mismatch_reads_load_weights_error(tmp_path):
    path = tmp_path / "three.weights.h5"
    _classifier(3).save_weights(path)
    with pytest.raises(ValueError) as info:
        _classifier(5).load_weights(path)
    assert _compat.assign_shape_mismatch(info.value) == (
        "predictions/kernel",
        "(6, 5)",
        "(6, 3)",
    )


def test_weights_h5_shape_reads_keras_file_layout(tmp_path):
    path = tmp_path / "three.weights.h5"
    _classifier(3).save_weights(path)
    assert _compat.weights_h5_shape(path, "dense", 0) == (4, 6)
    assert _compat.weights_h5_shape(path, "dense_1", 0) == (6, 3)
    assert _compat.weights_h5_shape(path, "dense_1", 1) == (3,)
    assert _compat.weights_h5_shape(path, "dense_1", 2) is None
    assert _compat.weights_h5_shape(path, "conv2d", 0) is None


# --- TensorFlow --------------------------------------------------------------------


def test_in_xla_context_only_inside_a_compiled_function():
    tf = pytest.importorskip("tensorflow")
    seen = {}

    def probe(key):
        def function(x):
            seen[key] = _compat.in_xla_context()
            return x + 1

        return function

    assert _compat.in_xla_context() is False
    tf.function(probe("graph"))(tf.constant(1.0))
    tf.function(probe("xla"), jit_compile=True)(tf.constant(1.0))
    assert seen == {"graph": False, "xla": True}


def test_freeze_function_replaces_variables_by_constants():
    tf = pytest.importorskip("tensorflow")
    variable = tf.Variable([2.0, 3.0])
    function = tf.function(lambda x: x * variable)
    spec = tf.TensorSpec([None, 2], "float32")
    frozen = _compat.freeze_function(function.get_concrete_function(spec))
    assert not frozen.variables
    kinds = {op.type for op in frozen.graph.get_operations()}
    assert "ReadVariableOp" not in kinds
    x = tf.constant([[1.0, 1.0], [2.0, 0.5]])
    np.testing.assert_array_equal(frozen(x)[0].numpy(), [[2.0, 3.0], [4.0, 1.5]])


# --- keras-tuner -------------------------------------------------------------------


def test_keras_tuner_save_json_is_what_keras_tuner_writes_with(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")
    written = []

    def replacement(original, path, obj):
        written.append(pathlib.Path(path).name)
        return original(path, obj)

    trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="00")
    with _compat.keras_tuner_save_json(replacement):
        trial.save(str(tmp_path / "trial.json"))
    assert written == ["trial.json"]
    assert json.loads((tmp_path / "trial.json").read_text())["trial_id"] == "00"
    trial.save(str(tmp_path / "again.json"))
    assert written == ["trial.json"]  # keras-tuner's own writer again


def test_retry_queue_is_read_saved_and_run_first(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="loss", max_trials=5, hyperparameters=hp, seed=0
    )
    # What a Tuner does before it asks the oracle for trials.
    oracle._set_project_dir(str(tmp_path), "search")
    first = oracle.create_trial("tuner0")
    oracle.update_trial(first.trial_id, {"loss": 1.0})
    oracle.end_trial(first)
    assert _compat.retry_queue(oracle) == []

    _compat.set_retry_queue(oracle, [first.trial_id])
    assert _compat.retry_queue(oracle) == [first.trial_id]
    assert oracle.get_state()["retry_queue"] == [first.trial_id]
    again = oracle.create_trial("tuner0")
    assert again.trial_id == first.trial_id
    assert _compat.retry_queue(oracle) == []

    copy = _compat.retry_queue(oracle)
    copy.append("99")
    assert _compat.retry_queue(oracle) == []


# --- tensorflow-datasets ---------------------------------------------------------


def test_imagenet_label_names_are_the_1000_classes():
    pytest.importorskip("tensorflow_datasets")
    names = _compat.imagenet_label_names()
    assert names is not None and len(names) == 1000
    assert names[0].startswith("tench") and names[1].startswith("goldfish")
    assert all(isinstance(name, str) and name for name in names)


def test_ema_averages_pairs_each_variable_with_its_average():
    variable = keras.Variable(np.ones(3, "float32"))
    plain = keras.optimizers.SGD(learning_rate=0.5)
    plain.build([variable])
    with pytest.raises(ValueError, match="use_ema=True"):
        _compat.ema_averages(plain)
    optimizer = keras.optimizers.SGD(learning_rate=0.5, use_ema=True, ema_momentum=0.5)
    optimizer.apply_gradients([(keras.ops.ones(3), variable)])  # average = 0.5
    optimizer.apply_gradients([(keras.ops.ones(3), variable)])  # 0.5 x 0.5 + 0.5 x 0
    [(var, average)] = _compat.ema_averages(optimizer)
    assert var is variable
    np.testing.assert_allclose(keras.ops.convert_to_numpy(average), [0.25] * 3)
    # Keras's public overwrite uses the same pairs.
    optimizer.finalize_variable_values([variable])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), [0.25] * 3)
    scaled = keras.optimizers.LossScaleOptimizer(optimizer)
    assert _compat.ema_averages(scaled)[0][1] is average


# --- Private Keras names that stay in kerazoo's classes -----------------------------


def test_keras_still_calls_the_optimizer_hooks_kerazoo_overrides(monkeypatch):
    from kerazoo.optimizers import SGD
    from kerazoo.optimizers.base import Optimizer

    assert callable(keras.optimizers.Optimizer._get_variable_index)
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the update-step hook is TensorFlow's")
    calls = []
    hook = Optimizer._distributed_tf_update_step

    def spy(self, *args, **kwargs):
        calls.append(self)
        return hook(self, *args, **kwargs)

    monkeypatch.setattr(Optimizer, "_distributed_tf_update_step", spy)
    variable = keras.Variable(np.ones(3, "float32"))
    optimizer = SGD(learning_rate=0.5)
    optimizer.apply_gradients([(keras.ops.ones(3), variable)])
    assert calls == [optimizer]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), [0.5] * 3)
    assert optimizer._get_variable_index(variable) == 0

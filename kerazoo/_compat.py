"""The only place where kerazoo uses private or version-dependent APIs.

Keras, keras-tuner, TensorFlow and tensorflow-datasets change their private
modules and attributes between releases without notice. Library code calls the
small functions below instead, so that an upgrade that breaks one breaks it
here, in one function whose test (`tests/test_compat.py`) says which. Each
function says what it wraps, why no public API does the job, and the versions
it was checked against.

Checked against: Keras 3.15.1, keras-tuner 1.4.8, TensorFlow 2.21.0,
tensorflow-datasets 4.9.10, h5py 3.14.0.

Two private Keras names stay in the classes that use them, because an override
or a call on `self` must use Keras's own name; `tests/test_compat.py` checks
that the installed Keras still has and calls them:

- `Optimizer._distributed_tf_update_step(distribution, grads_and_vars,
  learning_rate)`, which Keras's TensorFlow optimizer calls once per step to
  update every variable: `kerazoo.optimizers.Optimizer` overrides it to test
  all gradients at once. If Keras stops calling it, the guard falls back on
  its per-variable test: the same results, slower.
- `Optimizer._get_variable_index(variable)`, the slot index that every Keras
  optimizer's `update_step` uses (Keras's documented way to write one).

This module imports no TensorFlow, keras-tuner or tensorflow-datasets at module
level: `kerazoo.layers`, `kerazoo.optimizers`, `kerazoo.initializers` and
`kerazoo.models` use it and must import under any Keras backend. It imports
nothing from kerazoo, so any module may import it.
"""

import contextlib
import functools
import re

# ---------------------------------------------------------------------------
# Keras: the layers of a layer, and the graph of a functional model
# ---------------------------------------------------------------------------


def sublayers(layer, include_self=False, recursive=True):
    """The layers that `layer` tracks, depth first, each once.

    Wraps `keras.Layer._flatten_layers(include_self, recursive)`, the walk that
    Keras itself uses for `layer.losses`, `Model.layers` of subclassed models
    and saving. No public API does it: `Model.layers` lists only a model's own
    layers (not those inside a nested model or a composite layer such as
    `kerazoo.layers.ResidualBlock`), and a plain `keras.Layer` has no public
    list of its sublayers at all.

    Checked against Keras 3.15.1.

    Args:
        layer: A Keras layer or model.
        include_self: Whether `layer` itself comes first.
        recursive: Whether to go into sublayers' sublayers.

    Returns:
        A list of layers.
    """
    return list(layer._flatten_layers(include_self=include_self, recursive=recursive))


@contextlib.contextmanager
def record_outputs(layers):
    """Records what each of `layers` returns while the block runs: yields a
    dict `{id(layer): [output of each call, in call order]}`, filled as the
    layers are called eagerly.

    Replaces each layer's `call` with a recording wrapper set on the instance
    (removed on exit, which restores the class's method). Keras has no forward
    hooks; this works because `Operation.__call__` looks up `self.call` at
    each call, so an instance attribute takes the class's place. It sees a
    layer however deep it sits (inside a nested model or a composite block
    such as `kerazoo.layers.ResidualBlock`), which a probe `keras.Model` to
    `layer.output` cannot (a nested model's layers have no output in the
    outer graph, a block's sublayers none at all). Run the model eagerly
    (`model(x)`, not `predict`): a traced function records symbolic values.

    Checked against Keras 3.15.1.
    """
    outputs = {}

    def recording(layer, call):
        @functools.wraps(call)
        def wrapper(*args, **kwargs):
            result = call(*args, **kwargs)
            outputs.setdefault(id(layer), []).append(result)
            return result

        return wrapper

    patched = []
    try:
        for layer in layers:
            layer.call = recording(layer, layer.call)
            patched.append(layer)
        yield outputs
    finally:
        for layer in patched:
            del layer.call


def call_inputs(operation):
    """The symbolic input tensors of each call of a layer in functional graphs:
    a list with one list of `KerasTensor`s per call (empty when the layer was
    never called on symbolic inputs).

    Wraps `Operation._inbound_nodes` (one `Node` per call, appended when the
    call builds a graph) and `Node.input_tensors`. The public
    `layer.input` gives the inputs of the first call only, and says neither
    whether there are more calls (a layer shared by two branches or models)
    nor how many.

    Checked against Keras 3.15.1.
    """
    return [list(node.input_tensors) for node in operation._inbound_nodes]


def call_outputs(operation):
    """The symbolic output tensors of each call of a layer in functional
    graphs, as `call_inputs` gives their inputs.

    Wraps `Node.output_tensors`. For a nested functional model the public
    `model.output` is the output of its own graph, not that of its call in
    the enclosing model, which is what a model of intermediate outputs needs.

    Checked against Keras 3.15.1.
    """
    return [list(node.output_tensors) for node in operation._inbound_nodes]


def consumer_count(operation):
    """How many calls of other layers, in functional graphs, take an output of
    `operation` as an input (0 for a model's output layer).

    Wraps `len(Operation._outbound_nodes)`. Keras has no public way to find
    the consumers of a layer's output: a functional model lists its
    operations, not its edges.

    Checked against Keras 3.15.1.
    """
    return len(operation._outbound_nodes)


def producer(tensor):
    """The operation (layer) whose call produced a symbolic tensor, or None for
    a tensor that no call produced (a bare `KerasTensor`).

    Wraps `KerasTensor._keras_history.operation`, the record Keras attaches to
    every symbolic output when a functional graph is built. No public API maps
    a tensor back to its layer. (A `keras.Input` is produced by its
    `InputLayer`.)

    Checked against Keras 3.15.1.
    """
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


# The text of Keras's refusal, in `keras.Variable.assign`, to assign a value
# of another shape (`assign_shape_mismatch`).
_ASSIGN_SHAPES = re.compile(
    r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))"
)
_ASSIGN_PATH = re.compile(r"<Variable path=([\w/.\-]+)")


def assign_shape_mismatch(error):
    """`(variable path, variable shape, value shape)`, the shapes as Keras
    prints them (`"(64, 5)"`), when `error` is Keras's refusal to assign a
    value of another shape to a variable; else None.

    Matches the text of the `ValueError` that `keras.Variable.assign` raises
    (keras/src/backend/common/variables.py), of which it relies on two parts:
    `variable.shape=(64, 5), Received: value.shape=(64, 3)` and the
    variable's repr, `<Variable path=predictions/kernel, ...>`.
    `Model.load_weights` on a `.weights.h5` file raises it for the first
    variable whose shape differs from the file's. No public API compares such
    a file with a model before loading it: the file stores its arrays under
    Keras's saving paths (see `weights_h5_shape`), not under variable paths,
    so the condition cannot be checked first.

    Checked against Keras 3.15.1.
    """
    text = str(error)
    shapes = _ASSIGN_SHAPES.search(text)
    path = _ASSIGN_PATH.search(text)
    if not (shapes and path):
        return None
    return path.group(1), shapes.group(1), shapes.group(2)


def weights_h5_shape(path, layer_key, index):
    """The shape of the `index`-th variable of one layer in a `.weights.h5`
    file, as a tuple, or None when the file has no such variable.

    Reads Keras 3's layout of the file: `layers/<key>/vars/<index>`, where
    the key of each of a model's own layers (`Model.layers`) is its class
    name in snake case, numbered from the second of a class on (`"dense"`,
    `"dense_1"`, ...), and the variables are numbered in the order of
    `layer.weights`. Keras documents no layout and no public function reads
    one variable of such a file.

    Checked against Keras 3.15.1 (with h5py 3.14.0).
    """
    import h5py

    with h5py.File(path, "r") as f:
        dataset = f.get(f"layers/{layer_key}/vars/{index}")
        return None if dataset is None else tuple(dataset.shape)


def ema_averages(optimizer):
    """`[(variable, average)]`: each variable a built optimizer with
    `use_ema=True` trains, paired with the moving average it keeps of it
    (an average is None for a variable it does not average).

    Reads `Optimizer._trainable_variables` and
    `Optimizer._model_variables_moving_average`, the lists that Keras's
    `build` fills and `finalize_variable_values` zips (in that order). The
    public API can only overwrite the variables with their averages
    (`finalize_variable_values`); reading an average, or resetting it to the
    current weights, needs the list itself. A `LossScaleOptimizer` (mixed
    precision) is read through its public `inner_optimizer`.

    Checked against Keras 3.15.1.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if not getattr(optimizer, "use_ema", False):
        raise ValueError(
            "the optimizer keeps no weight average: build it with use_ema=True. "
            f"Received: optimizer={type(optimizer).__name__}"
        )
    averages = optimizer._model_variables_moving_average
    return list(zip(optimizer._trainable_variables, averages, strict=True))


# ---------------------------------------------------------------------------
# TensorFlow
# ---------------------------------------------------------------------------


def in_xla_context():
    """Whether TensorFlow is tracing a function that XLA compiles
    (`jit_compile=True`, or inside one); False when executing eagerly or
    when TensorFlow is not installed.

    Wraps `tensorflow.python.ops.control_flow_util.GraphOrParentsInXlaContext`
    on the default graph. TensorFlow has no public API that says whether
    the code being traced will be compiled by XLA.

    Checked against TensorFlow 2.21.0.
    """
    try:
        # TensorFlow only when asked: this module must import without it.
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - JAX or torch without TensorFlow
        return False
    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def freeze_function(concrete_function):
    """The concrete function with its variables replaced by constants (the
    same computation, no variables to read).

    Wraps `tensorflow.python.framework.convert_to_constants
    .convert_variables_to_constants_v2`. TensorFlow's public API has only the
    TensorFlow 1 form (`tf.compat.v1.graph_util.convert_variables_to_constants`,
    which takes a `Session` and a `GraphDef`, not a TensorFlow 2 function).
    Raises what it raises: `ValueError`, `TypeError` or `NotImplementedError`
    for a function it cannot freeze.

    Checked against TensorFlow 2.21.0.
    """
    # TensorFlow only when asked: this module must import without it.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return convert_variables_to_constants_v2(concrete_function)


# ---------------------------------------------------------------------------
# keras-tuner
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def keras_tuner_save_json(replacement):
    """Within this, keras-tuner writes its JSON state files (`oracle.json`,
    `tuner0.json`, each trial's `trial.json` and `build_config.json`) with
    `replacement(original, path, obj)`, which returns the JSON text;
    `original(path, obj)` is keras-tuner's own writer.

    Replaces `keras_tuner.src.utils.save_json`, the module attribute that
    keras-tuner's `Stateful.save` and `Tuner.run_trial` call for every state
    file. keras-tuner has no public hook for how its state is written (its
    public `keras_tuner` namespace does not export `utils`).

    Checked against keras-tuner 1.4.8.
    """
    from keras_tuner.src import utils

    original = utils.save_json
    utils.save_json = functools.partial(replacement, original)
    try:
        yield
    finally:
        utils.save_json = original


def retry_queue(oracle):
    """The ids of the trials a keras-tuner oracle will run again before any
    new one, as a new list (the last one runs first).

    Reads `Oracle._retry_queue`, which keras-tuner saves in `oracle.json` as
    `"retry_queue"` and fills with the trials that were ongoing when a search
    stopped. Oracles have no public API to read or change it.

    Checked against keras-tuner 1.4.8.
    """
    return list(oracle._retry_queue)


def set_retry_queue(oracle, trial_ids):
    """Makes `trial_ids` (a list, the last one runs first) the trials the
    oracle runs again before any new one.

    Writes `Oracle._retry_queue` in place; see `retry_queue` for why.

    Checked against keras-tuner 1.4.8.
    """
    oracle._retry_queue[:] = list(trial_ids)


# ---------------------------------------------------------------------------
# tensorflow-datasets
# ---------------------------------------------------------------------------


def imagenet_label_names():
    """ImageNet's 1,000 class names in label order (`"tench"`, `"goldfish"`,
    ...), or None when the installed tensorflow-datasets does not have them.

    Reads `tensorflow_datasets.datasets.siscore.labels.IMAGENET_LABELS_LIST`,
    the list that tensorflow-datasets' SI-Score builder uses. Its public
    `imagenet2012` builder names its classes by WordNet id (`n01440764`), and
    Keras's `decode_predictions` downloads its names: this list is the only
    readable names that come with an installed package.

    Checked against tensorflow-datasets 4.9.10.
    """
    try:
        # Imports TensorFlow (tensorflow-datasets does): only when asked.
        from tensorflow_datasets.datasets.siscore.labels import IMAGENET_LABELS_LIST
    except ImportError:
        return None
    names = [str(name) for name in IMAGENET_LABELS_LIST]
    return names if len(names) == 1000 else None

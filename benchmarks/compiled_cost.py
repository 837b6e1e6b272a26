"""kerazoo's training step against keras.applications', as XLA compiles it.

A timing says which of two steps is faster on one machine; this says why, on
any machine. For each model it lowers one training step (forward, loss,
gradients, an SGD update and the batch norms' statistics) of kerazoo's network
and of its keras.applications twin (same input size, weights=None, 1,000
classes) through JAX, and reports XLA's cost analysis of each: FLOPs and bytes
accessed of the program before optimization (the same on every device) and
after this machine's compiler (with its count of fused kernels). It then
matches the ops that touch whole activation tensors (batch x height x width x
channels) one for one and lists those without a twin: where the two networks'
arithmetic really differs.

    KERAS_BACKEND=jax python benchmarks/compiled_cost.py [--models NAME ...]
        [--size 224] [--batch 8] [--policy float32|mixed_bfloat16] [--json PATH]

Under `--policy mixed_bfloat16` it also counts the casts between float32 and
bfloat16 on activation tensors, the price of mixed precision.
"""

import argparse
import collections
import json
import os
import re
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from kerazoo._session import clear_session
from kerazoo.benchmarks.timing import APPLICATIONS
from kerazoo.benchmarks.timing import zoo_model

CAST = "convert_element_type"


def training_step(model):
    """A pure function `(trainable, non_trainable, x, y) -> (loss, trainable,
    non_trainable)`: one SGD step of `model`, the same for either network."""
    import jax

    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def step(trainable, non_trainable, x, y):
        def loss_and_state(trainable):
            y_pred, state = model.stateless_call(
                trainable, non_trainable, x, training=True
            )
            return loss_fn(y, y_pred), state

        (loss, state), grads = jax.value_and_grad(loss_and_state, has_aux=True)(
            trainable
        )
        trainable = [
            v - 0.01 * g.astype(v.dtype) for v, g in zip(trainable, grads, strict=True)
        ]
        return loss, trainable, state

    return step


def _first(analysis):
    # Older JAX returns a list with one dict per device program.
    return analysis[0] if isinstance(analysis, (list, tuple)) else analysis


def _sub_jaxprs(value):
    from jax.extend import core

    if isinstance(value, core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, core.Jaxpr):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _sub_jaxprs(item)


def activation_ops(jaxpr, batch, size, counts=None):
    """Counts of `(primitive, shape)` over the ops of `jaxpr` (each nested
    call counted every time it is made) whose result is an activation tensor:
    rank 4, leading dimension `batch`, more than one pixel."""
    counts = collections.Counter() if counts is None else counts
    for eqn in jaxpr.eqns:
        nested = [j for value in eqn.params.values() for j in _sub_jaxprs(value)]
        if nested:
            for inner in nested:
                activation_ops(inner, batch, size, counts)
            continue
        for var in eqn.outvars:
            shape = tuple(getattr(var.aval, "shape", ()))
            if len(shape) == 4 and shape[0] == batch and shape[1] * shape[2] > 1:
                counts[(eqn.primitive.name, shape)] += 1
    return counts


def analyse(name, source, size, batch, policy):
    import jax
    import jax.numpy as jnp

    clear_session()
    keras.config.set_dtype_policy(policy)
    try:
        model = zoo_model(name, size, source)
    finally:
        keras.config.set_dtype_policy("float32")
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    x = jnp.zeros((batch, size, size, 3), "float32")
    y = jnp.zeros((batch,), "int32")
    step = training_step(model)
    jaxpr = jax.make_jaxpr(step)(trainable, non_trainable, x, y).jaxpr
    lowered = jax.jit(step).lower(trainable, non_trainable, x, y)
    before = _first(lowered.cost_analysis())
    compiled = lowered.compile()
    after = _first(compiled.cost_analysis())
    kernels = len(re.findall(r"^\s*\S+ = \S+ fusion\(", compiled.as_text(), re.M))
    return {
        "parameters": model.count_params(),
        "flops": before["flops"],
        "bytes_accessed": before["bytes accessed"],
        "compiled_flops": after["flops"],
        "compiled_bytes_accessed": after["bytes accessed"],
        "fusions": kernels,
    }, activation_ops(jaxpr, batch, size)


def compare_model(name, size, batch, policy, log=print):
    ours, our_ops = analyse(name, "kerazoo", size, batch, policy)
    theirs, their_ops = analyse(name, "keras.applications", size, batch, policy)
    row = {"model": name, "kerazoo": ours, "keras.applications": theirs}
    for key in ("flops", "bytes_accessed", "compiled_flops", "compiled_bytes_accessed"):
        row[f"{key}_ratio"] = ours[key] / theirs[key]
    only = {"kerazoo": [], "keras.applications": []}
    for key in sorted(set(our_ops) | set(their_ops)):
        extra = our_ops[key] - their_ops[key]
        if extra:
            side = "kerazoo" if extra > 0 else "keras.applications"
            only[side].append(
                {"op": key[0], "shape": list(key[1]), "count": abs(extra)}
            )
    row["unmatched_activation_ops"] = only
    row["activation_ops"] = {
        "kerazoo": sum(our_ops.values()),
        "keras.applications": sum(their_ops.values()),
    }
    row["activation_casts"] = {
        "kerazoo": sum(c for (op, _), c in our_ops.items() if op == CAST),
        "keras.applications": sum(c for (op, _), c in their_ops.items() if op == CAST),
    }
    log(
        f"{name}: FLOPs ratio {row['flops_ratio']:.3f}, bytes accessed ratio "
        f"{row['bytes_accessed_ratio']:.3f} (compiled here: "
        f"{row['compiled_flops_ratio']:.3f}, "
        f"{row['compiled_bytes_accessed_ratio']:.3f}); "
        f"fused kernels {ours['fusions']} vs {theirs['fusions']}; ops on activation "
        f"tensors {row['activation_ops']['kerazoo']} vs "
        f"{row['activation_ops']['keras.applications']}, of which casts "
        f"{row['activation_casts']['kerazoo']} vs "
        f"{row['activation_casts']['keras.applications']}"
    )
    for side, ops in only.items():
        for op in ops:
            log(f"  only in {side}: {op['count']} x {op['op']} {op['shape']}")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", choices=list(APPLICATIONS), default=list(APPLICATIONS)
    )
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--policy", choices=("float32", "mixed_bfloat16"), default="float32"
    )
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        parser.error(
            "compiled_cost.py reads XLA's cost analysis through JAX: run it with "
            f"KERAS_BACKEND=jax (the backend is {keras.backend.backend()!r})"
        )
    print(
        f"training step, {args.size}x{args.size}, batch {args.batch}, {args.policy}",
        flush=True,
    )
    rows = [
        compare_model(name, args.size, args.batch, args.policy, log=print)
        for name in args.models
    ]
    if args.json:
        import jax

        with open(args.json, "w") as f:
            json.dump(
                {
                    "jax": jax.__version__,
                    "keras": keras.__version__,
                    "size": args.size,
                    "batch": args.batch,
                    "policy": args.policy,
                    "results": rows,
                },
                f,
                indent=2,
            )
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)

"""Where a zoo model's inference time goes, by TensorFlow op type (CPU).

The model's inference function (`model(x, training=False)`, batch norms folded
with `--fold`) is frozen (variables as constants), run in a TensorFlow session
after two warm-up runs, and traced once with full step stats; the report sums
each op type's time and its share of all op time. This is what explains the
served-vs-Keras ratios in RESULTS.md: which ops a graph rewrite could still save.

    python benchmarks/profile_ops.py [--model efficientnet_b0] [--batch 16]
        [--size 224] [--fold]
"""

import argparse
import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from kerazoo.export import fold_batch_norms
from kerazoo.models import create_model
from kerazoo.testing import randomize_batch_norms


def op_times(model, batch, size):
    """`{op type: (microseconds, count)}` of one traced run."""
    spec = tf.TensorSpec([batch, size, size, 3], tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(fn)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3))
    feed = {frozen.inputs[0].name: x.astype("float32")}
    out = frozen.outputs[0].name
    with tf.compat.v1.Session(graph=graph) as session:
        for _ in range(2):
            session.run(out, feed)
        metadata = tf.compat.v1.RunMetadata()
        session.run(
            out,
            feed,
            options=tf.compat.v1.RunOptions(
                trace_level=tf.compat.v1.RunOptions.FULL_TRACE
            ),
            run_metadata=metadata,
        )
    times, counts = collections.Counter(), collections.Counter()
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            label = node.timeline_label
            op = label.split(" = ")[1].split("(")[0] if " = " in label else "?"
            times[op] += node.all_end_rel_micros
            counts[op] += 1
    return {op: (times[op], counts[op]) for op in times}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fold", action="store_true", help="fold batch norms")
    args = parser.parse_args(argv)
    model = randomize_batch_norms(
        create_model(args.model, input_shape=(args.size,) * 2 + (3,))
    )
    if args.fold:
        model, _ = fold_batch_norms(model)
    times = op_times(model, args.batch, args.size)
    total = sum(t for t, _ in times.values())
    print(
        f"{args.model}, batch {args.batch}, {args.size}x{args.size}, "
        f"{'folded' if args.fold else 'as trained'}: {total / 1e3:.1f} ms of op time"
    )
    for op, (t, n) in sorted(times.items(), key=lambda kv: -kv[1][0])[:12]:
        print(f"  {op:28s} {t / 1e3:9.1f} ms {100 * t / total:6.1f}%  x{n}")
    return times


if __name__ == "__main__":
    main()

"""Training throughput of `distribution: data_parallel` with 1 and N processes.

Each run starts its processes as a user would (a coordinator on 127.0.0.1,
`kerazoo.distributed.start`), trains a zoo model with Keras's DataParallel on
synthetic images at the same global batch, and reports images/s of the timed
steps (after a warm-up that includes the compile) and the parallel efficiency,
`images/s with N / (N x images/s with 1)`. On one host the processes share its
CPU cores: the numbers are labelled "CPU processes on one host", and they say
what the collectives and the process split cost there, not what N hosts gain.

    KERAS_BACKEND=jax python benchmarks/bench_processes.py --processes 1 2
"""

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import time


def _worker(args):
    from kerazoo import distributed

    cluster = distributed.Cluster(
        f"127.0.0.1:{args.port}" if args.count > 1 else None,
        args.count if args.count > 1 else None,
        args.process if args.count > 1 else None,
        timeout=120,
    )
    world = distributed.start(cluster, log=lambda line: None)

    import keras
    import numpy as np
    import tensorflow as tf

    from kerazoo.models import create_model

    keras.utils.set_random_seed(0)
    model = create_model(
        args.model, num_classes=10, input_shape=(args.size, args.size, 3)
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
    )
    local = world.local_batch(args.batch, "--batch")
    rng = np.random.default_rng(world.process_id)
    x = rng.uniform(0, 255, (local, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 10, local).astype("int32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    if world.writer:
        print(
            json.dumps(
                {
                    "processes": world.num_processes,
                    "devices": world.devices,
                    "seconds": seconds,
                    "images_per_s": args.batch * args.steps / seconds,
                }
            ),
            flush=True,
        )


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(count, args):
    port = _free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    common = [
        sys.executable,
        __file__,
        "--worker",
        "--count",
        str(count),
        "--port",
        str(port),
        "--model",
        args.model,
        "--size",
        str(args.size),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    procs = [
        subprocess.Popen(
            [*common, "--process", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for i in range(count)
    ]
    outputs = [p.communicate(timeout=args.limit)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"{count} processes: a worker failed ({outputs})")
    line = next(li for li in outputs[0].splitlines() if li.startswith("{"))
    return json.loads(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--limit", type=int, default=900, help="seconds a run")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--process", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    rows = [_run(n, args) for n in args.processes]
    one = next((r for r in rows if r["processes"] == 1), None)
    print(
        f"data_parallel, CPU processes on one host ({os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}): {args.model} "
        f"{args.size}x{args.size}, global batch {args.batch}, {args.steps} steps"
    )
    print("processes  devices  images/s  efficiency")
    for r in rows:
        if one:
            r["efficiency"] = r["images_per_s"] / (r["processes"] * one["images_per_s"])
        eff = f"{r['efficiency']:.2f}" if "efficiency" in r else "-"
        print(
            f"{r['processes']:>9}  {r['devices']:>7}  {r['images_per_s']:>8.1f}  "
            f"{eff:>10}"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {
                    "label": "CPU processes on one host",
                    "date": datetime.date.today().isoformat(),
                    "cores": os.cpu_count(),
                    "args": vars(args),
                    "rows": rows,
                },
                file,
                indent=2,
            )
    return rows


if __name__ == "__main__":
    main()

"""`kerazoo tune RECIPE --parallel N`: a chief and N workers on this machine.

Each worker is a `kerazoo tune RECIPE --worker I` process of its own; on a
machine with GPUs, worker I sees only GPU I (round-robin when there are fewer
GPUs than workers), so trials run one per GPU. The chief serves keras-tuner's
oracle on 127.0.0.1 (a free port unless `--oracle-port` says otherwise) and
writes the results when the workers are done. Every process's output is
printed with its role in front.
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time


def visible_gpus():
    """The GPU ids this process may use, without starting TensorFlow:
    `CUDA_VISIBLE_DEVICES` when set, else those `nvidia-smi -L` lists."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        value = os.environ["CUDA_VISIBLE_DEVICES"].strip()
        return [d.strip() for d in value.split(",") if d.strip() not in ("", "-1")]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU")]


def gpu_assignment(workers, gpus):
    """`CUDA_VISIBLE_DEVICES` of each worker: one GPU each, round-robin; all
    `None` (the CPU) when there is no GPU."""
    if not gpus:
        return [None] * workers
    return [gpus[i % len(gpus)] for i in range(workers)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stream(process, prefix, log):
    for line in process.stdout:
        log(f"[{prefix}] {line.rstrip()}")


def run_parallel(args, log=print):
    """Runs the search of `args.recipe` (with `args.set`) as a chief and
    `args.parallel` workers; returns the exit status (0 when all succeed)."""
    port = args.oracle_port or _free_port()
    base = [sys.executable, "-m", "kerazoo.cli", "tune", args.recipe]
    for item in args.set or []:
        base += ["--set", item]
    base += ["--oracle-ip", "127.0.0.1", "--oracle-port", str(port)]
    gpus = visible_gpus()
    assignment = gpu_assignment(args.parallel, gpus)
    if gpus:
        log(
            f"{args.parallel} workers on GPUs {', '.join(assignment)} "
            f"({len(gpus)} visible)"
        )
    else:
        log(f"no GPU visible: {args.parallel} workers share the CPU")
    log(f"chief on 127.0.0.1:{port} (no authentication: a private network only)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}

    def start(role, gpu=None):
        process_env = dict(env)
        if gpu is not None:
            process_env["CUDA_VISIBLE_DEVICES"] = gpu
        return subprocess.Popen(
            [*base, *role],
            env=process_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    chief = start(["--chief"])
    time.sleep(2)  # the chief's gRPC server comes up first
    workers = [start(["--worker", str(i)], gpu) for i, gpu in enumerate(assignment)]
    processes = {"chief": chief, **{f"worker {i}": w for i, w in enumerate(workers)}}
    threads = [
        threading.Thread(target=_stream, args=(p, name, log), daemon=True)
        for name, p in processes.items()
    ]
    for thread in threads:
        thread.start()
    try:
        codes = {f"worker {i}": w.wait() for i, w in enumerate(workers)}
        try:
            # With every worker done, the chief writes the results and exits;
            # if the workers died, it would wait for them for ever.
            codes["chief"] = chief.wait(timeout=120)
        except subprocess.TimeoutExpired:
            chief.terminate()
            codes["chief"] = "still waiting for trials after the workers ended"
    except KeyboardInterrupt:
        for p in processes.values():
            p.terminate()
        raise
    for thread in threads:
        thread.join(timeout=5)
    failed = [f"{name} ({code})" for name, code in codes.items() if code]
    if failed:
        log(f"failed: {', '.join(failed)}; rerun the same command to resume")
        return 1
    return 0

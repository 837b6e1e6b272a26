"""`distribution: data_parallel` with two CPU processes on 127.0.0.1 (gloo
collectives), started as a user would start them: `kerazoo finetune RECIPE
--coordinator HOST:PORT --num-processes 2 --process-id I`.

One job is fine-tuned, its process 1 killed after stage 2's first epoch
(process 0 must then stop by itself, saying why), and resumed; its weights
are compared across the processes and with one process trained on the same
global batches. The recipe trains on whole-split batches, so one process and
two see the same gradients."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("jax", reason="data_parallel runs on JAX (the test extra)")

import h5py

RECIPE = pathlib.Path(__file__).with_name("tiny.yaml").resolve()
ROOT = RECIPE.parents[2]
RUN_LIMIT = 480  # seconds a run of the tiny recipe may take on a busy 2-core host
PEER_LOST_LIMIT = 60  # seconds process 0 may go on after process 1 died


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp, process):
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND="jax",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
        KERAZOO_PRIVATE_DIR=str(tmp / f"private-{process}"),
    )
    for key in ("KERAZOO_COORDINATOR", "KERAZOO_NUM_PROCESSES", "KERAZOO_PROCESS_ID"):
        env.pop(key, None)
    return env


def _start(tmp, process, output_dir, *, port=None, processes=2, timeout=120, args=()):
    cwd = tmp / f"cwd-{process}"
    cwd.mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "kerazoo.cli",
        "finetune",
        str(RECIPE),
        "--set",
        f"output_dir={output_dir}",
        *args,
    ]
    if port is not None:
        command += [
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            str(processes),
            "--process-id",
            str(process),
            "--distributed-timeout",
            str(timeout),
        ]
    log = open(tmp / f"log-{process}-{time.monotonic_ns()}.txt", "w+")
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=_env(tmp, process),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log = log
    return proc


def _output(proc):
    proc.log.seek(0)
    return proc.log.read()


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _finish(procs, limit=RUN_LIMIT):
    deadline = time.monotonic() + limit
    try:
        for proc in procs:
            proc.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _stop(procs)
        pytest.fail(
            f"the job ran over {limit} s:\n" + "\n---\n".join(map(_tail, procs))
        )
    for proc in procs:
        assert proc.returncode == 0, _tail(proc)
    return [_output(proc) for proc in procs]


def _tail(proc):
    return _output(proc)[-4000:]


def _kill_after_epoch(procs, backup, epoch, limit=RUN_LIMIT, victims=None):
    """SIGKILLs `victims` (default: every process) once `backup` holds
    `epoch` (a job killed mid-stage)."""
    metadata = backup / "training_metadata.json"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if metadata.exists() and json.loads(metadata.read_text())["epoch"] >= epoch:
            _stop(procs if victims is None else victims)
            return
        if any(proc.poll() is not None for proc in procs):
            _stop(procs)
            pytest.fail("a process ended early:\n" + "\n---\n".join(map(_tail, procs)))
        time.sleep(0.05)
    _stop(procs)
    pytest.fail(f"no backup of epoch {epoch} within {limit} s")


def _weights(path):
    values = {}
    with h5py.File(path, "r") as file:
        file.visititems(
            lambda name, node: (
                values.__setitem__(name, node[()])
                if isinstance(node, h5py.Dataset)
                else None
            )
        )
    return values


def _job(tmp):
    """Two processes killed after stage 2's first epoch, then resumed; and one
    process on the same recipe (`distribution: none`)."""
    out = tmp / "run"
    elsewhere = tmp / "process1-output"
    port = _free_port()
    # Process 1 is told another output_dir, which it must not create.
    first = [
        _start(tmp, 0, out, port=port),
        _start(tmp, 1, elsewhere, port=port),
    ]
    # Process 1 dies mid-stage 2; process 0 must end by itself, soon, saying
    # why (its next gradient all-reduce fails).
    _kill_after_epoch(first, out / "backup" / "stage2", 1, victims=first[1:])
    killed_at = time.monotonic()
    try:
        first[0].wait(timeout=PEER_LOST_LIMIT)
    except subprocess.TimeoutExpired:
        _stop(first)
        pytest.fail(
            f"process 0 still runs {PEER_LOST_LIMIT} s after process 1 died:\n"
            + _tail(first[0])
        )
    killed = {
        "process1_output_exists": elsewhere.exists(),
        "logs": [_output(p) for p in first],
        "process0_status": first[0].returncode,
        "process0_seconds": time.monotonic() - killed_at,
    }
    port = _free_port()
    resumed = _finish([_start(tmp, i, out, port=port) for i in (0, 1)])
    single_out = tmp / "single"
    (single,) = _finish(
        [_start(tmp, 2, single_out, args=["--set", "distribution=none"])]
    )
    return {
        "tmp": tmp,
        "out": out,
        "private": tmp / "private-1",
        "single": single_out,
        "killed": killed,
        "logs": resumed,
        "single_log": single,
    }


def _check_resumed(job):
    first0, first1 = job["killed"]["logs"]
    assert "stage 1 done" in first0 and "stage 1 done" in first1
    # Process 0 outlived process 1 by an all-reduce, not by a hang, and said
    # whom it lost and how to go on, with no C++ abort.
    assert job["killed"]["process0_status"] == 1, first0[-3000:]
    assert "process 0 of 2 stopped: an operation across the processes" in first0
    assert "Another process of the job (process 1) most likely died" in first0
    assert "Restart every process with --resume" in first0
    assert "Check failure stack trace" not in first0
    for log in job["logs"]:
        assert "stage 1: done earlier" in log
        assert "stage 2: resuming after epoch 1 of 3" in log
        assert "distribution: data_parallel over 2 devices of 2 processes" in log
    report = json.loads((job["out"] / "report.json").read_text())
    assert report["stage2"]["epochs"] == 3 and report["stage1"]["epochs"] == 1


def _check_identical_weights(job):
    ours = _weights(job["out"] / "stage2.weights.h5")
    theirs = _weights(job["private"] / "stage2.weights.h5")
    assert ours.keys() == theirs.keys() and len(ours) > 20
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def _check_as_one_process(job):
    two = _weights(job["out"] / "stage2.weights.h5")
    one = _weights(job["single"] / "stage2.weights.h5")
    layers = [name for name in two if name.startswith("layers/")]
    assert layers and set(layers) <= set(one)
    for name in layers:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-5)
    # Validation and test numbers are those of one process (the padded last
    # batch weighs nothing).
    a = json.loads((job["out"] / "report.json").read_text())
    b = json.loads((job["single"] / "report.json").read_text())
    assert a["test_accuracy"] == b["test_accuracy"] and a["test_images"] == 270
    assert a["confusion"] == b["confusion"]
    for stage in ("stage1", "stage2"):
        assert a[stage]["val_accuracy"] == pytest.approx(b[stage]["val_accuracy"])
    assert a["stage1"]["test_loss"] == pytest.approx(b["stage1"]["test_loss"], 1e-4)
    two_rows = (job["out"] / "history.csv").read_text().splitlines()
    one_rows = (job["single"] / "history.csv").read_text().splitlines()
    assert len(two_rows) == len(one_rows) == 5
    for mine, single in zip(two_rows[1:], one_rows[1:], strict=True):
        np.testing.assert_allclose(
            [float(v) for v in mine.split(",")],
            [float(v) for v in single.split(",")],
            rtol=1e-4,
        )


def _check_one_writer(job):
    assert not job["killed"]["process1_output_exists"]
    # Process 1's own copy (kept here because KERAZOO_PRIVATE_DIR is set) holds
    # its run; process 0's output_dir holds one run.
    assert (job["private"] / "report.json").exists()
    assert "process 1: process 0 writes the run" in job["logs"][1]
    written = f"written to {job['out']}: report.json"
    assert written in job["logs"][0] and written not in job["logs"][1]


def test_two_processes_resume_and_train_as_one(tmp_path):
    # One test, not four on a shared fixture: pytest-xdist could run the
    # fixture (minutes of training) once for each worker.
    job = _job(tmp_path)
    _check_resumed(job)
    _check_identical_weights(job)
    _check_as_one_process(job)
    _check_one_writer(job)


def test_a_missing_process_ends_the_job_within_the_timeout(tmp_path):
    start = time.monotonic()
    proc = _start(tmp_path, 0, tmp_path / "run", port=_free_port(), timeout=5)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        _stop([proc])
        pytest.fail("process 0 still waits for process 1 after 90 s")
    took = time.monotonic() - start
    text = _output(proc)
    assert proc.returncode == 1, text[-3000:]
    assert "process 1 did not join the coordinator 127.0.0.1:" in text
    assert "within 5 s" in text
    assert took < 60
    assert not (tmp_path / "run").exists()

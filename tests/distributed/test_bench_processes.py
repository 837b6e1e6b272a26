"""benchmarks/bench_processes.py keeps running: a tiny run of 1 and 2
processes, checking what it reports (its numbers are in RESULTS.md)."""

import json

import pytest

pytest.importorskip("jax", reason="data_parallel runs on JAX (the test extra)")

from kerazoo.bench import load_benchmark


def test_bench_processes_reports_throughput_and_efficiency(tmp_path, capsys):
    bench = load_benchmark("bench_processes")
    out = tmp_path / "processes.json"
    args = ["--processes", "1", "2", "--batch", "4", "--steps", "2", "--warmup", "1"]
    rows = bench.main([*args, "--limit", "400", "--json", str(out)])
    assert [(r["processes"], r["devices"]) for r in rows] == [(1, 1), (2, 2)]
    assert all(r["images_per_s"] > 0 for r in rows)
    assert rows[0]["efficiency"] == 1.0
    assert rows[1]["efficiency"] == pytest.approx(
        rows[1]["images_per_s"] / (2 * rows[0]["images_per_s"])
    )
    saved = json.loads(out.read_text())
    assert saved["label"] == "CPU processes on one host" and len(saved["rows"]) == 2
    assert "CPU processes on one host" in capsys.readouterr().out

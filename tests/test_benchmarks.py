"""The benchmarks keep running: a tiny run of each, checking what it reports (not
its speed, which benchmarks/RESULTS.md records)."""

import importlib.util
import json
import pathlib
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    # The benchmarks import their shared `_timing` module from their folder.
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_normalization_reports_ratios(tmp_path, capsys):
    bench = _load("bench_normalization")
    out = tmp_path / "bn.json"
    results = bench.main(["--quick", "--repeats", "1", "--json", str(out)])
    assert set(results) == {"training step", "inference"}
    for r in results.values():
        assert r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
        assert r["a_ms"] > 0 and r["b_ms"] > 0
    assert json.loads(out.read_text())["results"].keys() == results.keys()
    assert "kerazoo vs Keras" in capsys.readouterr().out


def test_bench_optimizers_reports_ratios(tmp_path, capsys):
    bench = _load("bench_optimizers")
    out = tmp_path / "opt.json"
    results = bench.main(
        [
            "--quick",
            "--rules",
            "sgd",
            "adam",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    assert set(results) == {"versus_keras", "nonfinite_guard"}
    for table in results.values():
        assert set(table) == {"sgd", "adam"}
        for r in table.values():
            assert r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
            assert r["a_ms"] > 0 and r["b_ms"] > 0
    assert json.loads(out.read_text())["results"].keys() == results.keys()
    assert "kerazoo vs Keras" in capsys.readouterr().out

"""The benchmarks keep running: a tiny run of each, checking what it reports (not
its speed, which benchmarks/RESULTS.md records)."""

import json

from kerazoo.bench import load_benchmark


def test_bench_normalization_reports_ratios(tmp_path, capsys):
    bench = load_benchmark("bench_normalization")
    out = tmp_path / "bn.json"
    results = bench.main(["--quick", "--repeats", "1", "--json", str(out)])
    assert set(results) == {"training step", "inference"}
    for r in results.values():
        assert r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
        assert r["a_ms"] > 0 and r["b_ms"] > 0
    assert json.loads(out.read_text())["results"].keys() == results.keys()
    assert "kerazoo vs Keras" in capsys.readouterr().out


def test_bench_optimizers_reports_ratios(tmp_path, capsys):
    bench = load_benchmark("bench_optimizers")
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


def test_bench_zoo_reports_ratios_for_train_and_predict(tmp_path):
    bench = load_benchmark("bench_zoo")
    out = tmp_path / "zoo.json"
    results = bench.main(
        [
            *("--models", "resnet50", "--size", "32", "--batch", "2"),
            *("--steps", "1", "--repeats", "1", "--json", str(out)),
        ]
    )
    r = results["resnet50"]
    # The same network, except that keras.applications' convolutions carry
    # biases before their batch norms (26,560 weights that BN cancels).
    assert r["params"][1] - r["params"][0] == 26_560
    for kind in ("train", "predict"):
        assert r[kind]["ratio_min"] <= r[kind]["ratio_median"] <= r[kind]["ratio_max"]
    assert json.loads(out.read_text())["results"].keys() == results.keys()


def test_bench_scaling_reports_utilisation(tmp_path):
    bench = load_benchmark("bench_scaling")
    plot = tmp_path / "scaling.png"
    results = bench.main(
        [
            *("--quick", "--model", "resnet20", "--sizes", "32"),
            *("--batches", "1", "2", "--repeats", "1"),
            *("--plot", str(plot)),
        ]
    )
    assert results["matmul_gflops"] > 0
    assert [(r["size"], r["batch"]) for r in results["rows"]] == [(32, 1), (32, 2)]
    for r in results["rows"]:
        assert 0 < r["share_of_peak"] < 1.5 and r["images_per_s"] > 0
    assert plot.stat().st_size > 5000


def test_kerazoo_bench_checks_targets(tmp_path, capsys):
    from kerazoo.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "normalization", "--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["cpus"] >= 1 and report["quick"] is True
    targets = report["targets"]
    assert [t["what"] for t in targets] == ["training step", "inference"]
    for t in targets:
        assert t["holds"] == (t["ratio"] <= t["target"] == 1.05)
    assert "targets hold" in capsys.readouterr().out
    assert main(["bench", "normalisation"]) == 2
    assert "Unknown benchmark 'normalisation'" in capsys.readouterr().err

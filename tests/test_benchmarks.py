"""The benchmarks keep running: a tiny run of each, checking what it reports (not
its speed, which benchmarks/RESULTS.md records)."""

import json
from pathlib import Path

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
    # The whole-training-step table on resnet20 (the benchmark's ResNet-50
    # takes minutes to trace on 2 cores); the other tables on ResNet-50's
    # first variables (--quick).
    bench = load_benchmark("bench_optimizers")
    out = tmp_path / "opt.json"
    results = bench.main(
        [
            *("--quick", "--rules", "sgd", "adam", "--steps", "1", "--repeats", "1"),
            *("--train-step", "--model", "resnet20", "--size", "32", "--batch", "2"),
            *("--json", str(out)),
        ]
    )
    assert set(results) == {
        "versus_keras",
        "nonfinite_guard",
        "fused_kernels",
        "guard_floor",
        "train_step",
    }
    for table in results.values():
        assert set(table) == {"sgd", "adam"}
        for r in table.values():
            assert r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
            assert r["a_ms"] > 0 and r["b_ms"] > 0
    assert json.loads(out.read_text())["results"].keys() == results.keys()
    printed = capsys.readouterr().out
    assert "kerazoo vs Keras" in printed and "fused kernels vs generic" in printed
    assert "the guard's floor" in printed
    assert "whole training step, resnet20 32x32 batch 2" in printed


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


TINY = Path(__file__).resolve().parent / "finetune" / "tiny.yaml"


def test_bench_pipeline_reports_both_ratios(tmp_path):
    bench = load_benchmark("bench_pipeline")
    out = tmp_path / "pipeline.json"
    results = bench.main(
        [
            *("--model", "resnet20", "--images", "40", "--side", "64"),
            *("--size", "32", "--batch", "8"),
            *("--repeats", "1", "--json", str(out)),
        ]
    )
    assert set(results) == {
        "pipeline alone vs training",
        "fit on the pipeline vs in memory",
    }
    for r in results.values():
        assert r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
        assert r["a_ms"] > 0 and r["b_ms"] > 0
    written = json.loads(out.read_text())
    assert written["images"] == 32 and written["images_per_s"]["pipeline"] > 0


def test_bench_stage1_and_tuner_report_their_ratios(tmp_path):
    stage1 = load_benchmark("bench_stage1").main(
        ["--recipe", str(TINY), "--epochs", "1", "--repeats", "1"]
    )
    r = stage1["cached vs uncached stage 1"]
    assert r["ratio_median"] > 0 and r["a_ms"] > 0 and r["b_ms"] > 0
    assert len(r["test_accuracy"]["cached"]) == 1
    passes = stage1["feature pass folded vs unfolded"]
    assert passes["folding"] == "19 batch norms folded" and passes["images"] == 640
    assert passes["a_ms"] > 0 and passes["b_ms"] > 0
    tuner = load_benchmark("bench_tuner").main(
        [
            *("--recipe", str(TINY), "--trials", "2", "--repeats", "1"),
            *("--set", "search={epochs: 1}"),
        ]
    )
    share = tuner["tuner overhead share"]
    assert 0 < share["ratio_median"] < 1 and share["trials"] == 2
    # keras-tuner's share is what is left of the search after the fits.
    assert share["a_ms"] < share["b_ms"]


def test_bench_serving_reports_each_export_and_the_no_batch_norm_bound(tmp_path):
    from kerazoo.bench import SUITE

    out = tmp_path / "serving.json"
    results = load_benchmark("bench_serving").main(
        [
            *("--quick", "--models", "resnet20", "--size", "32"),
            *("--repeats", "1", "--json", str(out)),
        ]
    )
    for batch in (1, 4):
        for what in (
            "served",
            "served, variables",
            "served unfolded, variables",
            "no batch norm",
        ):
            r = results[f"resnet20 {what} vs Keras, batch {batch}"]
            assert r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
            assert r["a_ms"] > 0 and r["b_ms"] > 0
    assert json.loads(out.read_text())["results"].keys() == results.keys()
    # The targets name the labels a full run reports.
    targets = SUITE["serving"][1]
    assert "resnet50 served vs Keras, batch 16" in targets


def test_bench_serving_puts_keras_silu_back_for_its_swish_variant():
    import keras

    from kerazoo.layers import swish
    from kerazoo.models import create_model

    bench = load_benchmark("bench_serving")
    assert bench.folded_with_keras_silu(create_model("resnet20")) is None
    model = create_model("efficientnet_b0", input_shape=(32, 32, 3))
    with_silu = bench.folded_with_keras_silu(model)
    activations = [
        layer.activation
        for layer in with_silu._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.Activation)
    ]
    assert keras.activations.silu in activations and swish not in activations


def test_gpu_benchmark_runs_each_policy_it_reports(tmp_path):
    # Keras's clear_session() resets the dtype policy: a mixed_bfloat16 row
    # must come from a model that computes in bfloat16.
    bench = load_benchmark("gpu")
    out = tmp_path / "gpu"
    args = ["--quick", "--no-jit", "--models", "mobilenet_v3_small", "--out", str(out)]
    assert bench.main(args) == 0
    rows = [json.loads(line) for line in (out / "gpu.jsonl").read_text().splitlines()]
    timed = [r for r in rows if r["kind"] in ("train", "inference")]
    assert {(r["kind"], r["policy"]) for r in timed} == {
        (kind, policy)
        for kind in ("train", "inference")
        for policy in ("float32", "mixed_bfloat16")
    }
    for r in timed:
        expected = "float32" if r["policy"] == "float32" else "bfloat16"
        assert r["compute_dtypes"] == [expected]
        assert r["images_per_s"] > 0 and 0 < r["utilisation"]
    (versus,) = [r for r in rows if r["kind"] == "vs_keras_applications"]
    assert versus["model"] == "mobilenet_v3_small" and versus["ratio_median"] > 0


def test_compiled_cost_needs_jax_and_says_so(capsys):
    import keras
    import pytest

    if keras.backend.backend() == "jax":
        pytest.skip("checks the error on the other backends")
    bench = load_benchmark("compiled_cost")
    with pytest.raises(SystemExit):
        bench.main(["--models", "resnet50"])
    assert "KERAS_BACKEND=jax" in capsys.readouterr().err


def test_compiled_cost_matches_the_two_networks_op_for_op(tmp_path):
    import keras
    import pytest

    if keras.backend.backend() != "jax":
        pytest.skip("XLA's cost analysis is read through JAX")
    bench = load_benchmark("compiled_cost")
    out = tmp_path / "cost.json"
    args = ["--models", "efficientnet_b0", "--size", "32", "--batch", "2"]
    (row,) = bench.main([*args, "--policy", "mixed_bfloat16", "--json", str(out)])
    assert 0.9 < row["flops_ratio"] < 1.1 and 0.9 < row["bytes_accessed_ratio"] < 1.1
    assert row["kerazoo"]["fusions"] > 100
    # keras.applications normalizes its input inside the network; kerazoo's
    # efficientnet_b0 takes it normalized.
    theirs = row["unmatched_activation_ops"]["keras.applications"]
    assert {"op": "sub", "shape": [2, 32, 32, 3], "count": 1} in theirs
    # Mixed precision: both cast activations between float32 and bfloat16 (the
    # batch norms compute in float32), kerazoo no more often than Keras: its
    # nested stages take bfloat16 inputs.
    casts = row["activation_casts"]
    assert 0 < casts["kerazoo"] <= casts["keras.applications"]
    assert json.loads(out.read_text())["results"][0]["model"] == "efficientnet_b0"


def test_zoo_benchmarks_time_kerazoo_as_the_same_network_as_keras(tmp_path):
    # kerazoo's default ResNet-50 is v1.5 (strided in the 3x3), Keras's is v1:
    # the benchmarks build kerazoo's twin, whose FLOPs differ from Keras's
    # only by the convolution biases Keras keeps before its batch norms.
    from kerazoo.benchmarks import timing
    from kerazoo.models.analysis import flops

    ours = flops(timing.zoo_model("resnet50", 64))
    theirs = flops(timing.zoo_model("resnet50", 64, "keras.applications"))
    assert abs(ours / theirs - 1) < 0.002


def test_bench_data_scale_makes_its_folders_once(tmp_path):
    bench = load_benchmark("bench_data_scale")
    folder, made = bench.dataset_folder(tmp_path, 120, log=lambda line: None)
    files = sorted(folder.rglob("*.jpg"))
    assert len(files) == 120 and len({f.parent.name for f in files}) == 10
    assert 8_000 < made["bytes"] / 120 < 25_000
    # Complete (its marker says so): reused as it is.
    mtime = files[0].stat().st_mtime_ns
    assert bench.dataset_folder(tmp_path, 120, log=print) == (folder, made)
    assert files[0].stat().st_mtime_ns == mtime
    # Cut short (no marker): made again.
    (folder / bench.MARKER).unlink()
    files[0].unlink()
    bench.dataset_folder(tmp_path, 120, log=lambda line: None)
    assert len(list(folder.rglob("*.jpg"))) == 120


def test_bench_data_scale_reports_each_size_and_cache_mode(tmp_path, capsys):
    # Each row is a fresh process; resnet20 with random weights compiles
    # quickly, one size keeps the test short.
    bench = load_benchmark("bench_data_scale")
    out = tmp_path / "out"
    bench.main(
        [
            *("--quick", "--sizes", "60", "--modes", "disk", "none"),
            *("--model", "resnet20", "--weights", "none"),
            *("--cache-dir", str(tmp_path / "data"), "--out", str(out)),
        ]
    )
    report = json.loads((out / "data_scale.json").read_text())
    assert [(r["size"], r["cache"]) for r in report["rows"]] == [
        (60, "disk"),
        (60, "none"),
    ]
    for r in report["rows"]:
        assert r["splits"] == {"train": 40, "validation": 10, "test": 10}
        for key in (
            "first_batch_s",
            "pipeline_images_per_s",
            "stage1_images_per_s",
            "stage2_images_per_s",
            "peak_rss_mib",
        ):
            assert r[key] > 0, key
    assert report["machine"]["cpus"] >= 1 and report["machine"]["tensorflow"]
    # Per cache mode: peak RSS, time to first batch, pipeline vs training.
    assert [g["cache"] for g in report["goals"]] == ["disk"] * 3 + ["none"] * 3
    # The disk caches of the runs are removed; the JPEGs stay for the next run.
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["60"]
    assert (out / "data_scale.png").stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "| images | cache |" in printed and "time to first batch" in printed


def test_bench_seeds_reports_each_seed_and_their_mean(tmp_path, capsys):
    # Each seed is a `kerazoo finetune` process of its own (TensorFlow imported
    # each time): one seed of the tiny recipe, 1 epoch a stage (--quick).
    bench = load_benchmark("bench_seeds")
    out = tmp_path / "seeds"
    result = bench.main(
        [
            *(str(TINY), "--seeds", "1", "--quick", "--out", str(out)),
            *("--set", "head.dropout=0.1"),
        ]
    )
    assert [r["seed"] for r in result["rows"]] == [1]
    for r in result["rows"]:
        assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1
        assert r["wall_seconds"] > r["training_seconds"] > 0
        recipe = (Path(r["output_dir"]) / "recipe.yaml").read_text()
        assert f"seed: {r['seed']}" in recipe and "dropout: 0.1" in recipe
    (row,) = result["rows"]
    summary = result["summary"]["test_accuracy"]
    assert summary == {"mean": row["test_accuracy"], "std": 0.0}
    assert result["machine"]["cpus"] >= 1 and result["quick"] is True
    assert json.loads((out / "seeds.json").read_text())["seeds"] == [1]
    printed = capsys.readouterr().out
    assert "| seed | val accuracy | test accuracy |" in printed
    assert "(mean +- std of 1 seeds)" in printed and "command: " in printed

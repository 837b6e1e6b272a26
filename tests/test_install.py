"""kerazoo installed from its wheel works without the source checkout, and its
command is quiet.

The wheel is built from a copy of the build's inputs (so that the build writes
nothing into the checkout, and no stale `build/` of it can leak into the wheel),
installed into a folder with `pip install --target`, and run from an empty
folder with only that folder on `PYTHONPATH`: an experiment, a benchmark and
`kerazoo models`, in one process that records every file it opens and fails on
any in the checkout.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kerazoo

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("kerazoo", "setup.cfg", "pyproject.toml", "README.md")


# Runs `kerazoo.cli.main` on each argv of argv[2] (JSON) and prints the exit
# codes, where kerazoo was imported from, and the files of the checkout
# (argv[1]) that were opened; the interpreter's own environment (sys.prefix,
# a virtual environment that may sit in the checkout) is not the checkout.
DRIVER = r"""
import json
import os
import sys

checkout = os.path.realpath(sys.argv[1]) + os.sep
environment = os.path.realpath(sys.prefix) + os.sep
opened = set()


def audit(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args:
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            path = os.path.realpath(os.fsdecode(path))
            if path.startswith(checkout) and not path.startswith(environment):
                opened.add(path)


sys.addaudithook(audit)
import kerazoo
from kerazoo.cli import main

codes = [main(argv) for argv in json.loads(sys.argv[2])]
print(json.dumps({"codes": codes, "kerazoo": kerazoo.__file__,
                  "opened": sorted(opened)}))
"""

# Smaller than the experiment's --quick (a minute on 2 cores): seconds.
EXPERIMENT = [
    *("experiment", "optimizers", "--quick"),
    *("--set", "surface_steps=60", "--set", "epochs=2"),
    *("--set", "regime_epochs=1", "--set", "regime_examples=64"),
]


def _run(command, cwd, env, timeout):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the installed folder, the environment that runs it)."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name,
                source / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    offline = ["--no-deps", "--no-index", "--no-build-isolation"]
    _run([*pip, "wheel", *offline, "-w", str(tmp / "dist"), str(source)], tmp, env, 300)
    (wheel,) = (tmp / "dist").glob("kerazoo-*.whl")
    site = tmp / "site"
    _run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        tmp,
        env,
        300,
    )
    return site, {**env, "PYTHONPATH": str(site)}


def test_the_installed_command_runs_an_experiment_and_a_benchmark(installed, tmp_path):
    site, env = installed
    commands = [
        ["models"],
        EXPERIMENT,
        ["bench", "normalization", "--quick", "--json", "bench.json"],
    ]
    result = _run(
        [sys.executable, "-c", DRIVER, str(ROOT), json.dumps(commands)],
        tmp_path,
        env,
        600,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0], result.stderr[-3000:]
    assert Path(report["kerazoo"]).is_relative_to(site)
    assert report["opened"] == [], "files of the source checkout were read"
    experiment = tmp_path / "runs" / "experiments" / "optimizers-quick"
    verdicts = json.loads((experiment / "results.json").read_text())["verdicts"]
    assert len(verdicts) == 6
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert [t["what"] for t in bench["targets"]] == ["training step", "inference"]
    assert "densenet121" in result.stdout and "targets hold" in result.stdout


def test_the_installed_version_imports_no_tensorflow(installed, tmp_path):
    site, env = installed
    result = _run(
        [str(site / "bin" / "kerazoo"), "--version"],
        tmp_path,
        {**env, "PYTHONPROFILEIMPORTTIME": "1"},
        120,
    )
    assert result.stdout.strip() == f"kerazoo {kerazoo.__version__}"
    imported = re.findall(r"\|\s+([\w.]+)$", result.stderr, re.M)
    assert "kerazoo.cli" in imported
    assert not {"keras", "tensorflow", "jax", "torch"} & set(imported)


def test_the_wheel_holds_every_file_the_package_reads(installed):
    site, _ = installed
    data = [
        p.relative_to(ROOT)
        for p in (ROOT / "kerazoo").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    assert len(data) >= 8  # the experiments' and the benchmarks' recipes
    assert [p for p in data if not (site / p).is_file()] == []


def test_the_packaged_benchmark_recipes_are_the_checkouts():
    # `kerazoo bench stage1` and `tuner` time the quickstart recipes as the
    # checkout has them (benchmarks/RESULTS.md).
    packaged = sorted((ROOT / "kerazoo" / "benchmarks" / "recipes").glob("*.yaml"))
    assert [p.name for p in packaged] == ["quickstart.yaml", "tune_quickstart.yaml"]
    for path in packaged:
        assert path.read_text() == (ROOT / "recipes" / path.name).read_text()

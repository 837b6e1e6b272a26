"""The catalog (`kerazoo/catalog.json`, read without Keras) and the table of
`docs/models.md` say what the registry builds; `kerazoo models` reads the
catalog and imports no Keras or TensorFlow."""

import json
import pathlib
import subprocess
import sys

import pytest

from kerazoo import catalog
from kerazoo.models import list_models
from kerazoo.models import model_info
from kerazoo.models.catalog import BEGIN
from kerazoo.models.catalog import builtin_models
from kerazoo.models.catalog import catalog_json
from kerazoo.models.catalog import main
from kerazoo.models.catalog import with_table

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = "run `python -m kerazoo.models.catalog` to regenerate it"


def test_shipped_catalog_is_the_registrys():
    shipped = (ROOT / "kerazoo" / "catalog.json").read_text()
    assert shipped == catalog_json(), f"kerazoo/catalog.json is stale: {FIX}"
    # Models that other tests or docs examples register in this process are
    # not the zoo's.
    assert catalog.names() == builtin_models()
    assert set(builtin_models()) <= set(list_models())
    entry = catalog.entry("resnet50")
    info = model_info("resnet50")
    assert entry["params"] == info.params == 25_557_032
    assert [w["tag"] for w in entry["weights"]] == list(info.weights)
    assert catalog.names("mobilenet_v3_*") == list_models("mobilenet_v3_*")
    assert catalog.entry("no_such_model") is None


def test_models_page_table_is_current():
    page = (ROOT / "docs" / "models.md").read_text()
    models = json.loads(catalog_json())["models"]
    assert page == with_table(page, models), f"docs/models.md is stale: {FIX}"
    assert all(f"| `{m['name']}` |" in page for m in models)


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    (tmp_path / "kerazoo").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "kerazoo" / "catalog.json").write_text("{}")
    (tmp_path / "docs" / "models.md").write_text(
        f"# Zoo\n{BEGIN}\nold\n<!-- end of catalog -->\n"
    )
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale" in capsys.readouterr().out
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    assert "| `resnet50` |" in (tmp_path / "docs" / "models.md").read_text()
    (tmp_path / "docs" / "models.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="no catalog markers"):
        main(["--root", str(tmp_path)])


# Runs `kerazoo models` in a fresh interpreter and reports whether TensorFlow
# or Keras was imported.
PROBE = """
import sys
from kerazoo.cli import main
code = main(["models", "mobilenet*"])
print("CODES", code, "tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_models_command_imports_no_keras():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "mobilenet_v3_small" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "CODES 0 False False"

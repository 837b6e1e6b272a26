"""The README's and docs/' Python examples run as written, and their links
resolve."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [
    README,
    *DOCS,
    ROOT / "recipes/README.md",
    ROOT / "benchmarks/README.md",
    ROOT / "benchmarks/RESULTS.md",
    ROOT / "saved_models/README.md",
]

# ```python blocks run; ```py blocks are shown only (they need files that the
# reader has and the tests do not).
PYTHON = re.compile(r"```python\n(.*?)```", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _run_examples(page, tmp_path, monkeypatch):
    blocks = PYTHON.findall(page.read_text())
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(page), "exec"), {"__name__": "__readme__"})
    return blocks


def test_readme_layers_example_runs(tmp_path, monkeypatch):
    assert _run_examples(README, tmp_path, monkeypatch), "no Python example"
    assert (tmp_path / "blocks.keras").exists()


@pytest.mark.parametrize(
    "page",
    [page for page in DOCS if PYTHON.search(page.read_text())],
    ids=lambda page: page.name,
)
def test_docs_examples_run(page, tmp_path, monkeypatch):
    _run_examples(page, tmp_path, monkeypatch)


def _anchors(page):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{page.name}: links that do not resolve: {broken}"

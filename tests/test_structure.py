"""kerazoo is layered without import cycles (docs: DESIGN.md, "Layout").

The graph counts every import statement, at module level and inside functions;
relative imports are resolved against the importing module's package. An import
names the module whose namespace it reads: `import a.b` and `from a.b import f`
name `a.b`; `from a import b` names `a`, and the module `a.b` too when `b` is
one. (Importing `a.b` runs `a`'s `__init__` first, as it does for every module
of a package: that is not counted.) So a package's `__init__` that imports a
module which does `from package import sibling` is a cycle: the module reads
the package while the package is still being imported.
"""

import ast
import pathlib
import textwrap

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kerazoo"


def _modules(root):
    """Dotted module name -> (path, whether it is a package's `__init__`)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


def _known(name, modules):
    """The module that importing `name` names: `name` itself, or the longest
    prefix of it that is a module (`pkg.mod.function` -> `pkg.mod`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node, module, is_package):
    """Dotted names an `import` / `from ... import` statement in `module` names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        # `from . import x` in a package's __init__ is relative to the package
        # itself; in a plain module, to the package that holds it.
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module
    # `from pkg import name` reads `pkg`, and imports `pkg.name` too when it
    # is a submodule.
    return [source, *(f"{source}.{alias.name}" for alias in node.names)]


def import_graph(root):
    """`{module: {imported module: first line}}` over the package at `root`."""
    modules = _modules(root)
    graph = {name: {} for name in modules}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported(node, module, is_package):
                target = _known(name, modules)
                if target is not None and target != module:
                    line = graph[module].get(target, node.lineno)
                    graph[module][target] = min(line, node.lineno)
    return graph


def _reachable(graph, start):
    seen, stack = {start}, [start]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def cycles(graph):
    """The strongly connected components of more than one module, sorted."""
    reach = {module: _reachable(graph, module) for module in graph}
    components = {
        frozenset(m for m in reach[module] if module in reach[m]) for module in graph
    }
    return sorted(sorted(c) for c in components if len(c) > 1)


def describe(graph, component):
    """A cycle's imports, one per line: `a -> b (line N)`."""
    inside = set(component)
    return "\n".join(
        f"  {module} -> {target} (line {line})"
        for module in component
        for target, line in sorted(graph[module].items())
        if target in inside
    )


def test_kerazoo_has_no_import_cycles():
    graph = import_graph(PACKAGE)
    assert "kerazoo.models.registry" in graph, "kerazoo's modules not found"
    found = cycles(graph)
    assert not found, "import cycles in kerazoo:\n" + "\n".join(
        f"cycle of {len(c)}: {', '.join(c)}\n{describe(graph, c)}" for c in found
    )


# kerazoo's layers, lowest first: a module imports only from its own package
# and from packages of lower layers. (The weights code takes a built model, so
# `weights` sits below `models`, whose `create_model(weights=...)` calls it.)
LAYERS = [
    [
        "kerazoo",
        "kerazoo.api",
        "kerazoo._checks",
        "kerazoo._compat",
        "kerazoo._files",
        "kerazoo._session",
        "kerazoo._quiet",
        "kerazoo.catalog",
    ],
    ["kerazoo.layers", "kerazoo.optimizers", "kerazoo.initializers"],
    ["kerazoo.testing", "kerazoo.weights"],
    ["kerazoo.models"],
    ["kerazoo.data"],
    ["kerazoo.recipes", "kerazoo.distributed"],
    ["kerazoo.export", "kerazoo.demo", "kerazoo.experiments"],
    ["kerazoo.finetune"],
    ["kerazoo.tuning"],
    ["kerazoo.benchmarks", "kerazoo.bench"],
    ["kerazoo.cli"],
]


def _package(module):
    return ".".join(module.split(".")[:2])


def test_kerazoo_imports_only_downward():
    level = {name: i for i, names in enumerate(LAYERS) for name in names}
    graph = import_graph(PACKAGE)
    unplaced = sorted({_package(m) for m in graph} - set(level))
    assert not unplaced, f"packages with no layer in LAYERS: {unplaced}"
    upward = [
        f"  {module} -> {target} (line {line})"
        for module, targets in sorted(graph.items())
        for target, line in sorted(targets.items())
        if _package(target) != _package(module)
        and level[_package(target)] >= level[_package(module)]
    ]
    assert not upward, "imports that are not downward:\n" + "\n".join(upward)


def _write_package(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


@pytest.mark.parametrize(
    "files, cycle",
    [
        (  # a function-local import closes the cycle
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import f\n",
                "pkg/b.py": "def f():\n    from pkg import a\n",
            },
            ["pkg.a", "pkg.b"],
        ),
        (  # relative imports, in a module and in a package's __init__
            {
                "pkg/__init__.py": "from . import sub\n",
                "pkg/sub/__init__.py": "from .leaf import x\n",
                "pkg/sub/leaf.py": "from .. import sub\nx = 1\n",
            },
            ["pkg", "pkg.sub", "pkg.sub.leaf"],
        ),
        (  # `from package import module` names the module
            {
                "pkg/__init__.py": "",
                "pkg/one.py": "from pkg import two\n",
                "pkg/two.py": "import pkg.one.thing\n",
            },
            ["pkg.one", "pkg.two"],
        ),
        (  # ... and the package, which is still being imported
            {
                "pkg/__init__.py": "from pkg.engine import run\n",
                "pkg/engine.py": "from pkg import helpers\n\ndef run():\n    pass\n",
                "pkg/helpers.py": "",
            },
            ["pkg", "pkg.engine"],
        ),
    ],
)
def test_the_graph_finds_every_kind_of_cycle(tmp_path, files, cycle):
    graph = import_graph(_write_package(tmp_path, files))
    assert cycles(graph) == [cycle]


def test_the_graph_leaves_an_acyclic_package_alone(tmp_path):
    files = {
        "pkg/__init__.py": "from pkg.top import run\n",
        "pkg/top.py": "import os\n\nfrom .low import f\n\n\ndef run():\n"
        "    import pkg.low.f\n",
        "pkg/low.py": "import numpy\n\n\ndef f():\n    pass\n",
    }
    graph = import_graph(_write_package(tmp_path, files))
    assert graph == {"pkg": {"pkg.top": 1}, "pkg.low": {}, "pkg.top": {"pkg.low": 3}}
    assert cycles(graph) == []

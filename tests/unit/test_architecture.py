"""The package's shape, checked from its source: no import circles, Bytewax and I/O only where they belong.

Every ``import`` counts, also one inside a function (a late import is still a dependency: it only hides a
circle until the function runs); imports under ``if TYPE_CHECKING:`` do not (they never run).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "aiotstream"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The modules ``path`` imports: aiotstream modules by name (a name imported from a package that is a
    submodule counts as that submodule), others by their top-level package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in node.body for n in ast.walk(child)}
    me = _module(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
    return {m if m.startswith("aiotstream") else m.split(".")[0] for m in out if m}


def graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PKG.rglob("*.py")}
    return {m: {i for i in _imports(p, set(files)) if i in files and i != m} for m, p in files.items()}


def external(prefix: str) -> dict[str, set[str]]:
    """Each aiotstream module that imports a non-aiotstream package whose name starts with ``prefix``."""
    files = {_module(p): p for p in PKG.rglob("*.py")}
    found = {m: {i for i in _imports(p, set(files)) if i.startswith(prefix)} for m, p in files.items()}
    return {m: s for m, s in found.items() if s}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle_and_a_late_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    g = graph()
    assert "aiotstream.records" in g["aiotstream.io.files"]  # a module-level import
    assert "aiotstream.io.broker" in g["aiotstream.cli"]  # a late import inside a function counts too


def test_no_import_circles() -> None:
    assert cycles(graph()) == []


def _package(module: str) -> str:
    """``aiotstream.pdm.asset`` -> ``pdm``; a top-level module keeps its name (``records``, ``cli``)."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def test_only_dataflow_and_io_import_bytewax() -> None:
    users = {m for m in external("bytewax")}
    assert users, "the checker found no Bytewax import at all"
    assert {m for m in users if _package(m) not in ("dataflow", "io")} == set()


PURE = ("codecs", "features", "models", "decisions", "kpi", "pdm", "energy", "sim", "records",
        "units", "windows", "lineage", "config")
"""Packages and modules that run without Bytewax or any I/O, so each is testable alone."""


def test_pure_packages_import_neither_io_nor_dataflow() -> None:
    g = graph()
    bad = {(m, i) for m, deps in g.items() if _package(m) in PURE
           for i in deps if _package(i) in ("io", "dataflow", "cli")}
    assert bad == set()


LAYERS = [("dataflow",), ("pdm", "energy"), ("decisions",), ("models", "features", "kpi")]
"""Imports point one way: a layer may import the layers below it, never one above."""


def test_imports_point_one_way() -> None:
    g = graph()
    rank = {p: i for i, layer in enumerate(LAYERS) for p in layer}
    upward = {(m, i) for m, deps in g.items() for i in deps
              if _package(m) in rank and _package(i) in rank and rank[_package(i)] < rank[_package(m)]}
    assert upward == set()
    # the two flows' logic does not import each other: what they share lives below them
    assert {(m, i) for m, deps in g.items() for i in deps if {_package(m), _package(i)} == {"pdm", "energy"}} == set()


MODULE_NAMES_ONCE = {"analysis", "ingest", "alerts", "control", "dataflow", "simulator", "kpi", "config", "codecs"}
"""Modules of the package (now or before issue 16's move) that ``from aiotstream import x`` could name."""


COMPILED = {"aiotstream._kernels", "aiotstream._streaming"}
"""The Cython extensions setup.py builds (ext/): modules without a .py file."""


def test_every_aiotstream_import_names_a_module_that_exists() -> None:
    """A stale path (a module moved away) must fail here, not resolve to another checkout's copy."""
    root = PKG.parent
    modules = {_module(p) for p in PKG.rglob("*.py")}
    missing = set()
    for folder in ("aiotstream", "tests", "flows", "benchmarks"):
        for path in (root / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                missing.update((str(path.relative_to(root)), n) for n in names
                               if n.startswith("aiotstream") and n not in modules and n not in COMPILED)
                if isinstance(node, ast.ImportFrom) and node.module == "aiotstream":  # from aiotstream import x
                    missing.update((str(path.relative_to(root)), f"aiotstream.{a.name}") for a in node.names
                                   if (PKG / a.name).is_dir() is False and not (PKG / f"{a.name}.py").exists()
                                   and a.name in MODULE_NAMES_ONCE)
    assert missing == set()


def test_a_snapshot_written_before_the_move_resumes() -> None:
    """Recovery snapshots name classes by module; one taken before issue 16 names aiotstream.analysis,
    aiotstream.alerts, ... and must still load, into the classes where they live now."""
    import pickle
    import sys
    import types

    from aiotstream.config import default_site
    from aiotstream.dataflow.snapshots import loads
    from aiotstream.decisions.alerts import AlertBook
    from aiotstream.decisions.maintenance import MaintenanceSchedule
    from aiotstream.kpi.tracker import KpiTracker, _Period
    from aiotstream.pdm.asset import AssetAnalyzer
    from aiotstream.pdm.runtime import SiteRuntime

    rt = SiteRuntime(default_site(1))
    analyzer = AssetAnalyzer(rt, "asset-000")
    analyzer.kpi.count("windows", 1, 0)  # an open KPI period: a private class of the tracker
    old = {AssetAnalyzer: "aiotstream.analysis", AlertBook: "aiotstream.alerts", MaintenanceSchedule: "aiotstream.alerts",
           KpiTracker: "aiotstream.kpi", _Period: "aiotstream.kpi"}
    saved = {cls: cls.__module__ for cls in old}
    fakes = {name: types.ModuleType(name) for name in set(old.values())}
    try:
        for cls, name in old.items():  # pickle as the code before the move did
            cls.__module__ = name
            setattr(fakes[name], cls.__name__, cls)
        sys.modules.update(fakes)
        blob = pickle.dumps(analyzer, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for cls, module in saved.items():
            cls.__module__ = module
        for name in fakes:
            sys.modules.pop(name, None)
    assert b"aiotstream.analysis" in blob and b"aiotstream.alerts" in blob and b"_Period" in blob
    back = loads(blob).attach(rt)
    assert type(back) is AssetAnalyzer and type(back.book) is AlertBook and type(back.schedule) is MaintenanceSchedule
    assert type(back.kpi) is KpiTracker and all(type(p) is _Period for p in back.kpi.periods.values())
    assert back.on_items([], 0.0) == []


def test_the_compiled_modules_named_are_the_ones_setup_builds() -> None:
    """COMPILED above lists what setup.py builds, no more: a name left there after a kernel module is gone
    would let a stale import through."""
    built = set(re.findall(r'Extension\(\s*"([\w.]+)"', (PKG.parent / "setup.py").read_text(encoding="utf-8")))
    assert built == COMPILED

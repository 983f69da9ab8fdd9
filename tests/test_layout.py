"""The layout is the architecture: benchmarks/ is split by stage, each stage imports only the
stages below it, and results/ holds data only. Read from the source with `ast`, so an import
inside a function counts as much as one at the top of a module."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "benchmarks"

# What each part of benchmarks/ may import (a stage folder, or a module at the top of the
# package). models/ and metrics/ sit outside benchmarks/ and may be imported by any part.
ALLOWED = {
    "core": set(),  # runtime, process group, lock, atomic writes, errors: the floor
    "data": {"core"},  # datasets, cached on disk
    "config": {"core"},  # YAML configs, and recorded configs read back (run and report both compare them)
    "plugins": {"core"},  # --plugin files and modules
    "reporting": {"core", "config"},  # reads only what runs wrote: it knows nothing of how they were trained
    "evaluation": {"core", "reporting"},  # the statistics (bootstrap intervals) and figure writer of reporting
    "training": {"core", "config", "data", "evaluation", "reporting"},  # a run is trained, scored, then reported
    "perf": {"core", "config", "data", "evaluation", "training"},  # times the training loop and the metrics
    "study": {"core", "config"},  # a study file, its trials and the selection: configs for `run`, nothing run
    # finished runs read back as Python objects (load_run, load_study): a run is rebuilt as training builds it
    "api": {"core", "config", "plugins", "data", "evaluation", "training"},
    "cli": {"core", "config", "plugins", "data", "reporting", "evaluation", "training", "perf", "study", "api"},  # wires them
    "__main__": {"cli"},
    "__init__": {"api"},  # exports load_run and load_study, imported on first use
}


def _part(module):
    """The part of benchmarks/ a dotted module name belongs to: 'benchmarks.core.io' -> 'core'."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_parts(path):
    """The parts of benchmarks/ that the module at `path` imports, absolute or relative."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from benchmarks import cli` names a module of the package, not a name in it
            targets = [f"{base}.{a.name}" for a in node.names] if base == "benchmarks" else [base]
        else:
            continue
        out |= {_part(t) for t in targets if t == "benchmarks" or t.startswith("benchmarks.")}
    return out


def _graph():
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(_module_name(path)) if path.parent != PACKAGE else path.stem
        graph.setdefault(part, set()).update(_imported_parts(path) - {part})
    return graph


def test_every_part_has_a_row_and_imports_only_what_it_may():
    graph = _graph()
    assert set(graph) <= set(ALLOWED), f"add a row to ALLOWED for {sorted(set(graph) - set(ALLOWED))}"
    upward = {part: sorted(deps - ALLOWED[part]) for part, deps in graph.items() if deps - ALLOWED[part]}
    assert not upward, f"imports outside the allowed table: {upward}"


def test_nothing_imports_the_cli():
    assert [part for part, deps in _graph().items() if "cli" in deps and part != "__main__"] == []


def test_only_the_cli_and_the_package_import_the_api():
    assert sorted(part for part, deps in _graph().items() if "api" in deps) == ["__init__", "cli"]


def test_no_import_cycle():
    graph, done, path = _graph(), set(), []

    def visit(part):
        assert part not in path, f"import cycle: {' -> '.join(path[path.index(part):] + [part])}"
        if part in done:
            return
        path.append(part)
        for dep in sorted(graph.get(part, ())):
            visit(dep)
        path.pop()
        done.add(part)

    for part in sorted(graph):
        visit(part)


def test_the_graph_sees_relative_and_lazy_imports():
    """The parser itself: run.py imports evaluation relatively and data inside a function."""
    assert {"core", "config", "data", "evaluation", "reporting"} <= _imported_parts(PACKAGE / "training" / "run.py")


def test_results_hold_no_code():
    assert sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results").rglob("*.py")) == []

"""The layout is the architecture. benchmarks/ is split into stages in pipeline order, data ->
training -> evaluation -> reporting, and a stage imports only the stages before it and the floor
below them all (core: runtime, errors, atomic io, the evaluation protocol, the shared statistics;
and config). The tools that use the stages (perf, study, api) sit above them and only cli/ wires
them together. models/ and metrics/ are libraries below the whole harness: they never import it.
No module imports another in a circle, no private name crosses a module, and results/ holds data
only. Read from the source with `ast`, so an import inside a function counts as much as one at the
top of a module."""
import ast

from tests.helpers import ROOT

PACKAGE = ROOT / "benchmarks"
LIBRARIES = ("models", "metrics")  # outside benchmarks/; any part of it may import them

# The floor: what every stage may import. core imports nothing of benchmarks/.
FLOOR = {
    "core": set(),  # runtime, process group, lock, atomic io, errors, evaluation protocol, shared statistics
    "config": {"core"},  # YAML configs, and recorded configs read back (run and report both compare them)
}
# The stages in pipeline order: each may import the floor and the stages before it, never a later one.
STAGES = ["data", "training", "evaluation", "reporting"]
# Above the stages: each row says what the part may import.
TOOLS = {
    "plugins": {"core"},  # --plugin files and modules
    "perf": {"core", "config", "data", "evaluation", "training"},  # times the training loop and the metrics
    "study": {"core", "config"},  # a study file, its trials and the selection: configs for `run`, nothing run
    # finished runs read back as Python objects (load_run, load_study): a run is rebuilt as training builds it
    "api": {"core", "config", "plugins", "data", "evaluation", "training"},
    "cli": {"core", "config", "plugins", "data", "reporting", "evaluation", "training", "perf", "study", "api"},
    "__main__": {"cli"},
    "__init__": {"api"},  # exports load_run and load_study, imported on first use
}


def allowed(part):
    """What a part of benchmarks/ may import."""
    if part in STAGES:
        return set(FLOOR) | set(STAGES[:STAGES.index(part)])
    return FLOOR.get(part, TOOLS.get(part))


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for top in ("benchmarks", *LIBRARIES) for p in (ROOT / top).rglob("*.py")}


def _part(module):
    """The part of benchmarks/ a dotted module name belongs to: 'benchmarks.core.io' -> 'core'."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path):
    """The dotted names the module at `path` imports (absolute, relative and lazy), each with the
    names it takes from it: [(module, [names])]. `from benchmarks import cli` gives benchmarks.cli."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:  # a name that is a module of the package is that module
                out += [(f"{base}.{a.name}", []) if f"{base}.{a.name}" in MODULES else (base, [a.name])]
    return out


def _imported_parts(path):
    """The parts of benchmarks/ that the module at `path` imports."""
    return {_part(m) for m, _ in _imports(path) if m == "benchmarks" or m.startswith("benchmarks.")}


def _graph():
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(_module_name(path)) if path.parent != PACKAGE else path.stem
        graph.setdefault(part, set()).update(_imported_parts(path) - {part})
    return graph


def _module_graph():
    """{module: the project modules it imports} over benchmarks/, models/ and metrics/."""
    return {name: {m for m, _ in _imports(path) if m in MODULES} - {name} for name, path in MODULES.items()}


def _cycle(graph):
    """One import circle of `graph` as a list of nodes (first == last), or None."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            found = visit(dep)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    return next((c for c in map(visit, sorted(graph)) if c), None)


def test_every_part_has_a_row_and_imports_only_what_it_may():
    graph = _graph()
    unknown = sorted(p for p in graph if allowed(p) is None)
    assert not unknown, f"place {unknown} in FLOOR, STAGES or TOOLS"
    upward = {part: sorted(deps - allowed(part)) for part, deps in graph.items() if deps - allowed(part)}
    assert not upward, (f"imports outside the layout: {upward}. A stage imports only the floor (core, config) and "
                        f"the stages before it ({' -> '.join(STAGES)}); move what two stages share into core/, or "
                        "let the CLI pass it in.")


def test_no_stage_imports_a_later_one():
    graph = _graph()
    later = {s: sorted(graph.get(s, set()) & set(STAGES[i + 1:])) for i, s in enumerate(STAGES)}
    assert not any(later.values()), later
    assert all(not graph.get(f, set()) & (set(STAGES) | set(TOOLS)) for f in FLOOR), "the floor imports a stage"


def test_reporting_reads_only_what_runs_wrote():
    """Narrower than the order allows: reporting knows nothing of how the runs were trained or scored."""
    assert _graph()["reporting"] <= {"core", "config"}


def test_nothing_imports_the_cli():
    assert [part for part, deps in _graph().items() if "cli" in deps and part != "__main__"] == []


def test_only_the_cli_and_the_package_import_the_api():
    assert sorted(part for part, deps in _graph().items() if "api" in deps) == ["__init__", "cli"]


def test_the_libraries_never_import_the_harness():
    harness = {name: sorted(m for m in deps if m.split(".")[0] == "benchmarks")
               for name, deps in _module_graph().items() if name.split(".")[0] in LIBRARIES}
    assert not any(harness.values()), {k: v for k, v in harness.items() if v}


def test_no_import_cycle_between_parts():
    assert _cycle(_graph()) is None, f"import cycle: {' -> '.join(_cycle(_graph()))}"


def test_no_import_circle_between_modules():
    """Over benchmarks/, models/ and metrics/, module by module, lazy imports included (one inside a
    function still makes the two modules depend on each other)."""
    cycle = _cycle(_module_graph())
    assert cycle is None, f"import circle: {' -> '.join(cycle)}"


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_private_name_crosses_a_module():
    """`from x import _name` and `x._name` between modules of the project: a name another module
    needs is part of its module's interface, so it goes without the underscore."""
    crossing = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        imported = {}
        for module, names in _imports(path):
            if module not in MODULES:
                continue
            crossing += [f"{name}: {module}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
            imported[module.rpartition(".")[2]] = module
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                crossing.append(f"{name}: {imported[node.value.id]}.{node.attr}")
    assert not crossing, crossing


def test_the_graph_sees_relative_and_lazy_imports():
    """The parser itself: run.py imports data inside a function and core relatively; cli/run.py
    imports reporting inside a function; models/registry.py imports the search module."""
    assert {"core", "config", "data"} <= _imported_parts(PACKAGE / "training" / "run.py")
    assert "reporting" in _imported_parts(PACKAGE / "cli" / "run.py")
    graph = _module_graph()
    assert "models.search" in graph["models.registry"] and "benchmarks.cli" in graph["benchmarks.__main__"]


def test_results_hold_no_code():
    assert sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results").rglob("*.py")) == []

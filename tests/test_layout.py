"""The package's shape: one package per pipeline stage, no import cycle, no module over 450 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "replayer"
STAGES = ("traces", "workload", "prompts", "send", "run", "analysis", "sim", "bench", "cli")
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The replayer modules `path` imports, at any depth (function-level imports count too); `from
    replayer.x import y` names module `replayer.x.y` when that is a module, else `replayer.x`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("replayer"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in known else node.module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_each_pipeline_stage_is_a_package():
    assert all((PACKAGE / stage / "__init__.py").is_file() for stage in STAGES)


def test_no_import_cycle_inside_the_package():
    known = set(modules())
    graph = {name: imports_of(path, known) for name, path in modules().items()}
    assert [name for name, targets in graph.items() if "replayer" in targets] == []  # it only re-exports the API
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_over_450_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_tests_mirror_the_packages():
    """Each tests/<package>/test_<module>.py names a module of that package (test_main.py: its `main`)."""
    tests = Path(__file__).resolve().parent
    assert all((tests / stage).is_dir() for stage in STAGES)
    stray = [str(path.relative_to(tests)) for stage in STAGES for path in (tests / stage).glob("test_*.py")
             if not (PACKAGE / stage / f"{path.stem[5:]}.py").is_file() and path.stem != "test_main"]
    assert stray == []


def test_the_design_map_and_the_readme_name_every_module():
    """docs/design.md's layout table has a row for each module; the README's names each under its package."""
    root = PACKAGE.parent
    design = (root / "docs" / "design.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    unmapped, unnamed = [], []
    for path in modules().values():
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name != "__init__.py" or relative == "__init__.py":
            if f"`{relative}`" not in design:
                unmapped.append(relative)
        package, _, module = relative.rpartition("/")
        if package and module != "__init__.py":
            row = next((line for line in readme.splitlines() if line.startswith(f"| `replayer/{package}/`")), "")
            if f"`{module[:-3]}`" not in row:
                unnamed.append(relative)
    assert (unmapped, unnamed) == ([], [])


def test_the_api_is_importable_by_name_and_run_is_the_function():
    """`replayer.run` is the API function even though `replayer/run/` is also a package: the package's
    names are bound after its submodules load, and every name in `__all__` resolves."""
    import replayer

    assert callable(replayer.run) and replayer.run.__module__ == "replayer.api"
    assert all(getattr(replayer, name) is not None for name in replayer.__all__)

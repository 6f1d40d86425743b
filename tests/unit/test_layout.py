"""The architecture, checked: asyncup's parts, the order they build on each other, and what
each may import. Read from the source (an AST walk), so a violation names its line.

    _core (sans-IO) <- _concurrency <- _s3 (the boundary) <- _pipeline <- _scaleout <- _cli
    asyncup/__init__.py, parallel.py, direct.py, dask.py: public faces, on top of everything
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import asyncup

ROOT = Path(asyncup.__file__).parent
# Each part, with the layer it sits on: a module imports only from its own layer or below.
LAYERS = {
    "_core": 0,
    "_concurrency": 1,
    "_s3": 2,
    "_pipeline": 3,
    "_scaleout": 4,
    "_cli": 5,
    "": 6,  # asyncup/__init__.py, __main__.py, parallel.py, direct.py, dask.py
}
FACES = {"asyncup", "asyncup.__main__", "asyncup.parallel", "asyncup.direct", "asyncup.dask"}
# Third-party packages confined to one part: (allowed module prefixes).
CONFINED = {
    "botocore": ("asyncup._s3.",),
    "aiobotocore": ("asyncup._s3.",),
    "aiohttp": ("asyncup._s3.",),
    "distributed": ("asyncup._scaleout.dask_", "asyncup.dask"),
    "dask": ("asyncup._scaleout.dask_", "asyncup.dask"),
    "rich": ("asyncup._cli.",),
    "moto": ("asyncup._cli.demo",),
}
HTTP_AND_ASYNC = ("botocore", "aiobotocore", "aiohttp", "anyio", "asyncio", "distributed")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of asyncup, or a third-party top-level package
    name: str | None  # the name taken from it (``from target import name``), if any
    line: int

    def __str__(self) -> str:
        what = self.target if self.name is None else f"{self.name} from {self.target}"
        return f"{self.importer}:{self.line} imports {what}"


def module_name(path: Path) -> str:
    parts = ("asyncup", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def part(module: str) -> str:
    """'_core' for asyncup._core.plan, '' for the public faces."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[1] in LAYERS and pieces[1] else ""


def imports(module: str) -> Iterator[Import]:
    """Every import in ``module``, at any depth (a function's own imports count too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, None, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES:
                    yield Import(module, submodule, None, node.lineno)
                else:
                    yield Import(module, target, alias.name, node.lineno)


ALL_IMPORTS = [found for module in MODULES for found in imports(module)]
INTERNAL = [i for i in ALL_IMPORTS if i.target == "asyncup" or i.target.startswith("asyncup.")]


def test_every_module_belongs_to_a_part() -> None:
    entries = sorted(p.name for p in ROOT.iterdir() if p.name != "__pycache__")
    assert entries == sorted(
        [
            *(name for name in LAYERS if name),
            *("__init__.py", "__main__.py", "dask.py", "direct.py", "parallel.py", "py.typed"),
        ]
    ), "a new top-level entry: put it in a part (and in LAYERS)"
    for module in MODULES:
        assert part(module) or module in FACES, f"{module} is in no part"


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for found in INTERNAL:
        if found.target in MODULES and found.target != found.importer:
            graph[found.importer].add(found.target)
    # A package's __init__ is imported on the way to its modules: that edge is not a cycle.
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_each_part_imports_only_from_below() -> None:
    upward = [
        str(found)
        for found in INTERNAL
        if found.target != "asyncup" and LAYERS[part(found.target)] > LAYERS[part(found.importer)]
    ]
    assert not upward, "\n".join(upward)


def test_no_private_name_crosses_a_part() -> None:
    crossing = [
        str(found)
        for found in INTERNAL
        if found.name is not None
        and found.name.startswith("_")
        and not found.name.startswith("__")
        and part(found.target) != part(found.importer)
    ]
    assert not crossing, "\n".join(crossing)


def test_third_party_packages_stay_in_their_part() -> None:
    wrong = [
        str(found)
        for found in ALL_IMPORTS
        if (allowed := CONFINED.get(found.target.split(".")[0])) is not None
        and not found.importer.startswith(allowed)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_core_neither_awaits_nor_imports_io() -> None:
    for module in (m for m in MODULES if part(m) == "_core"):
        tree = ast.parse(MODULES[module].read_text())
        awaits = [
            n.lineno for n in ast.walk(tree) if isinstance(n, ast.Await | ast.AsyncFunctionDef)
        ]
        assert not awaits, f"{module} awaits at lines {awaits}"
    core_imports = [i for i in ALL_IMPORTS if part(i.importer) == "_core"]
    wrong = [str(i) for i in core_imports if i.target.split(".")[0] in HTTP_AND_ASYNC]
    wrong += [
        str(i)
        for i in core_imports
        if i.target.startswith("asyncup.") and part(i.target) != "_core"
    ]
    assert not wrong, "\n".join(wrong)


PURITY_PROBE = """
import importlib, json, pkgutil, sys, types
# Load asyncup._core without running asyncup/__init__.py (it loads core modules too).
stub = types.ModuleType("asyncup")
stub.__path__ = [sys.argv[1]]
sys.modules["asyncup"] = stub
core = importlib.import_module("asyncup._core")
loaded = [importlib.import_module(f"asyncup._core.{m.name}").__name__
          for m in pkgutil.iter_modules(core.__path__)]
print(json.dumps({"loaded": loaded, "modules": sorted(sys.modules)}))
"""


START_PROBE = """
import json, sys
import asyncup
at_import = sorted(sys.modules)
names = {name: type(getattr(asyncup, name)).__name__ for name in asyncup.__all__}
try:
    asyncup.no_such_name
    missing = "no error"
except AttributeError as exc:
    missing = str(exc)
print(json.dumps({"at_import": at_import, "after_use": sorted(sys.modules), "names": names,
                  "dir": dir(asyncup), "missing": missing}))
"""


def test_import_asyncup_loads_the_core_and_the_rest_on_first_use() -> None:
    """``import asyncup`` costs little (issue 17): no HTTP library, no async library, no
    awscrt; ``asyncup.Uploader`` and the other names load the pipeline when first used, and
    aiobotocore with aiohttp wait for a client to be made (the lean path needs neither)."""
    out = subprocess.run(
        [sys.executable, "-c", START_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=ROOT.parent,
    ).stdout
    probe = json.loads(out)
    tops = {m.split(".")[0] for m in probe["at_import"]}
    assert sorted(tops & {*HTTP_AND_ASYNC, "awscrt"}) == []
    used = {m.split(".")[0] for m in probe["after_use"]}
    assert {"botocore", "anyio", "awscrt"} <= used
    assert not {"aiobotocore", "aiohttp"} & used
    assert probe["names"]["Uploader"] == "type"
    assert probe["names"]["upload"] == "function"
    assert set(asyncup.__all__) <= set(probe["dir"])
    assert probe["missing"] == "module 'asyncup' has no attribute 'no_such_name'"


def test_importing_the_core_loads_no_http_and_no_async_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PURITY_PROBE, str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    probe = json.loads(out)
    expected = {m for m in MODULES if part(m) == "_core" and m != "asyncup._core"}
    assert set(probe["loaded"]) == expected
    heavy = sorted({m.split(".")[0] for m in probe["modules"]} & set(HTTP_AND_ASYNC) - {"asyncio"})
    assert heavy == [], f"importing the core loaded {heavy}"
    outside = [m for m in probe["modules"] if m.startswith("asyncup.") and part(m) != "_core"]
    assert outside == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 400, f"{module} has {lines} lines: split it by job"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the graph's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


@pytest.mark.timeout(180)
def test_the_wheel_holds_asyncup_whole_and_no_benchmark(tmp_path: Path) -> None:
    """Built from a copy of the checkout (pip's isolated build, as a release would be)."""
    checkout, wheels = tmp_path / "checkout", tmp_path / "wheels"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT.parent / name, checkout / name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT, checkout / "asyncup", ignore=ignore)
    shutil.copytree(
        ROOT.parent / "benchmarks" / "asyncup_bench",
        checkout / "benchmarks" / "asyncup_bench",
        ignore=ignore,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(checkout)],
        check=True,
        capture_output=True,
        timeout=170,
    )
    (wheel,) = wheels.glob("asyncup-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if not n.startswith("asyncup-")}
    source = {p.relative_to(ROOT.parent).as_posix() for p in ROOT.rglob("*.py")}
    assert shipped == source | {"asyncup/py.typed"}

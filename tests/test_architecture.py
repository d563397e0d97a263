"""The shape of the code, counted (issue 15's "Done when"): every axis keeps its names in its own package,
no module reaches into another package's private members, mlspec's modules import each other without a
circle, and at module level (but for a module that loads a heavy library, which is imported where it is used,
as the library is). Each count prints what it found, file:line, so a failure says where to look.

Everything is read with `ast` from plugins/mlspec; nothing is imported.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.fixtures.paths import REPO

PLUGINS = REPO / "plugins"
PACKAGE = PLUGINS / "mlspec"


# Each axis's names, and the package (folder under plugins/mlspec) where comparing them is the package's own job.
AXIS_NAMES: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "framework": (frozenset({"tensorflow", "sklearn", "xgboost", "lightgbm"}), ("ml/frameworks",)),
    "serving platform": (frozenset({"local", "kserve"}), ("serving",)),
    "registry backend": (frozenset({"mlflow", "kubeflow"}), ("registry",)),
    "URI scheme": (frozenset({"file", "s3"}), ("sources", "storage")),
}


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. mlspec.spec.lint.data
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package the module belongs to: its folder (mlspec.spec.lint for mlspec/spec/lint/data.py)."""
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]

    @property
    def folder(self) -> str:
        """The module's folder relative to plugins/mlspec ('' for the top level)."""
        return self.path.parent.relative_to(PACKAGE).as_posix().removeprefix(".")

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"


def by_place(found: list[str]) -> list[str]:
    """file:line entries in file order, then line order (ast.walk visits breadth first)."""

    def key(entry: str) -> tuple[str, int, str]:
        file, line, rest = entry.split(":", 2)
        return file, int(line), rest

    return sorted(set(found), key=key)


@cache
def modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PLUGINS).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append(Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return tuple(found)


def module_names() -> frozenset[str]:
    return frozenset(m.name for m in modules())


def offenders_message(what: str, offenders: list[str]) -> str:
    return f"{len(offenders)} {what}:\n  " + "\n  ".join(offenders)


# --------------------------------------------------------------------------- 1. axis names outside their package


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    """The string literals a comparison compares with: the value itself, or the items of a tuple/list/set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for item in node.elts:
            yield from _strings(item)


def _compared_strings(tree: ast.AST) -> Iterator[ast.Constant]:
    """String literals used to tell values apart: in a comparison (==, !=, in, not in), as a dict key, as a
    match case."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
            for side in (node.left, *node.comparators):
                yield from _strings(side)
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if key is not None:
                    yield from _strings(key)
        elif isinstance(node, ast.MatchValue):
            yield from _strings(node.value)


def name_checks() -> list[str]:
    found = []
    for module in modules():
        for literal in _compared_strings(module.tree):
            for axis, (names, homes) in AXIS_NAMES.items():
                at_home = any(module.folder == home or module.folder.startswith(home + "/") for home in homes)
                if literal.value in names and not at_home:
                    found.append(f"{module.where(literal)}: {axis} {literal.value!r}")
    return by_place(found)


def test_axis_names_are_compared_only_in_their_own_package():
    found = name_checks()
    assert not found, offenders_message(
        "framework, platform, registry or URI-scheme string checks outside their package", found
    )


# --------------------------------------------------------------------------- 2. private members across packages


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@cache
def private_definitions() -> dict[str, frozenset[str]]:
    """Each private name -> the packages that define it: at module level, in a class body, or as self._x."""
    defined: dict[str, set[str]] = {}

    def add(name: str, module: Module) -> None:
        if _private(name):
            defined.setdefault(name, set()).add(module.package)

    for module in modules():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                add(node.name, module)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                add(node.id, module)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
                add(node.attr, module)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                add(node.target.id, module)
    return {name: frozenset(packages) for name, packages in defined.items()}


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def private_access() -> list[str]:
    """`obj._name` (obj not self/cls) or `from mlspec.x import _name`, where `_name` is defined only in other
    packages than the accessing module's (a name mlspec never defines, such as sys._getframe, is not ours)."""
    definitions = private_definitions()
    found = []
    for module in modules():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and not _is_self(node.value):
                name = node.attr
            elif isinstance(node, ast.ImportFrom) and _resolve_from(module, node).startswith("mlspec"):
                for alias in node.names:
                    if _private(alias.name) and module.package not in definitions.get(alias.name, {module.package}):
                        found.append(f"{module.where(node)}: imports {alias.name}")
                continue
            else:
                continue
            packages = definitions.get(name)
            if packages and module.package not in packages:
                found.append(f"{module.where(node)}: {ast.unparse(node)} (defined in {', '.join(sorted(packages))})")
    return by_place(found)


def test_no_module_reaches_into_another_packages_private_members():
    found = private_access()
    assert not found, offenders_message(
        "private-member accesses across packages", found
    )


# --------------------------------------------------------------------------- 3 and 4. imports


def _resolve_from(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against the module's package)."""
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`, which never run."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def imported_modules(module: Module) -> Iterator[tuple[ast.AST, str]]:
    """(import node, mlspec module it imports) for every import of the module, at any depth. `from a import b`
    imports the module a.b when there is one, else a (the implicit import of a's parent packages is left out)."""
    known = module_names()
    skipped = _type_checking_only(module.tree)
    for node in ast.walk(module.tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in known:
                    yield node, submodule
                elif source in known:
                    yield node, source


def import_circles() -> list[list[str]]:
    """The strongly connected components of more than one module in mlspec's import graph (Tarjan)."""
    graph = {m.name: sorted({target for _, target in imported_modules(m) if target != m.name}) for m in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(name: str) -> None:  # recursion depth is bounded by the number of modules (about 100)
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in graph[name]:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    return circles


def _circle_words(component: list[str]) -> str:
    """A component and, for each member, which of the others it imports."""
    members = set(component)
    by_name = {m.name: m for m in modules()}
    edges = {
        f"{by_name[name].where(node)}: {name} imports {target}"
        for name in component
        for node, target in imported_modules(by_name[name])
        if target in members and target != name
    }
    return "\n    ".join([" <-> ".join(component), *by_place(list(edges))])


def test_mlspec_modules_import_each_other_without_a_circle():
    circles = import_circles()
    assert not circles, offenders_message(
        "import circles", [_circle_words(c) for c in circles]
    )


# Libraries only the tasks import, never the DAG parse (tests/compiler/test_parse_stays_light.py), and the web
# framework only the api-server's Models app and the model server need: an mlspec module that loads one when
# imported is imported where it is used, like the library itself.
HEAVY_LIBRARIES = frozenset({
    "numpy", "pandas", "pyarrow", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxmltools", "skl2onnx",
    "sklearn", "xgboost", "lightgbm", "optuna", "mlflow", "boto3", "kubernetes", "matplotlib", "fastapi", "starlette",
})


def _module_level_imports(module: Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: outside every function, not under TYPE_CHECKING."""
    skipped = _type_checking_only(module.tree)

    def visit(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or id(child) in skipped:
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            else:
                yield from visit(child)

    yield from visit(module.tree)


@cache
def heavy_modules(libraries_of_note: frozenset[str] = HEAVY_LIBRARIES) -> frozenset[str]:
    """mlspec modules whose import loads a heavy library: one imports it at module level, or imports such a
    module (its parent packages, which run first, count too)."""
    by_name = {m.name: m for m in modules()}
    needs: dict[str, set[str]] = {}
    heavy = set()
    for module in modules():
        targets = {module.name.rsplit(".", depth)[0] for depth in range(1, module.name.count(".") + 1)} - {module.name}
        for node in _module_level_imports(module):
            if isinstance(node, ast.Import):
                libraries = {a.name.split(".")[0] for a in node.names}
            else:
                libraries = {_resolve_from(module, node).split(".")[0]} if not node.level else set()
            if libraries & libraries_of_note:
                heavy.add(module.name)
        level = {id(node) for node in _module_level_imports(module)}
        targets |= {target for node, target in imported_modules(module) if id(node) in level}
        needs[module.name] = targets & set(by_name)
    changed = True
    while changed:
        changed = False
        for name, targets in needs.items():
            if name not in heavy and targets & heavy:
                heavy.add(name)
                changed = True
    return frozenset(heavy)


def _packages_of(name: str) -> set[str]:
    """The packages that run before module `name` does (mlspec.spec and mlspec for mlspec.spec.model)."""
    return {name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)}


@cache
def module_level_graph() -> dict[str, frozenset[str]]:
    """What importing each module runs: its module-level mlspec imports and the packages around them."""
    graph = {}
    for module in modules():
        level = {id(node) for node in _module_level_imports(module)}
        targets = {target for node, target in imported_modules(module) if id(node) in level}
        targets |= {package for target in targets for package in _packages_of(target)}
        graph[module.name] = frozenset(targets - {module.name})
    return graph


def _runs(start: str) -> set[str]:
    """Every module importing `start` runs, `start` included."""
    graph, seen, todo = module_level_graph(), {start}, [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def deferred_plugin(module: Module, target: str) -> bool:
    """Whether `module` imports `target` in a function because `target` imports module's own package: a
    package's table of plugins (registry backends, serving platforms) opens each plugin module when asked,
    as that module imports the package (its base classes); at module level it would be an import circle."""
    return bool((_packages_of(module.name) - {"mlspec"}) & _runs(target))


def function_imports() -> list[str]:
    """Imports of mlspec's own modules inside a function (they hide what a module depends on), but for those
    of a module that loads a heavy library (heavy_modules: they stay where the library is needed) and a
    table's plugin modules (deferred_plugin)."""
    found = []
    heavy = heavy_modules()
    # Airflow (about 2 s of imports): a module that works without it (the CLI's lint, dagbag's spec checks)
    # imports the modules that load it only where a DAG is built or run (tests/cli/test_cli_stays_light.py).
    with_airflow = heavy_modules(frozenset({"airflow"}))
    for module in modules():
        skipped = _type_checking_only(module.tree)
        targets: dict[int, set[str]] = {}
        for node, target in imported_modules(module):
            targets.setdefault(id(node), set()).add(target)
        for function in ast.walk(module.tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if id(node) in skipped or not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [_resolve_from(module, node)]
                if not any(n == "mlspec" or n.startswith("mlspec.") for n in names):
                    continue
                if targets.get(id(node)) and all(
                    t in heavy or deferred_plugin(module, t) or (t in with_airflow and module.name not in with_airflow)
                    for t in targets[id(node)]
                ):
                    continue
                found.append(f"{module.where(node)}: {ast.unparse(node)}")
    return by_place(found)  # (a nested function's import is found once per enclosing function: set() in by_place)


def test_mlspec_modules_are_imported_at_module_level():
    found = function_imports()
    assert not found, offenders_message(
        "in-function imports of mlspec modules", found
    )


# --------------------------------------------------------------------------- the counters themselves


def test_the_counters_find_what_they_count(tmp_path, monkeypatch):
    """Each counter, on a small package with one offence of each kind, finds exactly that offence."""
    package = tmp_path / "mlspec"
    (package / "serving").mkdir(parents=True)
    (package / "ml" / "frameworks").mkdir(parents=True)
    for folder in (package, package / "serving", package / "ml", package / "ml" / "frameworks"):
        (folder / "__init__.py").write_text("")
    (package / "serving" / "local.py").write_text(
        "def _start(): pass\n"
        "class Server:\n"
        "    def _ready(self):\n"
        "        return self._port\n"
        "def pick(platform):\n"
        "    return platform == 'kserve'\n"  # at home: not counted
    )
    (package / "ml" / "frameworks" / "keras.py").write_text("NAMES = {'tensorflow': 1}\n")  # at home
    (package / "ml" / "data.py").write_text("import numpy as np\n")
    # A table of plugins that opens each plugin module when asked, as the plugin imports the table's package.
    (package / "registry").mkdir()
    (package / "registry" / "__init__.py").write_text("from mlspec.registry.table import open_backend\n")
    (package / "registry" / "table.py").write_text(
        "def open_backend():\n    from mlspec.registry.backend import Backend\n    return Backend()\n"
    )
    (package / "registry" / "base.py").write_text("class Base: pass\n")
    (package / "registry" / "backend.py").write_text("from mlspec.registry.base import Base\nclass Backend(Base): pass\n")
    (package / "ml" / "loader.py").write_text("from mlspec.ml import data\n")  # heavy through data
    (package / "compiler.py").write_text(
        "from mlspec.serving import local\n"
        "from mlspec.serving.local import _start\n"  # private import across packages
        "def build(spec, server):\n"
        "    from mlspec import summary\n"  # in-function import, and a circle with summary
        "    from mlspec.ml.loader import data\n"  # loads numpy: stays where it is used, not counted
        "    server._ready()\n"  # private call across packages
        "    server._unknown()\n"  # not mlspec's: not counted
        "    if spec['framework'] in ('sklearn', 'xgboost'):\n"  # one compare, two names
        "        return {'kserve': 1}\n"  # dict key
        "    match spec['scheme']:\n"
        "        case 's3':\n"  # match case
        "            pass\n"
    )
    (package / "summary.py").write_text("import mlspec.compiler\n")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "PLUGINS", tmp_path)
    monkeypatch.setattr(this, "PACKAGE", package)
    monkeypatch.setattr(this, "REPO", tmp_path)
    caches = (modules, private_definitions, heavy_modules, module_level_graph)
    for cached in caches:
        cached.cache_clear()
    try:
        assert name_checks() == [
            "mlspec/compiler.py:8: framework 'sklearn'",
            "mlspec/compiler.py:8: framework 'xgboost'",
            "mlspec/compiler.py:9: serving platform 'kserve'",
            "mlspec/compiler.py:11: URI scheme 's3'",
        ]
        assert private_access() == [
            "mlspec/compiler.py:2: imports _start",
            "mlspec/compiler.py:6: server._ready (defined in mlspec.serving)",
        ]
        assert import_circles() == [["mlspec.compiler", "mlspec.summary"]]
        assert heavy_modules() == {"mlspec.ml.data", "mlspec.ml.loader"}
        assert function_imports() == ["mlspec/compiler.py:4: from mlspec import summary"]
    finally:
        for cached in caches:
            cached.cache_clear()

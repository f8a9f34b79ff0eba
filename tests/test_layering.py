"""The package's layering, read from the source (AST) without importing it: no import cycles between modules or
between the subpackages, imports at the top of the module except those that keep optional heavy packages lazy,
and nothing in the package that imports the test fakes."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dsrl_real"

# Imported inside functions on purpose: optional extras (reward models, ROS 2, camera SDKs, the SB3 comparison),
# or packages slow to import that only one command needs (scipy, matplotlib, wandb, PIL, PyAV, imageio).
LAZY_OK = frozenset({
    "torch", "torchvision", "transformers", "qwen_vl_utils", "accelerate", "safetensors", "huggingface_hub", "lerobot",
    "rclpy", "launch", "launch_ros", "ament_index_python", "builtin_interfaces", "rcl_interfaces", "action_msgs",
    "geometry_msgs", "sensor_msgs", "std_msgs", "std_srvs", "control_msgs", "franka_msgs", "cv_bridge",
    "interbotix_common_modules", "interbotix_xs_modules", "interbotix_xs_msgs", "pyrealsense2",
    "scipy", "matplotlib", "wandb", "stable_baselines3", "ray", "PIL", "av", "imageio", "termios", "tty", "pty",
})


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package's name for its __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path) -> Iterator[tuple[ast.stmt, list[str], bool]]:
    """Each import statement of a module: the dotted names it may load (a from-import's module and module.name for
    each name) and whether it runs inside a function or class (not when the module is imported)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, nested: bool) -> Iterator[tuple[ast.stmt, list[str], bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                yield child, [alias.name for alias in child.names], nested
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                yield child, [module, *(f"{module}.{alias.name}" for alias in child.names)], nested
            else:
                inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
                yield from visit(child, inner)

    yield from visit(tree, False)


def edges(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. A submodule's import of its own package's __init__ is left out:
    that is where the package re-exports it from."""
    mods = modules(package)
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        for _, targets, _ in imports(name, path):
            for target in targets:
                if target in mods and target != name and not (mods[target].name == "__init__.py" and name.startswith(target + ".")):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same edges between the package's top-level units: each subpackage as one node, each top module as one."""
    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    collapsed: dict[str, set[str]] = {}
    for source, targets in graph.items():
        collapsed.setdefault(unit(source), set()).update(unit(t) for t in targets if unit(t) != unit(source))
    return collapsed


def function_level_problems(package: Path) -> list[str]:
    """'module:line imports X' for every import inside a function or class of a package module or of a package not
    in LAZY_OK."""
    root = package.name
    problems = []
    for name, path in modules(package).items():
        for node, targets, nested in imports(name, path):
            top = targets[0].split(".")[0]
            if nested and (top == root or top not in LAZY_OK):
                problems.append(f"{name}:{node.lineno} imports {targets[0]}")
    return problems


def fake_imports(package: Path) -> list[str]:
    """'module:line imports X' for every import of the test fakes or the tests from inside the package."""
    return [f"{name}:{node.lineno} imports {targets[0]}" for name, path in modules(package).items()
            for node, targets, _ in imports(name, path)
            if targets[0].split(".")[0] in ("fakes", "tests", "conftest")]


# ---- the package -------------------------------------------------------------------------------------------------
def test_the_package_has_no_import_cycle_between_modules():
    assert cycles(edges(PACKAGE)) == []


def test_no_two_subpackages_import_each_other():
    assert cycles(subpackage_graph(edges(PACKAGE))) == []


def test_imports_are_at_module_level_except_optional_heavy_packages():
    assert function_level_problems(PACKAGE) == []


def test_nothing_in_the_package_imports_the_test_fakes():
    assert fake_imports(PACKAGE) == []


# ---- the checks find what they look for -------------------------------------------------------------------------
@pytest.fixture
def bad_package(tmp_path) -> Path:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from .b import B\nimport json\n",
        "b.py": "import numpy as np\n\ndef f():\n    from .a import A\n    import json\n    import torch\n    return A\n",
        "c.py": "from fakes import rclpy_fake\nfrom .top import T\n",
        "sub/__init__.py": "from .d import D\n",
        "sub/d.py": "from .. import c\nfrom . import e\n",
        "sub/e.py": "from pkg.sub import D\n",
        "top.py": "from .sub.d import D\n",
    }
    for relative, text in files.items():
        (package / relative).write_text(text)
    return package


def test_a_cycle_is_found_through_a_function_level_import(bad_package):
    # a -> b at the top, b -> a inside a function; sub.d -> c -> top -> sub.d; sub/e -> sub (its own __init__) is left out
    assert cycles(edges(bad_package)) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.d", "pkg.top"]]


def test_subpackages_that_import_each_other_are_a_cycle(bad_package):
    assert cycles(subpackage_graph(edges(bad_package))) == [
        ["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub", "pkg.top"]]


def test_function_level_imports_of_the_package_and_of_light_packages_are_found(bad_package):
    assert function_level_problems(bad_package) == ["pkg.b:4 imports pkg.a", "pkg.b:5 imports json"]


def test_an_import_of_the_fakes_is_found(bad_package):
    assert fake_imports(bad_package) == ["pkg.c:1 imports fakes"]

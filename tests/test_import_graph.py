"""The project's import graph: every module imports cleanly, redox/ stands alone, no cycles.

redox/ is the Redox protocol and knows nothing of HCOINT's models or settings, so it
never imports orders/ or hcoint/ (README, "Where things live"). A cycle anywhere makes
import order matter and hides a missing boundary; imports inside functions count, since
they are how a cycle is usually papered over.
"""

import ast
import json
import os
from pathlib import Path

from tests.processes import run_python

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hcoint", "orders", "redox")


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules():
    """{module name: file} for every .py file under the project's packages."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def imported_names(tree, module, is_package):
    """Every module name an import statement in `tree` names, at any depth, relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            yield prefix
            for alias in node.names:
                # `from redox import inbound` imports the module redox.inbound.
                yield f"{prefix}.{alias.name}"


def import_graph():
    """{module: set of project modules it imports}, from the source of every project module."""
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        names = imported_names(tree, module, path.name == "__init__.py")
        graph[module] = {name for name in names if name in modules and name != module}
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


IMPORT_EVERY_MODULE = """
import importlib, json, sys, traceback
import django
django.setup()
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps(failed))
"""


def test_every_module_imports_in_a_fresh_interpreter():
    modules = sorted(project_modules())
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hcoint.settings"}
    done = run_python(IMPORT_EVERY_MODULE, *modules, env=env)
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(f"{name}:\n{error}" for name, error in failed.items())


def test_the_graph_sees_imports_inside_functions():
    # redox/apps.py imports redox.auth and redox.client only inside functions.
    assert {"redox.auth", "redox.client"} <= import_graph()["redox.apps"]


def test_redox_imports_neither_orders_nor_hcoint():
    graph = import_graph()
    crossing = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith("redox")
        for target in targets
        if target.split(".")[0] in ("orders", "hcoint")
    )
    assert crossing == []


def test_redox_has_no_import_cycle():
    assert [sorted(cycle) for cycle in cycles(import_graph()) if any(m.startswith("redox") for m in cycle)] == []


def test_no_import_cycle_at_all():
    assert [sorted(cycle) for cycle in cycles(import_graph())] == []

"""The shape of the code (../shared/ARCHITECTURE.md), checked from the imports: no cycle, even through
imports inside functions; model code on keras only; no module reaches up into the scripts."""

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "keras_resnet")
MODULES = sorted(name[:-3] for name in os.listdir(PACKAGE) if name.endswith(".py"))
MODEL_CODE = {"specs", "blocks", "resnet", "baselines", "registry", "analysis"}


def imports(module):
    """The keras_resnet modules (and top-level packages) that `module` imports, anywhere in the file."""
    tree = ast.parse(open(os.path.join(PACKAGE, f"{module}.py")).read())
    ours, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                (ours.add(parts[1] if len(parts) > 1 else "__init__") if parts[0] == "keras_resnet"
                 else others.add(parts[0]))
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "keras_resnet":
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
                ours.update(name for name in names if name in MODULES)
            else:
                others.add(parts[0])
    ours.discard(module)
    return ours, others


def test_the_import_graph_has_no_cycle():
    graph = {module: imports(module)[0] for module in MODULES}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join(path + [node])}"
        state[node] = "open"
        for neighbour in sorted(graph.get(node, ())):
            visit(neighbour, path + [node])
        state[node] = "done"

    for module in MODULES:
        visit(module, [])


def test_model_code_imports_only_keras_numpy_and_other_model_code():
    for module in MODEL_CODE:
        ours, others = imports(module)
        assert ours <= MODEL_CODE | {"checkpoints"}, (module, ours)  # resnet calls checkpoints lazily for weights
        allowed = {"keras", "numpy", "re", "dataclasses", "functools", "inspect", "math", "os", "warnings"}
        assert others <= allowed, (module, others)


def test_checkpoints_never_imports_the_model_code():
    ours, _ = imports("checkpoints")
    assert not ours & {"resnet", "registry", "__init__", "transfer", "training", "export"}, ours


def test_no_module_imports_a_script():
    for module in MODULES:
        _, others = imports(module)
        assert "scripts" not in others, module

"""The package's layers: no module imports another that (directly or through others) imports it
back, lazy imports inside functions included; and the library never imports the command line or
the web app."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body (parent packages left out:
    importing ``a.b`` runs ``a/__init__`` anyway)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                deps |= {t for t in [target, *(f"{target}.{a.name}" for a in node.names)] if t in modules}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_src():
    graph = import_graph()
    assert "braintumor.inference.predictor" in graph and graph["braintumor.inference.predictor"]
    assert cycles(graph) == []


def test_the_library_never_imports_the_command_line_or_the_web_app():
    graph = import_graph()
    entry_points = {"braintumor.cli", "braintumor.__main__"} | {n for n in graph if n.startswith("braintumor.commands")}
    assert "braintumor.commands.predict" in entry_points
    for name, deps in graph.items():
        if name in entry_points:
            continue
        assert not deps & entry_points, f"{name} imports the command line"
        if not name.startswith("braintumor.web"):
            assert not any(d.startswith("braintumor.web") for d in deps), f"{name} imports the web app"


# What the light install does not have: PyTorch and the tools that come with the training install.
TRAINING_ONLY = {"torch", "torchvision", "torchio", "pytorch_grad_cam", "cv2", "onnx", "matplotlib", "tensorboard"}
# The one door from the serving side to the training install: converting a checkpoint that has no
# ONNX graph, or the torch backend, asked for explicitly (it fails with one line without PyTorch).
BRIDGE = ("braintumor.inference.backends", "braintumor.training.conversion")


def external_imports(name: str) -> set[str]:
    """The top-level names of the packages outside braintumor that module ``name`` imports anywhere."""
    path = next(p for p in SRC.rglob("*.py") if module_name(p) == name)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
    return out - {"braintumor"}


def test_the_serving_side_never_imports_pytorch():
    """Every module the serving side reaches, lazy imports included, imports nothing of the training
    install: a stray ``import torch`` cannot creep back (tests/test_light.py runs the commands)."""
    from braintumor.commands import COMMANDS, NEEDS_TRAINING

    graph = import_graph()
    light_commands = {module for name, (module, _) in COMMANDS.items() if name not in NEEDS_TRAINING}
    assert {"braintumor.commands.serve", "braintumor.commands.evaluate"} <= light_commands
    serving = {n for n in graph if n.startswith("braintumor.inference")} | {"braintumor.web", "braintumor.inference.shipped",
                                                                              "braintumor.cli"} | light_commands
    seen, todo = set(), sorted(serving)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [d for d in graph[name] if (name, d) != BRIDGE]
    assert "braintumor.inference.predictor" in seen and "braintumor.training.conversion" not in seen
    for name in sorted(seen):
        assert not external_imports(name) & TRAINING_ONLY, f"{name} imports {external_imports(name) & TRAINING_ONLY}"

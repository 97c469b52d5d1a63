"""The package's layers, from the bottom up: the shared modules at the package root (with
``medical/``), ``data/``, ``inference/`` (serving, no PyTorch), then ``training/`` (everything that
needs PyTorch) beside ``studies/`` (serving), then ``web/``, then the command line (``commands/``,
``cli``). A module imports only its own layer and the layers its layer stands on (lazy imports
inside functions included), no module imports another that imports it back, and nothing the
serving side reaches imports PyTorch."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(name: str, path: Path, nodes, modules) -> set[str]:
    """The package modules that the import statements among ``nodes`` of module ``name`` import
    (``from a import b`` of a module ``b`` counts as ``a.b`` alone, as ``import a.b`` does)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & set(modules)
            deps |= submodules
            if target in modules and len(submodules) < len(node.names):
                deps.add(target)
        elif isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name in modules}
    return {d for d in deps if d != name and not name.startswith(d + ".")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body (parent packages left out:
    importing ``a.b`` runs ``a/__init__`` anyway)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    return {name: imported_modules(name, path, ast.walk(ast.parse(path.read_text())), modules)
            for name, path in modules.items()}


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


# Each layer and the layers it may import, besides itself. The shared modules are the package
# root's own modules (config, errors, formats, imaging, limits, metrics, ...) and medical/.
MAY_IMPORT: dict[str, set[str]] = {
    "shared": set(),
    "data": {"shared"},
    "inference": {"shared", "data"},
    "training": {"shared", "data", "inference"},
    "studies": {"shared", "data", "inference"},
    "web": {"shared", "data", "inference", "studies"},
    "commands": {"shared", "data", "inference", "training", "studies", "web"},
    # the package itself: its public names (braintumor.Predictor, loaded on first use)
    "package": {"shared", "inference"},
}
PACKAGES = {"data": "data", "inference": "inference", "training": "training", "studies": "studies",
            "web": "web", "commands": "commands", "medical": "shared"}
ENTRY_POINTS = {"braintumor.cli", "braintumor.__main__"}
# The one door from the serving side to the training install: converting a checkpoint that has no
# ONNX graph, or the torch backend, asked for explicitly (it fails with one line without PyTorch).
BRIDGE = ("braintumor.inference.backends", "braintumor.training.conversion")


def layer_of(name: str) -> str | None:
    """The layer of module ``name``; None for a package that has no layer yet."""
    if name == "braintumor":
        return "package"
    if name in ENTRY_POINTS:
        return "commands"
    parts = name.split(".")
    if len(parts) == 2 and not (SRC / "braintumor" / parts[1]).is_dir():
        return "shared"
    return PACKAGES.get(parts[1])


def wrong_way(graph: dict[str, set[str]], allowed: set[tuple[str, str]] = frozenset()) -> list[str]:
    """Every import that goes from a layer to one it may not import (``allowed``: single imports
    let through by name)."""
    out = []
    for name in sorted(graph):
        for dep in sorted(graph[name]):
            here, there = layer_of(name), layer_of(dep)
            if here != there and there not in MAY_IMPORT[here] and (name, dep) not in allowed:
                out.append(f"{name} ({here}) imports {dep} ({there})")
    return out


def test_the_checker_finds_an_import_the_wrong_way():
    assert wrong_way({"braintumor.data.folders": {"braintumor.training.train"},
                      "braintumor.inference.predictor": {"braintumor.data.folders", "braintumor.config"},
                      "braintumor.config": set(), "braintumor.training.train": set()}) == [
        "braintumor.data.folders (data) imports braintumor.training.train (training)"]
    assert wrong_way({"braintumor.web.routes": {"braintumor.cli"}, "braintumor.cli": set()}) == [
        "braintumor.web.routes (web) imports braintumor.cli (commands)"]
    assert layer_of("braintumor.medical.dicom") == layer_of("braintumor.errors") == "shared"
    assert layer_of("braintumor.__main__") == "commands"


def test_every_module_has_a_layer():
    assert [name for name in import_graph() if layer_of(name) is None] == []


def test_imports_go_down_the_layers_only():
    """No import from a lower layer to a higher one, and none between the two sides: serving
    (inference, studies, web) never imports training, nor training the studies or the web app.
    The one exception is :data:`BRIDGE`, imported lazily."""
    graph = import_graph()
    assert wrong_way(graph, {BRIDGE}) == []
    assert wrong_way(graph) == [f"{BRIDGE[0]} (inference) imports {BRIDGE[1]} (training)"]


def test_the_bridge_to_training_is_imported_only_when_used():
    """The serving side's one door to the training install sits inside a function: importing
    :mod:`braintumor.inference.backends` never tries to import it."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    path = modules[BRIDGE[0]]
    everywhere = imported_modules(BRIDGE[0], path, ast.walk(ast.parse(path.read_text())), modules)
    at_the_top = imported_modules(BRIDGE[0], path, ast.parse(path.read_text()).body, modules)
    assert BRIDGE[1] in everywhere and BRIDGE[1] not in at_the_top


# What the light install does not have: PyTorch and the tools that come with the training install.
TRAINING_ONLY = {"torch", "torchvision", "torchio", "pytorch_grad_cam", "cv2", "onnx", "matplotlib", "tensorboard",
                 "timm", "scipy", "skimage"}


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
    serving = {n for n in graph if layer_of(n) in {"inference", "studies", "web"}} | {"braintumor.cli"} | light_commands
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


def test_only_the_training_layer_imports_the_training_install():
    """PyTorch and the tools of the training install are imported under training/ and by the
    commands that need that install, nowhere else: shared, data and serving modules run in the light
    install."""
    from braintumor.commands import COMMANDS, NEEDS_TRAINING

    graph = import_graph()
    training_commands = {COMMANDS[name][0] for name in NEEDS_TRAINING}
    outside = {n: external_imports(n) & TRAINING_ONLY for n in graph
               if layer_of(n) != "training" and n not in training_commands}
    assert {n: found for n, found in outside.items() if found} == {}

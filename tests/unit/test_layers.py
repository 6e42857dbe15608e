"""The house stays readable: no package imports one above it, and no modules import each other in a circle.

Layers, bottom-up (docs/architecture.md): the root modules (config, errors, logs), then
wire and sim, backend, access and experiments, server and client, lab, and on top cli
and testing. A module may import its own package and any lower layer, never a higher one
nor a sibling on its own layer (server and client meet only over the network).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "taggerhub"
RANK = {
    "config": 0, "errors": 0, "logs": 0, "pyfix": 0, "__init__": 0,
    "wire": 1, "sim": 1,
    "backend": 2,
    "access": 3, "experiments": 3,
    "server": 4, "client": 4,
    "lab": 5,  # lab.web (taggerhub web) too: a client of the server
    "cli": 6, "testing": 6,
    "__main__": 7,  # python -m taggerhub: runs the CLI
}


def _module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = SRC) -> set[str]:
    """Every taggerhub module ``path`` imports, as absolute dotted names (functions' imports too)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("taggerhub")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("taggerhub"):
                continue
            for alias in node.names:  # "from . import x" may name a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate, root) else target)
    return found


def _exists(module: str, root: Path = SRC) -> bool:
    relative = Path(*module.split(".")[1:])
    return (root / relative).with_suffix(".py").is_file() or (root / relative / "__init__.py").is_file()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): {m for m in _imports(p) if m != "taggerhub"} for p in SRC.rglob("*.py")}


def test_every_package_has_a_layer() -> None:
    layers = {_layer(m) for m in _graph()}
    assert layers <= set(RANK), f"packages without a layer in RANK: {sorted(layers - set(RANK))}"


def test_no_import_runs_up_a_layer_or_across_one() -> None:
    wrong = []
    for module, imported in _graph().items():
        mine = _layer(module)
        for target in imported:
            theirs = _layer(target)
            if theirs != mine and RANK[theirs] >= RANK[mine]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that run up or across a layer:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Import cycles in ``graph``, each as "a -> b -> a" (a module reaching its own package's __init__ is fine)."""
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_modules_import_each_other_in_a_circle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_sees_a_circle() -> None:
    graph = {"t.a": {"t.b"}, "t.b": {"t.c"}, "t.c": {"t.a"}, "t.d": {"t"}}
    assert _cycles(graph) == ["t.a -> t.b -> t.c -> t.a"]


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    """The rules above would catch a lower layer importing a higher one (so they cannot pass vacuously)."""
    root = tmp_path / "taggerhub"
    for package in ("wire", "server"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "server" / "hub.py").write_text("")
    probe = root / "wire" / "probe.py"
    probe.write_text("from ..server import hub\n")
    assert _imports(probe, root) == {"taggerhub.server.hub"}
    assert RANK[_layer("taggerhub.server.hub")] > RANK[_layer(_module_name(probe, root))]


def test_rooms_stay_small_outside_the_simulator() -> None:
    """No module over 400 lines and no class over 200 outside sim/ (which mirrors the vendor's big classes)."""
    too_big = []
    for path in SRC.rglob("*.py"):
        if "sim" in path.relative_to(SRC).parts:
            continue
        text = path.read_text()
        if text.count("\n") > 400:
            too_big.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 200:
                too_big.append(f"{path.relative_to(SRC)}: class {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert not too_big, "split these:\n" + "\n".join(too_big)

"""The code's shape, kept: no import cycles between the chat's modules."""

import ast
from pathlib import Path

CHAT = Path(__file__).resolve().parent.parent


def _module_name(path):
    parts = path.relative_to(CHAT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph():
    files = [
        path
        for path in CHAT.rglob("*.py")
        if "tests" not in path.parts and "migrations" not in path.parts
    ]
    modules = {_module_name(path): path for path in files}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.parse(path.read_text()).body:  # module level: what runs on import
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chat"):
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    imported.add(candidate if candidate in modules else node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("chat")}
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def _cycles(graph):
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_graph_is_read():
    graph = _import_graph()
    assert "chat.actions.messages" in graph["chat.realtime.frames"]
    assert "chat.events" in graph["chat.actions.messages"]


def test_no_import_cycles():
    assert _cycles(_import_graph()) == []


def test_a_cycle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]

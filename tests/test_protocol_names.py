"""The protocol is declared once: no event type, worker command or their keys is spelled outside
interchange/protocol.py, read from the source (plain Python: no bpy, no torch needed).

A name counts as spelled where the code uses it as protocol: compared (``kind == "done"``, ``kind in ("done",
...)``), as the value of an ``event`` or ``cmd`` field (``{"event": "progress"}``, ``dict(cmd="render")``), as a
``case`` pattern, and for the keys ``event`` and ``cmd`` themselves: as a dict key, a subscript
(``data["event"]``), a ``.get("event")`` argument or a comparison operand. The same words elsewhere (an enum of the
add-on's own phases, Blender's ``bl_context = "render"``, a message text) are not protocol and pass.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from interchange import protocol

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "blender_addon", "interchange")
PROTOCOL_MODULE = Path("interchange/protocol.py")
NAMES = {event.value for event in protocol.Event} | {command.value for command in protocol.Command} | {
    protocol.READY_EVENT}
KEYS = {protocol.EVENT_KEY, protocol.COMMAND_KEY}
KEY_METHODS = {"get", "pop", "setdefault"}
# Spellings allowed for now, by file (none left: a file that needs one is listed here with its names).
PENDING: dict[Path, set[str]] = {}


def is_text(node: ast.AST, words: set[str]) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words


def operands(node: ast.Compare) -> list[ast.AST]:
    """A comparison's operands, with the items of tuple, list and set literals among them."""
    found = []
    for operand in (node.left, *node.comparators):
        found += operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
    return found


def spellings(source: str) -> list[tuple[int, str]]:
    """(line, name) of every protocol name the source spells as protocol."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            found += [(c.lineno, c.value) for c in operands(node) if is_text(c, NAMES | KEYS)]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if key is not None and is_text(key, KEYS):
                    found.append((key.lineno, key.value))
                    if is_text(value, NAMES):
                        found.append((value.lineno, value.value))
        elif isinstance(node, ast.keyword) and node.arg in KEYS and is_text(node.value, NAMES):
            found.append((node.value.lineno, node.value.value))
        elif isinstance(node, ast.Subscript) and is_text(node.slice, KEYS):
            found.append((node.slice.lineno, node.slice.value))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in KEY_METHODS
              and node.args and is_text(node.args[0], KEYS)):
            found.append((node.args[0].lineno, node.args[0].value))
        elif isinstance(node, ast.MatchValue) and is_text(node.value, NAMES):
            found.append((node.value.lineno, node.value.value))
    return sorted(found)


def source_files() -> list[Path]:
    files = sorted(path.relative_to(REPO_ROOT) for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py"))
    assert PROTOCOL_MODULE in files and len(files) > 50
    return files


def test_no_protocol_name_is_spelled_outside_the_protocol_module() -> None:
    problems = []
    for path in source_files():
        if path == PROTOCOL_MODULE:
            continue
        allowed = PENDING.get(path, set())
        problems += [f"{path}:{line}: {name!r}" for line, name in spellings((REPO_ROOT / path).read_text("utf-8"))
                     if name not in allowed]
    assert not problems, ("protocol names spelled outside interchange/protocol.py (use its enums, keys, records, "
                          "builders and parsers):\n" + "\n".join(problems))


def test_pending_exemptions_are_still_needed() -> None:
    """An exemption whose file no longer spells its names must go, so that a later spelling there is caught."""
    for path, allowed in PENDING.items():
        if (REPO_ROOT / path).is_file():
            spelled = {name for _, name in spellings((REPO_ROOT / path).read_text("utf-8"))}
            assert allowed <= spelled, f"{path} no longer spells {sorted(allowed - spelled)}: remove it from PENDING"


@pytest.mark.parametrize("code", [
    'if event["event"] == "done": pass',
    'kinds = {e.kind for e in x}\nif "done" in kinds: pass',
    'if kind in ("done", "cancelled"): pass',
    'payload = {"cmd": "render", "objects": []}',
    'send(json.dumps({"cmd": "quit"}))',
    'ready = read(lambda reply: reply.get("event") == "ready")',
    'print(json.dumps({"event": "warning", "message": text}))',
    'line = dict(event="progress", iteration=1)',
    'match kind:\n    case "preview":\n        pass',
    'if cmd != "ping": pass',
])
def test_a_spelled_name_is_caught(code: str) -> None:
    assert spellings(code), code


@pytest.mark.parametrize("code", [
    'class Phase(Enum):\n    DONE = "done"\n    CANCELLED = "cancelled"',
    'bl_context = "render"',
    'PREVIEW_KEY = "preview"',
    'check_size(render, sizes, "render")',
    'self.report({"ERROR"}, "done")',
    'print("render: no splat objects")',
    'reply = {"ok": False, "error": text}',
    'if level == "ERROR": pass',
])
def test_the_same_words_used_otherwise_pass(code: str) -> None:
    assert spellings(code) == [], code

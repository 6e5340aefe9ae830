"""Only the Matrix sender (``bridge/core/sender.py``) calls the homeserver: no other module
of the bridge imports mautrix's client or appservice API (the wiring in ``core/bridge.py``
builds the API object and hands it to the sender), but the encryption layer behind the sender
(``core/crypto/``): the bot's device uploads and queries keys and sends to-device messages
itself. Encryption and metrics rely on that."""

from __future__ import annotations

import ast
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[2] / "bridge"
CLIENT_MODULES = ("mautrix.appservice", "mautrix.client", "mautrix.api")
ALLOWED = {"core/sender.py", "core/bridge.py"}
ALLOWED_PACKAGES = ("core/crypto/",)


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_only_the_sender_calls_the_homeserver() -> None:
    offenders = []
    for path in sorted(BRIDGE.rglob("*.py")):
        name = path.relative_to(BRIDGE).as_posix()
        if name in ALLOWED or name.startswith(ALLOWED_PACKAGES):
            continue
        for module in _runtime_imports(ast.parse(path.read_text())):
            if module.startswith(CLIENT_MODULES):
                offenders.append(f"{name}: {module}")
    assert not offenders, offenders


def test_the_check_sees_an_offender() -> None:
    tree = ast.parse("from mautrix.appservice import IntentAPI\nimport os\n")
    assert _runtime_imports(tree) == ["mautrix.appservice", "os"]
    guarded = ast.parse("if TYPE_CHECKING:\n    from mautrix.api import Method\n")
    assert _runtime_imports(guarded) == []

"""The core never names a plugin: no string constant in ``collab_harness/`` (docstrings and comments aside) is the
name of a built-in component or plugin; the core asks components for roles and capabilities instead."""

from __future__ import annotations

import ast
from pathlib import Path

from collab_harness.plugins import build_plugin_manager

CORE = Path(__file__).resolve().parents[2] / "collab_harness"
#: Core modules that exist to serve plugins by name on purpose: the test kit's doubles and the HTTP test servers.
EXEMPT = {"testing"}
#: Strings that equal a plugin's name but are the core's own vocabulary: (file, string) -> why.
ALLOWED = {
    ("export.py", "sft"): "export kinds (SPEC §5), which the sft/dpo trainers happen to share",
    ("export.py", "dpo"): "export kinds (SPEC §5)",
    ("cli/export_cmd.py", "sft"): "export kinds (SPEC §5)",
    ("cli/export_cmd.py", "dpo"): "export kinds (SPEC §5)",
    ("components.py", "sft"): "TrainerBackend.data_format default: the export kind a trainer consumes",
    ("report/leaderboard.py", "interactivity"): "the board's interaction column id (the paper's column name)",
    ("report/runs.py", "token_amount"): "schema-1 manifests (before roles) named their efficiency scorer",
    ("report/runs.py", "interactivity"): "schema-1 manifests (before roles) named their interaction scorer",
}


def _constants(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_no_core_module_names_a_builtin_component() -> None:
    host = build_plugin_manager()
    names = {n for kind in ("task", "metric", "judge", "simulator", "trainer") for n in host.registry.names(kind)}
    assert {"shard-user", "llm-user", "math-chat", "pass_rate", "interactivity", "sft"} <= names
    found = []
    for path in sorted(CORE.rglob("*.py")):
        if EXEMPT & set(path.relative_to(CORE).parts):
            continue
        for line, value in _constants(ast.parse(path.read_text(encoding="utf-8"))):
            if value in names and (str(path.relative_to(CORE)), value) not in ALLOWED:
                found.append(f"{path.relative_to(CORE.parent)}:{line}: {value!r}")
    assert not found, "the core names plugins:\n" + "\n".join(found)

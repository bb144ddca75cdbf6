"""Every hook is documented and exercised (a hook nobody tests is a hook nobody can rely on)."""

from __future__ import annotations

import inspect
from pathlib import Path

from collab_harness import hookspecs

TESTS = Path(__file__).resolve().parents[1]


def _hooks() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")]


def test_every_hook_has_a_docstring_saying_when_it_fires() -> None:
    for name in _hooks():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "fires" in doc.lower() and "register" in doc, f"hook {name} is not documented"


def test_every_registration_hook_is_mapped_to_a_kind() -> None:
    assert sorted(_hooks()) == sorted(hookspecs.REGISTRATION_HOOKS)


def test_every_hook_is_used_in_a_test() -> None:
    text = "\n".join(p.read_text() for p in TESTS.rglob("*.py") if p.name != Path(__file__).name)
    for name in _hooks():
        assert f"def {name}(" in text, f"no test implements hook {name}"

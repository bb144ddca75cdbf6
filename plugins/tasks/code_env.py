"""What a code task's examples need from the Python environment, found from the source (``ast``), not by running it.

A missing library is the environment's failure, not the code's: :func:`required_modules` lists the top-level
modules an example's tests and reference solution import, :func:`missing_modules` those this interpreter cannot
find, and :func:`preflight` does it for many examples at once (``collab-harness doctor``). ``pass_rate`` uses the
same lists to tell an environment failure (a module the task needs is absent) from a wrong solution (the solution
imports something nobody needs that does not exist).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from collab_harness.types import Example

__all__ = [
    "PIP_NAMES",
    "ExampleEnv",
    "ImportRef",
    "missing_modules",
    "module_available",
    "pip_name",
    "preflight",
    "required_modules",
    "source_imports",
    "top_level",
]

#: Import name -> PyPI distribution, where they differ (for the doctor's install hint).
PIP_NAMES: Mapping[str, str] = {
    "sklearn": "scikit-learn", "skimage": "scikit-image", "PIL": "Pillow", "cv2": "opencv-python-headless",
    "bs4": "beautifulsoup4", "docx": "python-docx", "yaml": "PyYAML", "dateutil": "python-dateutil",
    "Crypto": "pycryptodome", "Levenshtein": "python-Levenshtein", "faker": "Faker", "mpl_toolkits": "matplotlib",
    "google": "protobuf", "dns": "dnspython", "magic": "python-magic", "jose": "python-jose",
    "OpenSSL": "pyOpenSSL", "tensorflow": "tensorflow-cpu", "sendgrid": "sendgrid", "flask_mail": "Flask-Mail",
    "flask_login": "Flask-Login", "flask_wtf": "Flask-WTF", "flask_restful": "Flask-RESTful", "wtforms": "WTForms",
    "Bio": "biopython", "statsmodels": "statsmodels", "librosa": "librosa", "soundfile": "soundfile",
    "pytesseract": "pytesseract", "xlwt": "xlwt", "mechanize": "mechanize", "natsort": "natsort",
}


class ImportRef(NamedTuple):
    """One import statement's module: ``optional`` when it sits in a ``try`` that catches ImportError."""

    module: str
    optional: bool
    bound: tuple[str, ...]


def top_level(module: str) -> str:
    return module.split(".", 1)[0]


def pip_name(module: str) -> str:
    top = top_level(module)
    return PIP_NAMES.get(top, top)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
    for n in names:
        ident = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else ""
        if ident in {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}:
            return True
    return False


def source_imports(source: str) -> list[ImportRef]:
    """Every absolute import in ``source``, in order (``from a.b import c`` gives ``a.b``), with the names each
    binds; an unparsable source has none."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    out: list[ImportRef] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try | ast.TryStar):
            guarded = optional or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, guarded)
            rest: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for other in rest:
                visit(other, optional)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                out.append(ImportRef(alias.name, optional, (bound,)))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module != "__future__":
            out.append(ImportRef(node.module, optional, tuple(a.asname or a.name for a in node.names if a.name != "*")))
        for sub in ast.iter_child_nodes(node):
            visit(sub, optional)

    visit(tree, False)
    return out


@lru_cache(maxsize=4096)
def module_available(name: str) -> bool:
    """Whether this interpreter can import top-level module ``name`` (found, not imported)."""
    top = top_level(name)
    if top in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _sources(example: Example) -> list[str]:
    tests = example.metadata.get("test")
    return [str(tests or ""), str(example.reference or "")]


def required_modules(example: Example) -> list[str]:
    """Top-level modules the example's tests or reference solution import without a fallback (sorted)."""
    mods = {top_level(ref.module) for src in _sources(example) for ref in source_imports(src) if not ref.optional}
    return sorted(mods)


def missing_modules(example: Example) -> list[str]:
    """The modules of :func:`required_modules` this environment lacks."""
    return [m for m in required_modules(example) if not module_available(m)]


@dataclass(frozen=True)
class ExampleEnv:
    """The environment check of one example."""

    example_id: str
    split: str
    required: tuple[str, ...]
    missing: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing


def preflight(examples: Iterable[tuple[str, Example]]) -> list[ExampleEnv]:
    """:func:`missing_modules` for every ``(split, example)``."""
    return [
        ExampleEnv(ex.id, split, tuple(required_modules(ex)), tuple(missing_modules(ex))) for split, ex in examples
    ]

"""The bundled, offline LaTeX renderer of the viewer: KaTeX, vendored from its npm package.

The viewer is one self-contained HTML file: KaTeX's script, its auto-render extension and its stylesheet are inlined,
and the stylesheet's fonts are inlined as ``data:`` URIs (woff2), so the page loads nothing from anywhere. The
vendored files live beside the templates (flat, so the package data glob ``report/templates/*`` ships them):

``katex.min.js``, ``katex-auto-render.min.js``, ``katex-inline.min.css`` (fonts inlined), ``KATEX_LICENSE``
(MIT) and ``KATEX_VERSION``.

Regenerate them from a package tarball (``npm pack katex`` writes ``katex-X.Y.Z.tgz``)::

    python -m collab_harness.report.katex katex-X.Y.Z.tgz
"""

from __future__ import annotations

import base64
import functools
import re
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TEMPLATES", "KatexAssets", "katex_assets", "vendor_katex"]

TEMPLATES = Path(__file__).with_name("templates")
_FILES = ("katex.min.js", "katex-auto-render.min.js", "katex-inline.min.css", "KATEX_LICENSE", "KATEX_VERSION")
_FONT_SRC = re.compile(r"src:url\((?:\./)?fonts/([A-Za-z0-9_-]+)\.woff2\)\s*format\([\"']woff2[\"']\)[^;}]*")


@dataclass(frozen=True)
class KatexAssets:
    version: str
    js: str
    auto_render: str
    css: str


@functools.cache
def katex_assets() -> KatexAssets | None:
    """The vendored KaTeX files, or None when they are missing (the viewer then shows LaTeX as source, with a
    note)."""
    try:
        return KatexAssets(
            version=(TEMPLATES / "KATEX_VERSION").read_text(encoding="utf-8").strip(),
            js=(TEMPLATES / "katex.min.js").read_text(encoding="utf-8"),
            auto_render=(TEMPLATES / "katex-auto-render.min.js").read_text(encoding="utf-8"),
            css=(TEMPLATES / "katex-inline.min.css").read_text(encoding="utf-8"),
        )
    except OSError:
        return None


def inline_fonts(css: str, fonts: dict[str, bytes]) -> str:
    """KaTeX's stylesheet with each ``@font-face`` source replaced by its woff2 font as a ``data:`` URI (the woff and
    ttf fallbacks are dropped: every browser that runs the viewer reads woff2)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in fonts:
            raise ValueError(f"KaTeX stylesheet names font {name}.woff2, which the package does not contain")
        data = base64.b64encode(fonts[name]).decode("ascii")
        return f'src:url(data:font/woff2;base64,{data}) format("woff2")'

    out, n = _FONT_SRC.subn(sub, css)
    if n == 0 or "url(fonts/" in out:
        raise ValueError("KaTeX stylesheet: font sources not in the expected form; update inline_fonts")
    return out


def vendor_katex(tarball: str | Path, dest: str | Path = TEMPLATES) -> list[Path]:
    """Write the vendored files from an npm tarball of ``katex`` into ``dest``; returns the paths written."""
    files: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                f = tar.extractfile(member)
                if f is not None:
                    files[member.name.removeprefix("package/")] = f.read()
    import json

    version = str(json.loads(files["package.json"])["version"])
    fonts = {Path(n).stem: b for n, b in files.items() if n.startswith("dist/fonts/") and n.endswith(".woff2")}
    css = inline_fonts(files["dist/katex.min.css"].decode("utf-8"), fonts)
    out = {
        "katex.min.js": files["dist/katex.min.js"],
        "katex-auto-render.min.js": files["dist/contrib/auto-render.min.js"],
        "katex-inline.min.css": css.encode("utf-8"),
        "KATEX_LICENSE": files["LICENSE"],
        "KATEX_VERSION": (version + "\n").encode(),
    }
    for name, data in out.items():
        if b"</script" in data.lower() or b"</style" in data.lower():
            raise ValueError(f"{name} contains a closing tag and cannot be inlined")
    d = Path(dest)
    written = []
    for name in _FILES:
        p = d / name
        p.write_bytes(out[name])
        written.append(p)
    katex_assets.cache_clear()
    return written


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    if len(sys.argv) != 2:
        print("usage: python -m collab_harness.report.katex katex-X.Y.Z.tgz", file=sys.stderr)
        sys.exit(2)
    for path in vendor_katex(sys.argv[1]):
        print(path)

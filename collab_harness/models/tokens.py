"""Token counting with the tokenizer of the model that produced the text.

Resolution (``get_tokenizer``): ``"auto"`` uses the assistant model's own tokenizer when it is known (``local/...``
through the embedded provider, litellm model strings through ``litellm.token_counter``), else tiktoken
``cl100k_base``; ``"cl100k_base"`` (and paper-parity mode) forces tiktoken; ``"local/..."`` names a local model. The
name of the tokenizer actually used, and why when it is a fallback, travels with it so numbers from different
tokenizers are never silently compared. Lives in the core because both the ``token_amount`` metric and MR's paper
form (which needs T without that metric) count tokens.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = ["Tokenizer", "get_tokenizer"]

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


class Tokenizer(NamedTuple):
    """A token counter plus the name it is recorded under (and why, when it is a fallback)."""

    name: str
    count: Callable[[str], int]
    note: str | None = None


_cache: dict[str, Tokenizer] = {}
_cache_lock = threading.Lock()
_load_lock = threading.RLock()  # re-entrant: a local fallback loads cl100k_base inside a load

def _tiktoken_cache_dir() -> str:
    """The directory tiktoken reads its BPE files from (same precedence as ``tiktoken.load``)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    import tempfile

    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _seed_cl100k_cache() -> None:
    """tiktoken downloads cl100k_base on first use; offline that fails. litellm (a base dependency) ships the very
    same file, so copy it into tiktoken's cache when the cache lacks it (hash-checked, atomic)."""
    import importlib.util

    cache_dir = _tiktoken_cache_dir()
    if not cache_dir:  # caching disabled by the user: nothing to seed
        return
    key = hashlib.sha1(_CL100K_URL.encode()).hexdigest()
    target = Path(cache_dir) / key
    if target.exists():
        return
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return
    bundled = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers" / key
    if not bundled.is_file() or hashlib.sha256(bundled.read_bytes()).hexdigest() != _CL100K_SHA256:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.copyfile(bundled, tmp)
    os.replace(tmp, target)


_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _load_cl100k() -> Tokenizer:
    try:
        _seed_cl100k_cache()
    except OSError:
        pass  # tiktoken may still find or fetch the file itself
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base")
    except Exception as e:
        # Never crash a run over token counting: count words and punctuation instead, and say so.
        return Tokenizer(
            "regex-words",
            lambda text: len(_WORDISH.findall(text)),
            f"tiktoken cl100k_base unavailable ({type(e).__name__}: {str(e)[:200]}); counted words and punctuation",
        )
    return Tokenizer("cl100k_base", lambda text: len(enc.encode(text, disallowed_special=())))


def _load_local(model: str) -> Tokenizer:
    try:
        from collab_harness.models.local import get_tokenizer as local_tokenizer

        tok = local_tokenizer(model)
    except Exception as e:
        fb = _cached("cl100k_base")
        return fb._replace(note=f"tokenizer of {model!r} unavailable ({type(e).__name__}: {str(e)[:200]}); "
                                f"used {fb.name}" + (f"; {fb.note}" if fb.note else ""))

    def count(text: str) -> int:
        try:
            return len(tok.encode(text, add_special_tokens=False))
        except TypeError:  # tokenizers without the keyword
            return len(tok.encode(text))

    return Tokenizer(model, count)


def _load_litellm(model: str) -> Tokenizer:
    try:
        import litellm

        litellm.token_counter(model=model, text="probe")
    except Exception as e:
        fb = _cached("cl100k_base")
        return fb._replace(note=f"litellm cannot count tokens for {model!r} ({type(e).__name__}); used {fb.name}")
    # litellm picks the model's tokenizer (tiktoken for OpenAI-family, a HF tokenizer where it knows one) and
    # falls back to its default encoding otherwise; it uses its own bundled tiktoken files, so this is offline-safe.
    return Tokenizer(f"litellm:{model}", lambda text: int(litellm.token_counter(model=model, text=text)))


def _cached(spec: str) -> Tokenizer:
    with _cache_lock:
        hit = _cache.get(spec)
    if hit is not None:
        return hit
    # One load at a time: metrics run in worker threads, and concurrent first imports of transformers' lazy module
    # raise "cannot import name 'AutoTokenizer'" in the losers (measured in a run at concurrency 8).
    with _load_lock:
        with _cache_lock:
            hit = _cache.get(spec)
        if hit is not None:
            return hit
        if spec == "cl100k_base":
            tok = _load_cl100k()
        elif spec.startswith("local/"):
            tok = _load_local(spec)
        elif spec.startswith("litellm:"):
            tok = _load_litellm(spec.removeprefix("litellm:"))
        else:
            raise ValueError(f"unknown tokenizer spec {spec!r}")
        if spec != "cl100k_base" and tok.name not in (spec, f"litellm:{spec.removeprefix('litellm:')}"):
            return tok  # a fallback after a load error is not cached: the next call tries the real tokenizer again
        with _cache_lock:
            return _cache.setdefault(spec, tok)


def get_tokenizer(option: str = "auto", *, assistant_model: str | None = None, parity: bool = False) -> Tokenizer:
    """Resolve the tokenizer for an option value and (for ``"auto"``) the assistant model. Cached per process."""
    if parity or option == "cl100k_base":
        return _cached("cl100k_base")
    if option.startswith("local/"):
        return _cached(option)
    if option != "auto":
        return _cached(f"litellm:{option.removeprefix('litellm:')}")
    model = (assistant_model or "").strip()
    if model.startswith("local/"):
        return _cached(model)
    if not model or model.startswith("scripted/"):
        fb = _cached("cl100k_base")
        why = f"assistant model {model!r} has no tokenizer" if model else "assistant model unknown"
        return fb._replace(note=f"{why}; used {fb.name}" + (f"; {fb.note}" if fb.note else ""))
    return _cached(f"litellm:{model}")

"""``token_amount``: how much the user had to read and type, and how many exchanges it took.

Counts over the *forward part* of the conversation (``ScoringContext.forward``): in MR that is the candidate response
and its simulated future; in evaluation (``forward_start=0``) the whole dialogue. The primary value is the number of
assistant tokens (what the leaderboard shows as k-tokens, divided by 1000).

Tokenizer (option ``tokenizer``): ``"auto"`` uses the assistant model's own tokenizer when it is known
(``ctx.extra["assistant_model"]``: ``local/...`` through the embedded provider, litellm model strings through
``litellm.token_counter``), else tiktoken ``cl100k_base``; ``"cl100k_base"`` forces tiktoken (paper-parity mode,
``ctx.extra["parity"]``, always uses it); ``"local/..."`` names a local model explicitly. The tokenizer actually used
is recorded in ``details`` so numbers from different tokenizers are never silently compared.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import Field

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Metric, ScoringContext
from collab_harness.types import Score

__all__ = ["TokenAmount", "TokenAmountOptions", "Tokenizer", "get_tokenizer", "register_metrics"]

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


class TokenAmountOptions(ComponentOptions):
    tokenizer: str = Field(
        "auto",
        min_length=1,
        description='"auto" (the assistant model\'s tokenizer when known, else cl100k_base), "cl100k_base", '
        'a "local/..." model, or a litellm model string.',
    )


class TokenAmount(Metric):
    """Assistant tokens read, user tokens typed and exchanges, over the forward part of the conversation."""

    name: ClassVar[str] = "token_amount"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = "Tokens the user reads (primary) and types, and the number of exchanges."
    Options: ClassVar[type[ComponentOptions]] = TokenAmountOptions
    value_range: ClassVar[tuple[float, float]] = (0.0, math.inf)
    higher_is_better: ClassVar[bool] = False
    needs_artefact: ClassVar[bool] = False

    def compute(self, ctx: ScoringContext) -> Score:
        opts: Any = self.options
        tok = get_tokenizer(
            opts.tokenizer,
            assistant_model=ctx.extra.get("assistant_model"),
            parity=bool(ctx.extra.get("parity")),
        )
        msgs = ctx.conversation.messages
        start = max(0, ctx.forward_start)
        assistant = user = exchanges = 0
        try:
            for i in range(start, len(msgs)):
                m = msgs[i]
                if m.role == "assistant":
                    assistant += tok.count(m.content)
                    # An assistant reply closes an exchange opened by the user message before it, which in MR is
                    # the last message of the history (just before the forward part).
                    if i > 0 and msgs[i - 1].role == "user":
                        exchanges += 1
                elif m.role == "user":
                    user += tok.count(m.content)
        except Exception as e:
            return Score.failed(self.name, f"sample {ctx.example.id!r}: tokenizer {tok.name} failed: "
                                           f"{type(e).__name__}: {e}", tokenizer=tok.name)
        details: dict[str, Any] = {"tokenizer": tok.name, "forward_start": start}
        if tok.note:
            details["tokenizer_note"] = tok.note
        return Score(
            component=self.name,
            value=float(assistant),
            values={
                "assistant_tokens": float(assistant),
                "user_tokens": float(user),
                "exchanges": float(exchanges),
                "total_tokens": float(assistant + user),
            },
            details=details,
        )


@hookimpl
def register_metrics(register: Any) -> None:
    register(TokenAmount)

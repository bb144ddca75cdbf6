"""JSON Schema constrained decoding for the local provider, with xgrammar.

A request whose ``params.json_schema`` is set gets an xgrammar ``GrammarMatcher`` for that schema; the batch's
:class:`~collab_harness.models._sampling.RowProcessor` masks that row's logits at every step, so the reply is JSON
matching the schema (or is cut by ``max_tokens``). Rows with and without schemas share a batch.

Token budget: a grammar says what may come next, not how long it takes, and a small model at temperature 0 can loop
inside a free string (or a number) until ``max_tokens`` cuts the JSON. In a row's last tokens (:func:`reserve`)
only the allowed tokens most likely to end the open value stay allowed (a quote first, then ``}``/``]``, then a comma;
see :meth:`GrammarCache.closers`), which closes the open string or number and lets the grammar's forced keys finish
the object. The reserve is sized by the
schema: twice the tokens of its shortest completion with this tokenizer (:meth:`GrammarCache.closing_need`).

Compiled grammars are cached per (tokenizer, vocabulary size, stop tokens) and schema: :class:`GrammarCache` lives
on the loaded model and is replaced when a live model's tokenizer is swapped. Compiling the judge's verdict schema
takes ~15 ms; importing xgrammar takes seconds, so it is imported on the first constrained request only.

When xgrammar cannot be imported the provider generates unconstrained and warns once; structured calls still
validate and retry as they do for any provider.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import torch

__all__ = ["GrammarCache", "allocate_bitmask", "apply_bitmask", "available", "reserve"]

_log = logging.getLogger(__name__)

_state: dict[str, Any] = {}
_state_lock = threading.Lock()

#: Compiled grammars kept per tokenizer (each is small; schemas are few per run).
MAX_GRAMMARS = 64


def _xgr() -> Any:
    """The xgrammar module, or None when it cannot be imported (warned once per process)."""
    with _state_lock:
        if "module" not in _state:
            try:
                import xgrammar

                _state["module"] = xgrammar
            except Exception as exc:  # ImportError, or a broken native extension
                _state["module"] = None
                _log.warning(
                    "xgrammar is not importable (%s: %s): the local provider ignores JSON Schemas and generates "
                    "unconstrained; install collab-harness[local] to enforce them", type(exc).__name__, exc)
        return _state["module"]


def available() -> bool:
    """Whether schema-constrained decoding is possible in this process."""
    return _xgr() is not None


def reserve(max_tokens: int, need: int) -> int:
    """How many of a constrained row's last tokens are kept for closing its JSON, given the tokens a shortest
    completion of its schema takes: twice that plus a margin (a half-written value must be closed first), at most
    half of the budget."""
    return min(max_tokens // 2, 2 * need + 4)


def closing_pool(allowed: torch.Tensor, tiers: torch.Tensor) -> torch.Tensor:
    """Of the ``allowed`` tokens (bool mask), those of the highest closing tier present (all allowed if none)."""
    t = torch.where(allowed, tiers.to(allowed.device, torch.int16), torch.tensor(-1, dtype=torch.int16,
                                                                                  device=allowed.device))
    top = int(t.max())
    return allowed & (t == top) if top > 0 else allowed


def allocate_bitmask(rows: int, vocab_size: int) -> torch.Tensor:
    bitmask: torch.Tensor = _xgr().allocate_token_bitmask(rows, vocab_size)
    return bitmask


def apply_bitmask(scores: torch.Tensor, bitmask: torch.Tensor, rows: list[int]) -> None:
    """Set the logits of every token the grammar forbids to -inf, in place, for ``rows`` only."""
    xgr = _xgr()
    if scores.device.type == "cuda":
        xgr.apply_token_bitmask_inplace(scores, bitmask.to(scores.device), indices=rows)
        return
    if scores.device.type == "cpu":
        xgr.apply_token_bitmask_inplace(scores, bitmask, indices=rows)
        return
    cpu = scores.to("cpu")  # other devices (mps ...): mask on the CPU and copy back
    xgr.apply_token_bitmask_inplace(cpu, bitmask, indices=rows)
    scores.copy_(cpu.to(scores.device))


class GrammarCache:
    """Compiled JSON-Schema grammars for one tokenizer. Thread-safe; compile once per schema."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> None:
        self.tokenizer = tokenizer  # kept alive: the cache is only valid for this very object
        self.vocab_size = vocab_size
        self.stop_token_ids = list(stop_token_ids)
        self._compiler: Any = None
        self._info: Any = None
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self._closers: torch.Tensor | None = None
        self._lengths = torch.zeros(0)
        self._need: dict[str, int] = {}
        self._lock = threading.RLock()

    def matches(self, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> bool:
        return (tokenizer is self.tokenizer and vocab_size == self.vocab_size
                and list(stop_token_ids) == self.stop_token_ids)

    def compiled(self, schema: str) -> Any:
        """The compiled grammar of ``schema`` (JSON text of a JSON Schema)."""
        xgr = _xgr()
        with self._lock:
            hit = self._grammars.get(schema)
            if hit is not None:
                self._grammars.move_to_end(schema)
                return hit
            if self._compiler is None:
                self._info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab_size,
                                                                stop_token_ids=self.stop_token_ids)
                self._compiler = xgr.GrammarCompiler(self._info, max_threads=1)
            # Compact JSON (no free whitespace): small models otherwise drift into runs of spaces and newlines.
            grammar = self._compiler.compile_json_schema(schema, any_whitespace=False)
            self._grammars[schema] = grammar
            while len(self._grammars) > MAX_GRAMMARS:
                self._grammars.popitem(last=False)
            return grammar

    def closers(self) -> torch.Tensor:
        """Per token, how surely it ends the open JSON value: 3 holds a quote (ends a string), 2 a ``}`` or ``]``
        (ends an object or array), 1 a comma (ends a number or moves past a value), 0 anything else, and any token
        with a backslash (an escaped quote keeps a string open). Used to wind a row down before its budget ends."""
        with self._lock:
            if self._closers is None:
                if self._compiler is None:
                    self.compiled('{"type":"object"}')  # builds the tokenizer info
                vocab = self._info.decoded_vocab[: self.vocab_size]
                tiers = torch.zeros(self.vocab_size, dtype=torch.int8)
                lengths = torch.zeros(self.vocab_size, dtype=torch.float32)
                for i, b in enumerate(vocab):
                    lengths[i] = len(b)
                    if not b or b"\\" in b:
                        continue
                    tiers[i] = 3 if b'"' in b else 2 if (b"}" in b or b"]" in b) else 1 if b"," in b else 0
                self._closers, self._lengths = tiers, lengths
            return self._closers

    def closing_need(self, schema: str) -> int:
        """Tokens a shortest completion of ``schema``'s JSON takes with this tokenizer (cached per schema): found by
        walking a matcher from the start, taking the longest allowed value-ending token when there is one, else the
        longest allowed token, until the grammar accepts. Sizes a row's wind-down reserve; 64 when the walk does
        not finish (a schema that forces long content)."""
        with self._lock:
            hit = self._need.get(schema)
            if hit is not None:
                return hit
            tiers = self.closers()
            m = self.matcher(schema)
            mask = allocate_bitmask(1, self.vocab_size)
            stops = torch.tensor(self.stop_token_ids, dtype=torch.long)
            need = 64
            for step in range(256):
                m.fill_next_token_bitmask(mask, 0)
                allowed = torch.zeros(1, self.vocab_size)
                apply_bitmask(allowed, mask, [0])
                ok = torch.isfinite(allowed[0])
                if bool(ok[stops].any()):
                    need = step + 1
                    break
                pool = closing_pool(ok, tiers)
                if not bool(pool.any()):
                    break
                tok = int(torch.argmax(torch.where(pool, self._lengths, torch.tensor(-1.0))))
                if not m.accept_token(tok):
                    break
            self._need[schema] = need
            return need

    def matcher(self, schema: str) -> Any:
        """A fresh matcher (one per row and generation) for ``schema``."""
        return _xgr().GrammarMatcher(self.compiled(schema))

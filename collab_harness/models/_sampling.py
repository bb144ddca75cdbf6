"""Per-row sampling and constraints inside one batched HF ``generate`` call (used by :mod:`.local`).

HF ``generate`` samples a whole batch from the global torch generator, so a row's draws depend on which other rows
share its batch. :class:`RowProcessor` instead chooses each row's next token itself and hands ``generate`` (run in
greedy mode) logits where only that token is allowed; ``generate`` keeps its KV cache, padding and stopping.

Per row, at every step:

1. constrained rows (a JSON Schema) get their grammar mask from an xgrammar ``GrammarMatcher`` (:mod:`._constrained`);
2. sampled rows (temperature > 0) draw from ``softmax(logits / temperature)`` after top-k / top-p, with one uniform
   number from the row's own ``torch.Generator``; the drawn token is the only one left;
3. greedy rows keep their (masked) logits, and ``generate``'s argmax picks the token, as it always did.

A row's draws therefore depend only on its own prompt, parameters and seed: the same request gives the same text alone
or in any batch (up to float rounding differences between batch shapes, which could flip a draw only when a uniform
falls within ~1e-6 of a bucket edge).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["RowProcessor", "RowSpec", "row_generator", "sample_token"]

_log = logging.getLogger(__name__)


def row_generator(seed: int | None, sample_index: int = 0) -> torch.Generator:
    """A CPU generator for one row: seeded from ``(seed, sample_index)``, or from OS entropy when ``seed`` is None.

    The sample index takes part so that repeated samples of one request that share a seed still differ."""
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        digest = hashlib.sha256(f"collab-harness-row:{seed}:{sample_index}".encode()).digest()
        g.manual_seed(int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF)
    return g


def sample_token(logits: torch.Tensor, *, temperature: float, top_p: float = 1.0, top_k: int = 0,
                 generator: torch.Generator) -> int:
    """One token id drawn from ``logits`` (1-D, CPU) with one uniform from ``generator``.

    Exactly one number is drawn per call whatever the logits, so a row's stream of draws does not depend on
    the values it sees (a batch shape cannot shift it)."""
    u = float(torch.rand((), generator=generator))
    x = logits.float() / max(temperature, 1e-6)
    if not bool(torch.isfinite(x).any()):
        return int(torch.argmax(logits))  # nothing allowed: let the caller's fallback deal with it
    if 0 < top_k < x.shape[-1]:
        kth = torch.topk(x, top_k).values[-1]
        x = x.masked_fill(x < kth, float("-inf"))
    probs = torch.softmax(x, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        cum = torch.cumsum(sorted_p, dim=-1)
        keep = (cum - sorted_p) < top_p  # the smallest prefix whose mass reaches top_p (at least one token)
        keep[0] = True
        sorted_p = sorted_p * keep
        cdf = torch.cumsum(sorted_p, dim=-1)
        pos = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])]), right=True)[0])
        return int(order[min(pos, order.shape[0] - 1)])
    cdf = torch.cumsum(probs, dim=-1)
    pos = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])]), right=True)[0])
    return min(pos, probs.shape[0] - 1)


@dataclass
class RowSpec:
    """How one row of a batch picks its tokens."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    generator: torch.Generator | None = None  # None: greedy
    matcher: Any = None  # an xgrammar GrammarMatcher, or None: unconstrained
    #: Constrained rows: from this many generated tokens on, only value-ending tokens stay allowed when possible
    #: (the row's budget minus its closing reserve, see _constrained); None: never.
    wind_down_at: int | None = None
    closers: torch.Tensor | None = None  # constrained rows: each token's closing tier (see _constrained.closers)
    done: bool = field(default=False, init=False)  # emitted an end-of-sequence token
    grammar_error: str | None = field(default=None, init=False)


class RowProcessor:
    """A ``generate`` logits processor applying each row's own constraint and sampler (see the module docstring).

    Use a fresh instance per ``generate`` call (it tracks the rows' progress)."""

    def __init__(self, rows: list[RowSpec], eos_ids: list[int], vocab_size: int) -> None:
        self.rows = rows
        self.eos_ids = list(eos_ids)
        self._eos = set(eos_ids)
        self.vocab_size = vocab_size
        self._started = False
        self._generated = 0  # tokens generated so far (the same for every row of a generate call)
        self._bitmask: torch.Tensor | None = None

    @property
    def constrained(self) -> bool:
        return any(r.matcher is not None for r in self.rows)

    def _advance(self, input_ids: torch.Tensor) -> None:
        """Feed the tokens ``generate`` appended at the last step to the rows' matchers."""
        last = input_ids[:, -1].tolist()
        for row, tok in zip(self.rows, last, strict=True):
            if row.done:
                continue
            constrained = row.matcher is not None and row.grammar_error is None and not row.matcher.is_terminated()
            if constrained and not row.matcher.accept_token(int(tok)):
                # Cannot happen when the mask was applied; if it does, stop constraining this row rather than fail
                # the batch: its reply will fail validation downstream, with the reason logged here.
                row.grammar_error = f"token {tok} rejected by the grammar"
                _log.warning("constrained decoding: %s; the row continues unconstrained", row.grammar_error)
            if int(tok) in self._eos:
                row.done = True

    def _apply_grammar(self, scores: torch.Tensor) -> None:
        from . import _constrained

        live = [i for i, r in enumerate(self.rows)
                if r.matcher is not None and not r.done and r.grammar_error is None]
        if not live:
            return
        if self._bitmask is None:
            self._bitmask = _constrained.allocate_bitmask(len(self.rows), self.vocab_size)
        ended = []
        for i in live:
            m = self.rows[i].matcher
            if m.is_terminated():
                ended.append(i)  # the JSON is complete and its stop token accepted: end the row
            else:
                m.fill_next_token_bitmask(self._bitmask, i)
        live = [i for i in live if i not in ended]
        if live:
            _constrained.apply_bitmask(scores, self._bitmask, live)
            for i in live:
                row = self.rows[i]
                if row.closers is not None and row.wind_down_at is not None and self._generated >= row.wind_down_at:
                    # Winding down: keep only the tokens most likely to end the open value (see _constrained).
                    allowed = scores[i] > float("-inf")
                    if bool(allowed.any()):
                        scores[i].masked_fill_(~_constrained.closing_pool(allowed, row.closers), float("-inf"))
            blocked = scores[live].amax(dim=-1) == float("-inf")  # one reduction for all rows
            ended += [i for i, b in zip(live, blocked.tolist(), strict=True) if b]
        for i in ended:
            # The JSON is complete, or nothing the grammar allows survived the other processors (e.g.
            # min_new_tokens hides the stop token): end the row with a stop token, never an arbitrary one.
            scores[i].fill_(float("-inf"))
            scores[i, self.eos_ids[0]] = 0.0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # Small per-row ops over one vocabulary each: torch would run every one as a parallel region, and on a busy
        # machine each region waits for a time slice per thread (measured: 70 ms per step for 10 constrained rows
        # with 2 threads, 18 ms with 1). One thread for this step's bookkeeping, then back to the caller's setting.
        prev = torch.get_num_threads()
        if prev > 1:
            torch.set_num_threads(1)
        try:
            return self._process(input_ids, scores)
        finally:
            if prev > 1:
                torch.set_num_threads(prev)

    def _process(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._started:
            self._advance(input_ids)
            self._generated += 1
        self._started = True
        if self.constrained:
            self._apply_grammar(scores)
        sampled = [i for i, r in enumerate(self.rows) if r.generator is not None and not r.done]
        if sampled:
            picks = scores[sampled].detach().to("cpu", torch.float32)  # one transfer for all sampled rows
            for k, i in enumerate(sampled):
                r = self.rows[i]
                assert r.generator is not None
                tok = sample_token(picks[k], temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                                   generator=r.generator)
                scores[i].fill_(float("-inf"))
                scores[i, tok] = 0.0  # the only finite logit: generate's argmax takes it
        return scores

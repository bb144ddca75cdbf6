"""Text-overlap metrics for document tasks: ``bleu`` (word-level, sacrebleu) and ``char_bleu`` (paper parity).

Both compare the extracted document (``ScoringContext.artefact``) with the example's reference and report on a
0–1 scale, so that their MR weights are comparable to the other 0–1 metrics.

``char_bleu`` reproduces what the CollabLLM reference code computed: ``nltk.translate.bleu_score.sentence_bleu(
[reference], hypothesis)`` called on raw strings, so NLTK iterated characters and the n-grams were character
1–4-grams (spaces included), uniform weights, no smoothing. SPEC §3 calls this a mistake; it stays available only
to compare with the paper's numbers. The formula is re-implemented here (pure Python, no NLTK dependency) and the
tests check it against NLTK itself when NLTK is installed.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NamedTuple

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Metric, ScoringContext
from collab_harness.types import Score

__all__ = ["BleuMetric", "BleuResult", "CharBleuMetric", "char_bleu", "resolve_document", "word_bleu"]


class BleuResult(NamedTuple):
    """A word-level BLEU on the 0–1 scale plus sacrebleu's parts (precisions in percent, as sacrebleu gives them)."""

    value: float
    precisions: tuple[float, ...]
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    signature: str


def word_bleu(hypothesis: str, reference: str, *, tokenize: str = "13a", lowercase: bool = False) -> BleuResult:
    """Sentence-level word BLEU of ``hypothesis`` against ``reference``: sacrebleu with effective order (so short
    texts are not zeroed by missing 4-grams) and exponential smoothing, divided by 100 to lie in [0, 1]."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=True)
    s = bleu.sentence_score(hypothesis, [reference])
    # sacrebleu can return 100.00000000000004 for identical texts: clamp rounding noise into the declared range.
    value = min(1.0, max(0.0, s.score / 100.0))
    return BleuResult(
        value=value,
        precisions=tuple(float(p) for p in s.precisions),
        brevity_penalty=float(s.bp),
        hyp_len=int(s.sys_len),
        ref_len=int(s.ref_len),
        signature=str(bleu.get_signature()),
    )


def _ngrams(seq: Sequence[Any], n: int) -> Counter[tuple[Any, ...]]:
    if len(seq) < n:
        return Counter()
    return Counter(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))


def char_bleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    """NLTK ``sentence_bleu([reference], hypothesis)`` on raw strings (character n-grams), without NLTK.

    Same steps as NLTK 3.x: clipped n-gram precision with denominator ``max(1, count)``; 0 if no character matches;
    no smoothing, where a zero precision becomes ``sys.float_info.min`` (so the score is ~1e-77, not exactly 0);
    brevity penalty ``exp(1 - r/c)`` when the hypothesis is not longer than the reference, 0 for an empty one.
    """
    hyp, ref = list(hypothesis), list(reference)
    numerators: list[int] = []
    denominators: list[int] = []
    for n in range(1, max_n + 1):
        counts = _ngrams(hyp, n)
        ref_counts = _ngrams(ref, n)
        numerators.append(sum(min(c, ref_counts[g]) for g, c in counts.items()))
        denominators.append(max(1, sum(counts.values())))
    if numerators[0] == 0:
        return 0.0
    c, r = len(hyp), len(ref)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    weight = 1.0 / max_n
    logs = (
        weight * math.log(num / den if num else sys.float_info.min)
        for num, den in zip(numerators, denominators, strict=True)
    )
    return bp * math.exp(math.fsum(logs))


def resolve_document(ctx: ScoringContext) -> tuple[str | None, str]:
    """The document to score and where it came from: the shared extracted artefact, else the task's rule-based
    extractor (so the metric also works when no extraction model is configured)."""
    if ctx.artefact is not None:
        return ctx.artefact, "artefact"
    if ctx.task is not None:
        doc = ctx.task.extract_rule(ctx.example, ctx.conversation)
        if doc is not None:
            return doc, "extract_rule"
    return None, "none"


class BleuOptions(ComponentOptions):
    tokenize: Literal["13a", "intl", "none"] = "13a"
    lowercase: bool = False


class BleuMetric(Metric):
    """Word-level BLEU of the extracted document against the reference article (sacrebleu, SPEC §3).

    Scale: **0–1** (sacrebleu's 0–100 score divided by 100) so its MR weight is comparable to the other metrics;
    identical texts score 1.0, unrelated texts ~0. Sentence BLEU with effective order and exponential smoothing;
    the sacrebleu signature is recorded in ``details``.
    """

    name: ClassVar[str] = "bleu"
    description: ClassVar[str] = "word-level BLEU (sacrebleu) of the extracted document vs the reference, 0-1 scale"
    Options: ClassVar[type[ComponentOptions]] = BleuOptions
    needs_artefact: ClassVar[bool] = True

    def compute(self, ctx: ScoringContext) -> Score:
        opts: Any = self.options
        if not ctx.example.reference:
            return Score.failed(self.name, f"example {ctx.example.id!r} has no reference text")
        doc, source = resolve_document(ctx)
        if doc is None:
            return Score.failed(self.name, f"no document could be extracted for example {ctx.example.id!r}")
        r = word_bleu(doc, ctx.example.reference, tokenize=opts.tokenize, lowercase=opts.lowercase)
        return Score(
            component=self.name,
            value=r.value,
            details={
                "scale": "0-1 (sacrebleu score / 100)",
                "sacrebleu_score": r.value * 100.0,
                "precisions": list(r.precisions),
                "brevity_penalty": r.brevity_penalty,
                "hyp_len": r.hyp_len,
                "ref_len": r.ref_len,
                "signature": r.signature,
                "document_source": source,
            },
        )


class CharBleuMetric(Metric):
    """Character-level BLEU exactly as the CollabLLM reference code computed it (paper parity only).

    Scale: 0–1 (NLTK's native scale). Tokens are characters, including spaces, so a word-order shuffle of the
    reference still scores high; prefer ``bleu`` for anything but comparing with the paper.
    """

    name: ClassVar[str] = "char_bleu"
    description: ClassVar[str] = "character-level BLEU as in the CollabLLM paper code (parity only), 0-1 scale"
    needs_artefact: ClassVar[bool] = True

    def compute(self, ctx: ScoringContext) -> Score:
        if not ctx.example.reference:
            return Score.failed(self.name, f"example {ctx.example.id!r} has no reference text")
        doc, source = resolve_document(ctx)
        if doc is None:
            return Score.failed(self.name, f"no document could be extracted for example {ctx.example.id!r}")
        return Score(
            component=self.name,
            value=char_bleu(doc, ctx.example.reference),
            details={
                "scale": "0-1 (nltk sentence_bleu on raw strings: character 1-4-grams, no smoothing)",
                "hyp_chars": len(doc),
                "ref_chars": len(ctx.example.reference),
                "document_source": source,
            },
        )


@hookimpl
def register_metrics(register: Any) -> None:
    register(BleuMetric)
    register(CharBleuMetric)

"""bleu (word-level, sacrebleu, 0-1 scale) and char_bleu (paper parity: NLTK sentence_bleu on raw strings)."""

from __future__ import annotations

import asyncio
import random
import warnings

import pytest
from collab_harness_plugins.metrics import text
from collab_harness_plugins.metrics.text import BleuMetric, CharBleuMetric, char_bleu, word_bleu
from collab_harness_plugins.tasks.doc_chat import DocChatTask

from collab_harness import build_plugin_manager
from collab_harness.components import ScoringContext
from collab_harness.testing import MetricContract
from collab_harness.types import Conversation, Example

REF = (
    "Remote work changed how teams communicate. Most conversations turned into writing, and good writers put "
    "the conclusion first so busy readers know what to do next."
)
SHUFFLED = " ".join(reversed(REF.split()))
UNRELATED = "Octopuses change colour in a fraction of a second while hiding between coral and rocks at night."


def _example(reference: str = REF) -> Example:
    return Example(id="doc-chat/t-1", task="doc-chat", prompt="Write about remote work.", reference=reference)


def _score(metric: BleuMetric | CharBleuMetric, ctx: ScoringContext) -> float:
    value = asyncio.run(metric.score(ctx)).value
    assert value is not None
    return value


def test_bleu_identical_is_one_and_unrelated_near_zero() -> None:
    assert word_bleu(REF, REF).value == 1.0
    assert word_bleu(UNRELATED, REF).value < 0.02
    m = BleuMetric()
    assert _score(m, ScoringContext(example=_example(), conversation=Conversation(), artefact=REF)) == 1.0
    assert _score(m, ScoringContext(example=_example(), conversation=Conversation(), artefact=UNRELATED)) < 0.02


def test_bleu_details_state_the_scale() -> None:
    s = BleuMetric().compute(ScoringContext(example=_example(), conversation=Conversation(), artefact=SHUFFLED))
    assert s.details["scale"].startswith("0-1")
    assert s.details["sacrebleu_score"] == pytest.approx(100 * s.value)
    assert "tok:13a" in s.details["signature"]


def test_shuffle_high_in_char_bleu_low_in_bleu() -> None:
    # Characters survive a word-order shuffle; word 2- to 4-grams do not: the paper-era metric was lenient.
    cb, wb = char_bleu(SHUFFLED, REF), word_bleu(SHUFFLED, REF).value
    assert cb > 0.5
    assert wb < 0.25
    assert cb > wb + 0.4


def test_char_bleu_golden_values() -> None:
    # Values printed by nltk 3.10.4: sentence_bleu([ref], hyp) on raw strings (the CollabLLM reference code).
    ref = "Remote work changed how teams communicate, plan and ship software."
    shuf = "software. ship and plan communicate, teams how changed work Remote"
    assert char_bleu(shuf, ref) == pytest.approx(0.8603254070579575, abs=1e-12)
    fox = char_bleu("The quick brown fox jumps over the lazy dog.", "A quick brown dog jumps over the lazy fox!")
    assert fox == pytest.approx(0.8305625982307949, abs=1e-12)
    assert char_bleu("", ref) == 0.0
    assert char_bleu("zzz", ref) == 0.0
    assert char_bleu(ref, ref) == pytest.approx(1.0)


def test_char_bleu_equals_nltk_on_random_pairs() -> None:
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "quickly", "away", "home", ",", "."]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns on zero n-gram overlaps
        for _ in range(400):
            hyp = " ".join(rng.choice(words) for _ in range(rng.randint(0, 14)))
            ref = " ".join(rng.choice(words) for _ in range(rng.randint(1, 14)))
            assert char_bleu(hyp, ref) == nltk_bleu.sentence_bleu([ref], hyp)


def test_falls_back_to_task_rule_extraction() -> None:
    task = DocChatTask(source="sample")
    ex = task.load("test")[0]
    conv = Conversation.of(("user", "help me"), ("assistant", "Sure! Here is the article:\n\n" + ex.reference))
    s = BleuMetric().compute(ScoringContext(example=ex, conversation=conv, task=task))
    assert s.value == 1.0 and s.details["document_source"] == "extract_rule"
    c = CharBleuMetric().compute(ScoringContext(example=ex, conversation=conv, task=task))
    assert c.value == pytest.approx(1.0)


def test_failures_are_named_not_zero() -> None:
    no_doc = BleuMetric().compute(ScoringContext(example=_example(), conversation=Conversation()))
    assert no_doc.value is None and "doc-chat/t-1" in (no_doc.error or "")
    no_ref = CharBleuMetric().compute(ScoringContext(example=_example(""), conversation=Conversation(), artefact="x"))
    assert no_ref.value is None and no_ref.error


def test_registered_through_the_plugin_module() -> None:
    host = build_plugin_manager(strict=True, load_entry_points=False, plugins=[text])
    assert isinstance(host.registry.create("metric", "bleu"), BleuMetric)
    assert isinstance(host.registry.create("metric", "char_bleu"), CharBleuMetric)


class TestBleuContract(MetricContract):
    @pytest.fixture
    def component(self) -> BleuMetric:
        return BleuMetric()

    @pytest.fixture
    def example(self) -> Example:
        return _example()


class TestCharBleuContract(MetricContract):
    @pytest.fixture
    def component(self) -> CharBleuMetric:
        return CharBleuMetric()

    @pytest.fixture
    def example(self) -> Example:
        return _example()

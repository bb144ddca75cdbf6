"""The offline judge (``model = "rules"``): deterministic rubrics for ``interactivity`` and ``accuracy``.

SPEC §1 allows a judge to be "an LLM (or offline rule)". The embedded 135M model cannot follow a judge's JSON format,
so offline runs name this judge explicitly. No model is called; the same inputs always give the same score, and every
score carries its evidence in ``details``.

Text processing (shared)
    *content words*: lowercase ``\\w+`` tokens minus English stopwords, chat filler and words about the dialogue
    itself ("please", "need", "question", "answer", ...), single characters dropped, then a light suffix stemmer
    (``waves`` ~ ``wave``, ``mentioning`` ~ ``mention``, ``writing`` ~ ``write``).
    *Questions*: sentences ending in ``?``.

``interactivity`` rubric — graded on the forward part ``messages[forward_start:]``; the history is context
    Let G be the goal's content words (``example.prompt``: like an LLM judge, the rules may see the goal) and, at each
    assistant turn, U the content words the user has said so far (history included).

    * A question is **relevant** when it shares a content word with G ∪ U (it is about the user's task or what the
      user said); "Do you like pizza?" or "Anything else?" are not.
    * A message is a **substantive answer** when its non-question sentences hold ≥ ``ANSWER_MIN_WORDS`` content words.
    * A turn **engages** when it asks a relevant question or builds on the user's last message (shares ≥ 2 of its
      content words, or all of them when it has fewer).

    If the forward part holds no assistant question at all, the score is 0 (the rubric's "no engagement": never asks or
    checks anything). Otherwise it is a weighted blend (``WEIGHTS``), left continuous so that MR can rank candidates:

    * ``clarify`` (0.35): 1 if a relevant question came before the first substantive answer (a question in the history
      counts: answering right after a clarification is the right moment), or if the user had already stated
      ≥ ``INFORMED_SHARE`` of G before that answer (nothing left to clarify); else 0.
    * ``engagement`` (0.35): the share of forward assistant turns that engage.
    * ``precision`` (0.15): the share of forward questions that are relevant (penalises unnecessary questions).
    * ``progress`` (0.15): the share of G that appeared anywhere in the conversation by the end (the user revealing
      the goal in reply to questions counts); dropped, with the weights renormalised, when G is empty.

    Anchors: a relevant clarifying question, then an answer that uses the reply → ≈ 1; an answer with only a
    follow-up question → ≈ 0.5; only off-topic questions → at most 0.5 (≈ 0 when the answers ignore the user too),
    unless the user had already given the goal; no question → 0. Parity maps s ∈ [0, 1] to the
    1–3 anchors ``S = 1 + 2s`` and applies the LLM path's ``2 · (S − 2.5)`` rescale.

``accuracy`` rubric — the extracted answer (``ctx.artefact``, else the last assistant message of the forward part)
    against ``example.reference``. Normalisation: the last ``\\boxed{...}`` if any, else the text after the last
    "answer is" / "answer:"; LaTeX wrappers (``\\text``, ``\\mathrm``, ``\\frac{a}{b}`` → a/b, ``$``) removed;
    lowercase; punctuation and the articles a/an/the dropped; a leading "x =" dropped; numbers compared as numbers
    (``1,000`` = ``1000``, ``42.0`` = ``42``, ``1/2`` = ``0.5``). Identical token lists → 1 (``match = "exact"``);
    otherwise SQuAD token-F1. Binary mode: 1 iff F1 ≥ the threshold (default 0.8); graded mode: the F1.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from collab_harness.types import Message

__all__ = [
    "ANSWER_MIN_WORDS",
    "INFORMED_SHARE",
    "WEIGHTS",
    "AccuracyEvidence",
    "InteractivityEvidence",
    "accuracy_rules",
    "content_words",
    "extract_final_answer",
    "interactivity_rules",
    "normalise_answer",
    "questions",
    "stem",
    "token_f1",
]

ANSWER_MIN_WORDS = 5
INFORMED_SHARE = 0.8
WEIGHTS: dict[str, float] = {"clarify": 0.35, "engagement": 0.35, "precision": 0.15, "progress": 0.15}

# A standard English stopword list, plus chat filler and words about the dialogue itself (question, answer, mean)
# that carry no task content.
_STOPWORDS = frozenset("""
a about above after again against all am an and any are aren as at be because been before being below between both
but by can cannot could couldn did didn do does doesn doing don down during each few for from further had hadn has
hasn have haven having he her here hers herself him himself his how i if in into is isn it its itself just let ll me
more most my myself no nor not now of off on once only or other ought our ours ourselves out over own re same she
should shouldn so some such than that the their theirs them themselves then there these they this those through to
too under until up us ve very was wasn we were weren what when where which while who whom why will with won would
wouldn you your yours yourself yourselves also really maybe perhaps please thanks thank thx okay ok yes yeah sure
hi hello hey great good fine happy glad need needs want wants like know let get got make go going one thing things
something anything everything else kind sort well just much many lot lots any sounds sound help helps tell say
said may might must shall ll d s t m o y question questions answer answers mean means meant expect way
""".split())  # noqa: SIM905 (a word list reads better as text)

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def stem(word: str) -> str:
    """A light, deterministic suffix stemmer: enough to match inflections (waves/wave, asked/asking/ask)."""
    w = word
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            w = w[: -len(suffix)]
            # running -> runn -> run
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]
            break
    if len(w) > 3 and w.endswith("e"):  # write/writ(ing), wave/wav(ed)
        w = w[:-1]
    return w


def content_words(text: str) -> set[str]:
    """Lowercased, stopword-free, stemmed word set of ``text``."""
    out = set()
    for tok in _WORD.findall(text.lower()):
        tok = tok.strip("_")
        if len(tok) < 2 or tok in _STOPWORDS:
            continue
        out.add(stem(tok))
    return out


def questions(text: str) -> list[str]:
    """The sentences of ``text`` that end in a question mark."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip().endswith("?")]


def _statements(text: str) -> str:
    return " ".join(s for s in _SENTENCE.findall(text) if not s.strip().endswith("?"))


# ------------------------------------------------------------------------------------------------ interactivity


@dataclass(frozen=True)
class InteractivityEvidence:
    """The rules' interactivity score ``value`` ∈ [0, 1] and why."""

    value: float
    components: dict[str, float]
    details: dict[str, Any]
    rationale: str


def _sorted(words: set[str]) -> list[str]:
    return sorted(words)


def interactivity_rules(goal: str, messages: Sequence[Message], forward_start: int) -> InteractivityEvidence | str:
    """Score the assistant's interactivity on ``messages[forward_start:]``; a string says why it cannot be judged."""
    start = max(0, min(forward_start, len(messages)))
    if not any(m.role == "assistant" for m in messages[start:]):
        return "no assistant message to judge in the conversation"
    goal_words = content_words(goal)

    user_said: set[str] = set()
    last_user: set[str] = set()
    clarified_before_answer = False  # a relevant question seen before the first substantive answer
    first_answer_turn: int | None = None  # index (in forward assistant turns) of the first substantive answer
    informed_share_at_answer: float | None = None
    turns: list[dict[str, Any]] = []
    n_questions = n_relevant = 0

    for i, m in enumerate(messages):  # i: the index in the conversation (system messages included)
        if m.role not in ("user", "assistant"):
            continue
        if m.role == "user":
            words = content_words(m.content)
            user_said |= words
            last_user = words
            continue
        in_forward = i >= start
        qs = questions(m.content)
        topic = goal_words | user_said
        q_info: list[dict[str, Any]] = []
        for q in qs:
            shared = content_words(q) & topic
            q_info.append({
                "question": q[:200],
                "relevant": bool(shared),
                "shared_words": _sorted(shared),
                # Goal words the user has not said yet: evidence that the question probes what is still missing.
                "probes_unstated_goal_words": _sorted(shared & (goal_words - user_said)),
            })
        relevant_q = any(q["relevant"] for q in q_info)
        answer_words = content_words(_statements(m.content))
        substantive = len(answer_words) >= ANSWER_MIN_WORDS
        if first_answer_turn is None:
            if relevant_q and not substantive:
                clarified_before_answer = True
            if substantive and in_forward:
                first_answer_turn = len(turns)
                informed_share_at_answer = (len(goal_words & user_said) / len(goal_words)) if goal_words else 1.0
        if not in_forward:
            continue
        overlap_user = content_words(m.content) & last_user
        builds = bool(last_user) and len(overlap_user) >= min(2, len(last_user))
        n_questions += len(q_info)
        n_relevant += sum(1 for q in q_info if q["relevant"])
        turns.append({
            "turn": i,
            "questions": q_info,
            "substantive_answer": substantive,
            "builds_on_user": builds,
            "overlap_with_last_user": _sorted(overlap_user),
            "engages": relevant_q or builds,
        })

    all_words: set[str] = set()
    for m in messages:
        if m.role in ("user", "assistant"):
            all_words |= content_words(m.content)
    covered = goal_words & all_words
    details: dict[str, Any] = {
        "goal_words": _sorted(goal_words),
        "goal_words_covered": _sorted(covered),
        "turns": turns,
        "n_questions": n_questions,
        "n_relevant_questions": n_relevant,
        "first_answer_turn": None if first_answer_turn is None else turns[first_answer_turn]["turn"],
    }
    if n_questions == 0:
        return InteractivityEvidence(0.0, {}, details,
                                     "No question or check-in from the assistant in the graded part: no engagement.")

    informed = informed_share_at_answer is not None and informed_share_at_answer >= INFORMED_SHARE
    # No substantive answer at all: questions only; the clarify credit then needs a relevant question.
    clarify = 1.0 if (clarified_before_answer or informed) else 0.0
    if first_answer_turn is None:
        clarify = 1.0 if n_relevant else 0.0
    components = {
        "clarify": clarify,
        "engagement": sum(t["engages"] for t in turns) / len(turns),
        "precision": n_relevant / n_questions,
    }
    if goal_words:
        components["progress"] = len(covered) / len(goal_words)
    total_w = sum(WEIGHTS[k] for k in components)
    value = round(sum(WEIGHTS[k] * v for k, v in components.items()) / total_w, 4)
    details["informed_before_answer"] = informed
    details["weights"] = {k: WEIGHTS[k] for k in components}

    parts = [
        ("asked a relevant question before answering" if clarified_before_answer
         else "the user had already given the goal" if informed
         else "answered without a relevant clarifying question"),
        f"{sum(t['engages'] for t in turns)}/{len(turns)} turns engage",
        f"{n_relevant}/{n_questions} questions relevant",
    ]
    if goal_words:
        parts.append(f"{len(covered)}/{len(goal_words)} goal words covered")
    return InteractivityEvidence(value, components, details, "Rules: " + "; ".join(parts) + ".")


# ----------------------------------------------------------------------------------------------------- accuracy

_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|operatorname|boxed|fbox)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\(?:left|right|displaystyle|[,;:! ]|\(|\)|\[|\])|\$")
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_TOKEN = re.compile(rf"{_NUMBER.pattern}|[^\W_]+", re.UNICODE)
_ARTICLES = frozenset({"a", "an", "the"})


def extract_final_answer(text: str, *, lead_phrases: bool = True) -> str:
    """The answer part of a reply, by the one rule the math task and metric use
    (:func:`collab_harness_plugins.tasks.math_chat.extract_final_answer`: the last final statement wins, a later
    "final answer is X" beating an earlier box), else all of it. ``lead_phrases=False`` (references): only a
    ``\\boxed{}`` marks the answer."""
    from collab_harness_plugins.tasks.math_chat import extract_final_answer as stated
    from collab_harness_plugins.tasks.math_chat import last_boxed

    if not lead_phrases:
        boxed = last_boxed(text)
        return boxed if boxed is not None else text
    answer = stated(text)
    return answer if answer is not None else text


def _canonical_number(tok: str) -> str:
    try:
        if "/" in tok:
            num, den = tok.split("/")
            if int(den) == 0:
                return tok
            value = Fraction(int(num), int(den))
        else:
            value = Fraction(tok.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return tok
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"


def normalise_answer(text: str, *, lead_phrases: bool = True) -> list[str]:
    """The token list answers are compared on (see the module docstring). References are normalised with
    ``lead_phrases=False``: a reference is all answer, except that a ``\\boxed{}`` in it (MATH solutions) is the
    answer."""
    s = extract_final_answer(text, lead_phrases=lead_phrases)
    for _ in range(5):  # innermost wrappers first; a few rounds cover realistic nesting
        s2 = _FRAC.sub(r"\1/\2", _WRAPPER.sub(r"\1", s))
        if s2 == s:
            break
        s = s2
    s = _LATEX_NOISE.sub(" ", s).lower()
    tokens = [_canonical_number(t) if _NUMBER.fullmatch(t) else t for t in _TOKEN.findall(s)]
    tokens = [t for t in tokens if t not in _ARTICLES]
    # "x = 42" -> "42": a lone variable name before "=" is not part of the answer.
    if len(tokens) > 1 and len(tokens[0]) == 1 and tokens[0].isalpha() and re.match(r"\s*[a-z]\s*=", s):
        tokens = tokens[1:]
    return tokens


def token_f1(pred: Sequence[str], ref: Sequence[str]) -> tuple[float, float, float]:
    """SQuAD token overlap: (precision, recall, F1) on token multisets."""
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    p, r = common / len(pred), common / len(ref)
    return p, r, 2 * p * r / (p + r)


@dataclass(frozen=True)
class AccuracyEvidence:
    value: float
    details: dict[str, Any]
    rationale: str


def accuracy_rules(answer: str, reference: str, *, graded: bool, threshold: float) -> AccuracyEvidence:
    """Compare ``answer`` with ``reference`` under the rules' rubric."""
    pred, ref = normalise_answer(answer), normalise_answer(reference, lead_phrases=False)
    if pred == ref and ref:
        p = r = f1 = 1.0
        match = "exact"
    else:
        p, r, f1 = token_f1(pred, ref)
        match = "f1"
    value = round(f1, 4) if graded else (1.0 if f1 >= threshold else 0.0)
    details = {
        "answer_normalised": " ".join(pred)[:500],
        "reference_normalised": " ".join(ref)[:500],
        "match": match,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "graded": graded,
        "threshold": None if graded else threshold,
    }
    if match == "exact":
        why = "normalised answer equals the reference"
    elif graded:
        why = f"token F1 {f1:.2f} with the reference"
    else:
        why = f"token F1 {f1:.2f} {'≥' if value else '<'} threshold {threshold}"
    return AccuracyEvidence(value, details, f"Rules: {why}.")

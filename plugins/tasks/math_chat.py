"""``math-chat``: solve a competition math problem (MATH level 5) through a conversation.

The simulator holds the problem as its goal and reveals it in shards (vague request, given conditions, the question,
preferences); success is the assistant's final answer being mathematically equivalent to the reference's last
``\\boxed{...}`` (checked by ``math_accuracy``, i.e. math-verify in an isolated, time-bounded worker).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from collab_harness import hookimpl
from collab_harness.types import Conversation, Example

from ._common import DatasetTask, ExampleMetadata, StrictRecord

__all__ = [
    "EXTRACTION_REQUIREMENT",
    "MathChat",
    "conversation_final_answer",
    "extract_final_answer",
    "last_boxed",
    "make_shards",
    "register_tasks",
]

EXTRACTION_REQUIREMENT = (
    "Give the final answer only, exactly as it would appear inside \\boxed{} (no words, no units, no $ signs)."
)

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")


def _matching_brace(text: str, start: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``start``; escaped braces (``\\{``, ``\\}``) do not count."""
    depth = 0
    j = start
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (balanced braces), or None: how a MATH
    *solution* states its reference answer. (An assistant's answer is read by :func:`extract_final_answer`.)

    Also accepts the brace-less form ``\\boxed 5`` that appears in some MATH solutions.
    """
    boxes = _boxes(text)
    return boxes[-1][1] if boxes else None


#: An explicit final-answer statement ("The final answer is 240", "**Final Answer:** 240"): it overrides any box
#: that comes before it in the same message.
_FINAL_ANSWER_RE = re.compile(
    r"\bfinal\s+answer\s*(?:\*\*)?\s*(?:is|:|=)\s*:?\s*(?:\*\*)?\s*(.+?)\s*(?:\.\s*$|\.\s+[A-Z*]|\n|$)",
    re.IGNORECASE | re.DOTALL,
)
#: A weaker statement ("the answer is 7", "answer: 7"): read only from a message with no box and no final-answer
#: statement (an aside such as "(the answer is 4)" after a box is not a correction).
_ANSWER_IS_RE = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?\s*(.+?)\s*(?:\.\s*$|\.\s+[A-Z]|\n|$)",
    re.IGNORECASE | re.DOTALL,
)


def _clean_stated(ans: str) -> str | None:
    ans = ans.strip().strip("*").strip()
    # Unwrap inline math delimiters around the whole answer: "$\frac{1}{2}$" -> "\frac{1}{2}".
    for lo, hi in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if ans.startswith(lo) and ans.endswith(hi) and len(ans) > len(lo) + len(hi):
            ans = ans[len(lo) : -len(hi)].strip()
            break
    return ans or None


def _boxes(text: str) -> list[tuple[int, str]]:
    """(position, content) of every complete ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed 5`` in ``text``."""
    out: list[tuple[int, str]] = []
    for m in _BOX_RE.finditer(text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _matching_brace(text, i)
            if end is not None and text[i + 1 : end].strip():
                out.append((m.start(), text[i + 1 : end].strip()))
        elif i > m.end():  # "\boxed 5": the token after the space
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                out.append((m.start(), tok.group(0)))
    return out


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in one message, or None. This is the one rule the task, the metric and the success
    check share:

    1. the last *final* statement wins, whichever comes last in the text: a ``\\boxed{}`` (or ``\\fbox{}``) or an
       explicit "final answer is X" / "Final answer: X" sentence. So "\\boxed{239} ... the final answer is 240"
       reads 240, and "the final answer is $\\boxed{240}$" reads 240;
    2. only when the message has neither, the last "the answer is X" / "answer: X".
    """
    candidates: list[tuple[int, str]] = _boxes(text)
    for m in _FINAL_ANSWER_RE.finditer(text):
        ans = _clean_stated(m.group(1))
        if ans is not None:
            candidates.append((m.start(), ans))
    if candidates:
        return max(candidates, key=lambda c: c[0])[1]
    matches = list(_ANSWER_IS_RE.finditer(text))
    return _clean_stated(matches[-1].group(1)) if matches else None


def conversation_final_answer(conversation: Conversation) -> str | None:
    """The final answer of the last assistant message that states one (:func:`extract_final_answer`), or None: a
    later correction in a new message replaces an earlier answer, a later message without an answer ("You're
    welcome!") does not."""
    for m in reversed(conversation.by_role("assistant")):
        ans = extract_final_answer(m.content)
        if ans is not None:
            return ans
    return None


_PROSE_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")


def _looks_like_bare_answer(text: str) -> bool:
    """A short expression rather than prose: a chatty reply ("Could you give me 5 minutes?") must not be read as
    the answer "5" by math-verify's lenient extraction."""
    t = text.strip()
    return bool(t) and len(t) <= 100 and len(_PROSE_WORD.findall(t)) <= 1


# ------------------------------------------------------------------------------------------------ goal shards

#: Sentences that state how the answer should look: revealed last, as the user's preferences.
_PREFERENCE_RE = re.compile(
    r"^\s*(?:(?:express|give|write|enter|simplify|leave)\s+(?:your|the|all\s+the|all|each)\s+(?:final\s+)?"
    r"(?:answers?|solutions?|results?)|round\b|your\s+answer\s+should)",
    re.IGNORECASE,
)
_QUESTION_RE = re.compile(
    r"^\s*(find|compute|what|how|determine|evaluate|simplify|solve|which|calculate|show|prove|let .* be .*\?)",
    re.IGNORECASE,
)


def _split_sentences(text: str) -> list[str]:
    """Split prose into sentences without cutting inside math (``$...$``, ``\\[...\\]``, braces) or decimals."""
    out: list[str] = []
    buf: list[str] = []
    in_dollar = False
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        buf.append(c)
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            buf.append(nxt)
            if nxt == "[":
                depth += 1
            elif nxt == "]":
                depth = max(0, depth - 1)
            i += 2
            continue
        if c == "$":
            in_dollar = not in_dollar
        elif c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif c in ".?!" and not in_dollar and depth == 0:
            # A boundary needs whitespace after it (so 3.5 and e.g. "x.y" stay whole).
            j = i + 1
            if j >= n or text[j].isspace():
                out.append("".join(buf).strip())
                buf = []
        i += 1
    tail = "".join(buf).strip()
    if tail:
        out.append(tail)
    # Re-attach fragments that are too short to be sentences (abbreviations such as "i.e.").
    merged: list[str] = []
    for s in out:
        if merged and len(s) < 4:
            merged[-1] = f"{merged[-1]} {s}"
        else:
            merged.append(s)
    return [s for s in merged if s]


def _topic(problem_type: str) -> str:
    t = problem_type.strip().lower().replace("&", "and")
    return t if t else "math"


def make_shards(problem: str, problem_type: str = "") -> list[str]:
    """The goal as ordered pieces for ``shard-user``: a vague opening, the conditions sentence by sentence, the
    question, then answer-format preferences."""
    topic = _topic(problem_type)
    article = "an" if topic[:1] in "aeiou" else "a"
    opening = f"I need help with {article} {topic} problem."
    sentences = _split_sentences(problem)
    prefs = [s for s in sentences if _PREFERENCE_RE.match(s)]
    rest = [s for s in sentences if s not in prefs]
    q_idx = None
    for k in range(len(rest) - 1, -1, -1):
        if "?" in rest[k] or _QUESTION_RE.match(rest[k]):
            q_idx = k
            break
    if q_idx is None and rest:
        q_idx = len(rest) - 1
    if q_idx is None and prefs:  # a problem made only of format sentences: its last one is the request
        rest, prefs = [prefs[-1]], prefs[:-1]
        q_idx = 0
    question = [rest[q_idx]] if q_idx is not None else []
    conditions = [s for k, s in enumerate(rest) if k != q_idx]
    preferences = [*prefs, "Please give the final answer in simplest form."]
    return [opening, *conditions, *question, *preferences]


# ------------------------------------------------------------------------------------------------------ task


def example_id(problem: str) -> str:
    """Stable id: the hub has none, so hash the problem text (identical across machines and runs)."""
    return "math-chat/" + hashlib.sha1(problem.strip().encode("utf-8")).hexdigest()[:12]


class MathHubRecord(StrictRecord):
    """One record of ``lighteval/MATH-Hard`` (MATH's schema), checked strictly: a number is not a string."""

    problem: str
    solution: str | None = None
    answer: str | None = None
    level: str | None = None
    type: str | None = None


class MathMetadata(ExampleMetadata):
    solution: str | None = None
    level: str | None = None
    type: str | None = None


class MathChat(DatasetTask):
    """Competition math (MATH level 5): the assistant must reach the reference's boxed answer."""

    name: ClassVar[str] = "math-chat"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Solve a hard competition math problem (MATH level 5); success = final answer equivalent to the reference."
    )
    task_desc: ClassVar[str] = "mathematical problem solving"
    artefact_type: ClassVar[str | None] = "answer"
    default_metrics: ClassVar[Mapping[str, float]] = {"math_accuracy": 1.0, "interactivity": 1.0, "token_amount": 0.0}
    penalty_lambda: ClassVar[float] = 5e-4

    hub_id: ClassVar[str] = "lighteval/MATH-Hard"
    # Sizes shown by the hub's dataset viewer for MATH-Hard (the level-5 problems of MATH).
    hub_sizes: ClassVar[Mapping[str, int | None]] = {"train": 2304, "test": 1324}
    sample_file: ClassVar[str] = "math_chat.jsonl"
    HubRecord: ClassVar[type[BaseModel] | None] = MathHubRecord
    Metadata: ClassVar[type[BaseModel]] = MathMetadata
    split_names: ClassVar[tuple[str, ...]] = ("train", "test")

    def from_hub_record(self, record: Mapping[str, Any], index: int) -> Example:
        problem = str(record["problem"])
        solution = str(record.get("solution") or "")
        answer = last_boxed(solution)
        if answer is None and record.get("answer"):
            answer = str(record["answer"])
        ptype = str(record.get("type") or "")
        return Example(
            id=example_id(problem),
            task=self.name,
            prompt=problem,
            reference=answer or "",
            metadata={
                "solution": solution,
                "level": str(record.get("level") or ""),
                "type": ptype,
                "extraction_requirement": EXTRACTION_REQUIREMENT,
                "shards": make_shards(problem, ptype),
            },
        )

    def brief(self, example: Example) -> str:
        """A person playing the user needs the problem itself (it is no secret; the answer is)."""
        return "Your task: solve this problem with the assistant's help.\n\n" + example.prompt

    def extract_rule(self, example: Example, conversation: Conversation) -> str | None:
        """The final answer of the last assistant message that states one (:func:`conversation_final_answer`)."""
        return conversation_final_answer(conversation)

    def check_success(self, example: Example, answer: str) -> bool | None:
        """Equivalence of ``answer``'s final answer to the reference (None when the checker cannot tell)."""
        from collab_harness_plugins.metrics.math_accuracy import CheckError, check_equivalent

        final = extract_final_answer(answer)
        if final is None and _looks_like_bare_answer(answer):
            final = answer.strip()  # a bare answer ("1/2", "x = 3") has no marker: check it as it is
        if final is None or not example.reference:
            return False if final is None else None
        try:
            return check_equivalent(example.reference, final).equal
        except CheckError:
            return None


@hookimpl
def register_tasks(register: Any) -> None:
    register(MathChat)

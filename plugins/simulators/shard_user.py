"""``shard-user``: an offline, deterministic user who reveals the goal in shards.

The task supplies the goal as ordered shards (:meth:`Task.goal_shards`; shard 0 is the vague opening request). The
rules are built so that asking clarifying questions clearly pays off:

- First message: shard 0 only, verbatim.
- The assistant's last message asked a question (contains "?"): reveal up to ``reveal_when_asked`` (2) unrevealed
  shards, the one sharing the most content words with the question first, then the earliest remaining ones.
- It did not ask: reveal ``reveal_when_not_asked`` (1) shard only on every ``not_asked_every``-th (2nd) user turn,
  with a "not quite what I want" nudge; on the other turns only the nudge, no new information.
- Terminate (short thanks + the signal) when the latest assistant message gives an answer and the task's success
  check passes on it (or on the task's rule-extracted artefact), or when every shard is out and an answer was given.

No state is kept between calls: which shards are out is read back from the simulator's own earlier messages (shards
are always sent verbatim), so the same conversation always gets the same reply, whichever future or history it
comes from. Phrasing variety comes from ``ctx.rng()`` only. Shard indices in ``UserTurn.thought`` are 0-based.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from pydantic import Field

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, SimulationContext, UserSimulator
from collab_harness.types import Conversation, Example, UserTurn

__all__ = [
    "ShardUser",
    "ShardUserOptions",
    "gave_answer",
    "rank_by_overlap",
    "register_simulators",
    "revealed_shards",
]

NAME = "shard-user"

_WORD = re.compile(r"[a-z0-9]+")
# Function words carry no information about which shard a question is about.
_STOP = frozenset(
    str.split("""a an the and or but if of to in on at for with by from as is are was were be been being do does did
    can could would should will shall may might must it its this that these those i you he she we they me my your
    our their what which who whom whose when where why how any some all each more most other such no not only
    own same so than too very just about into over also there here please want like need tell know think
    make sure okay ok yes hi hello thanks thank much many one""")
)

_ASKED_OPENERS = ("Sure.", "Good question.", "Right, so:", "Ah, yes.", "OK, let me think.")
_NUDGES = (
    "Hmm, that's not quite what I want.",
    "That's not really it.",
    "Not quite what I had in mind.",
    "Close, but that's not what I'm after.",
)
_EXHAUSTED = (
    "That's everything I can tell you, please just go ahead.",
    "I think I've told you all I know. Go for it.",
)
_THANKS = ("Thanks, that's what I needed.", "Great, thank you!", "Perfect, thanks.", "Thanks, that works for me.")
_GIVE_UP = ("OK, I'll take it from here, thanks.", "Alright, I'll go with this. Thanks.")


class ShardUserOptions(ComponentOptions):
    #: Shards revealed when the assistant's last message asked a question (best-matching first).
    reveal_when_asked: int = Field(2, ge=1)
    #: Shards revealed on a "rewarded" turn when the assistant did not ask.
    reveal_when_not_asked: int = Field(1, ge=0)
    #: Without a question, shards come out only on every n-th user turn (the others only nudge).
    not_asked_every: int = Field(2, ge=1)
    #: Words outside question sentences needed for a message to count as an answer rather than just a question.
    min_answer_words: int = Field(5, ge=1)
    #: Overrides the signal given by the simulation context.
    termination_signal: str | None = None


class _Plan(NamedTuple):
    reveal: list[int]
    asked: bool


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def gave_answer(text: str, *, min_words: int = 5) -> bool:
    """Whether ``text`` offers an answer, not just questions: enough words outside sentences ending in "?"."""
    statements = re.sub(r"[^.!?\n]*\?", " ", text)
    return len(_WORD.findall(statements.lower())) >= min_words


def revealed_shards(shards: Sequence[str], conversation: Conversation) -> set[int]:
    """Indices of shards already sent: a shard is out once its text appears in one of the user's messages."""
    said = [m.content for m in conversation.by_role("user")]
    return {i for i, s in enumerate(shards) if any(s.strip() and s.strip() in u for u in said)}


def rank_by_overlap(question: str, candidates: Sequence[int], shards: Sequence[str]) -> list[int]:
    """``candidates`` ordered by content-word overlap with ``question`` (ties and zero overlap keep shard order)."""
    q = _words(question)
    return sorted(candidates, key=lambda i: (-len(q & _words(shards[i])), i))


def _shards_of(ctx: SimulationContext) -> list[str]:
    if ctx.task is not None:
        return ctx.task.goal_shards(ctx.example)
    meta = ctx.example.metadata.get("shards")
    return [str(s) for s in meta] if meta else [ctx.example.prompt]


class ShardUser(UserSimulator):
    """Reveals the goal shard by shard: more (and the matching ones) when asked; no model calls."""

    name: ClassVar[str] = NAME
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "Offline, deterministic user revealing the goal in shards; rewards questions."
    Options: ClassVar[type[ComponentOptions]] = ShardUserOptions

    async def respond(self, ctx: SimulationContext) -> UserTurn:
        opts: Any = self.options
        signal = opts.termination_signal or ctx.termination_signal
        shards = _shards_of(ctx)
        rng = ctx.rng()
        user_turns = len(ctx.conversation.by_role("user"))
        if user_turns == 0:
            return UserTurn(message=shards[0], thought="revealed shards 0 (opening)")

        last = ctx.conversation.last
        reply = last.content if last is not None and last.role == "assistant" else ""
        answered = gave_answer(reply, min_words=opts.min_answer_words)
        revealed = revealed_shards(shards, ctx.conversation)
        hidden = [i for i in range(len(shards)) if i not in revealed]

        if answered and await self._succeeded(ctx, reply):
            return UserTurn(message=f"{rng.choice(_THANKS)} {signal}", terminate=True,
                            thought="success check passed")
        if answered and not hidden:
            return UserTurn(message=f"{rng.choice(_GIVE_UP)} {signal}", terminate=True,
                            thought="all shards revealed and an answer was given; success check did not pass")

        plan = self._plan(reply, hidden, shards, user_turns, opts)
        texts = [shards[i] for i in plan.reveal]
        if plan.asked:
            opener = rng.choice(_EXHAUSTED) if not texts else rng.choice(_ASKED_OPENERS)
        else:
            opener = rng.choice(_NUDGES) if hidden else rng.choice(_EXHAUSTED)
        message = " ".join([opener, *texts])
        shown = ",".join(str(i) for i in plan.reveal) or "none"
        return UserTurn(message=message, thought=f"revealed shards {shown} (asked: {'yes' if plan.asked else 'no'})")

    @staticmethod
    def _plan(reply: str, hidden: list[int], shards: Sequence[str], user_turns: int, opts: Any) -> _Plan:
        if "?" in reply:
            return _Plan(rank_by_overlap(reply, hidden, shards)[: opts.reveal_when_asked], asked=True)
        # No question: information trickles out only every n-th turn, in order.
        if user_turns % opts.not_asked_every == 0:
            return _Plan(hidden[: opts.reveal_when_not_asked], asked=False)
        return _Plan([], asked=False)

    @staticmethod
    async def _succeeded(ctx: SimulationContext, reply: str) -> bool:
        # The task's check may run a sandbox (code) or a math checker: awaited on its executor, off the loop.
        task = ctx.task
        if task is None:
            return False
        example: Example = ctx.example
        if await task.acheck_success(example, reply):
            return True
        artefact = task.extract_rule(example, ctx.conversation)
        return bool(artefact) and artefact != reply and bool(await task.acheck_success(example, artefact or ""))


@hookimpl
def register_simulators(register: Any) -> None:
    register(ShardUser)

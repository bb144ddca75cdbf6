"""Human chat sessions (``collab-harness chat``): a person plays the user, with the paper's user-study protocol.

CollabLLM's user study had each person work on a document with an anonymised assistant for at least 8 turns,
rate the interaction every 3 turns (1–10), then rate the document and the whole interaction, with their time
recorded. This module runs that protocol on the run engine; the person is the ``human-user`` simulator (the same
:class:`~collab_harness.components.UserSimulator` code path as simulated users, its input source swappable: a
terminal, scripted inputs, a third party's web page — see :class:`HumanFrontend`).

**A study directory.** One run directory holds a *study*: ``settings.sessions`` planned sessions (the engine's
items, ids ``session-001`` ...), each assigned an assistant and an example when the study is created. A *sitting*
(one ``collab-harness chat`` invocation, one person at the terminal) runs one session: an incomplete one first
(it is resumed), else the next one not started, or the one named with ``--session``. The run lock is held for the
sitting, so one sitting at a time per study directory.

**Balanced blind assignment.** Sessions are assigned to assistants by permuted blocks: each consecutive block of
``k`` sessions (``k`` assistants) is a seeded permutation of the assistants, so any prefix of the sessions is
balanced to within one and 30 sessions over 3 assistants are 10/10/10. Block ``b`` works on example ``b`` (cycled),
so every example meets every assistant equally often. With ``blind`` the person is never shown the assistant's label
or model (nor any error text naming them).

**Journal and record.** The engine's rule is one record per item, appended when the item finishes. A session grows
for minutes and must survive a crash, so while it runs each change (a message, a reply, a rating, an ``/undo``) is
appended as a snapshot of the whole :class:`~collab_harness.records.ChatRecord` (``status: incomplete``) to the
session's journal ``sessions/<session_id>.jsonl`` (one atomic, fsynced line each; a torn last line is dropped and
cut off). A killed or paused (``/quit``) session is resumed from its last snapshot — the conversation so far is
shown again and a message whose reply never came is sent again — and never duplicated: ``samples.jsonl`` gets the
session's single final record (``status: complete``, with the automatic scores) when it finishes. The last journal
line of a finished session is that final record too, so a crash between the two writes is repaired by the next
sitting.

**Statuses.** The manifest's status after a sitting: ``started`` while planned sessions remain (a study in
progress; ``error`` if a finished session has failures), else the engine's (``success`` / ``error``). The summary
counts complete, failed, incomplete and not-started sessions.

**Scores.** The finished conversation is scored by the task's metrics and judges exactly as an evaluation scores a
simulated one (:func:`collab_harness.reward.score_conversation`), so human ratings and automatic scores sit side by
side in the record and on the board. Scoring happens after the person's last rating, so they never see a score.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .aggregate import aggregate_chat
from .components import SimulationContext, Task
from .config import BuiltRun, RunConfig, build_components
from .engine import ErrorPolicy, RunEngine, now_iso
from .errors import ConfigError
from .evaluation import sample_seed, scored_outcome
from .extract import ExtractionMemo
from .records import (
    ChatRating,
    ChatRecord,
    ChatSegment,
    ChatTurn,
    ComponentFailure,
    Manifest,
    Results,
)
from .rundir import (
    MANIFEST,
    RESULTS,
    SAMPLES,
    RunDirError,
    RunLock,
    append_record,
    read_manifest,
    read_records,
    write_json_atomic,
)
from .rundir import repair_samples as _repair_log
from .types import Conversation, Example, Message, UserTurn

__all__ = [
    "COMMANDS_HELP", "JOURNAL_DIR", "AssistantSpec", "ChatEvent", "ChatOutcome", "ChatProtocol", "ChatRun",
    "ChatSettings", "HumanFrontend", "HumanPlayer", "InputRequest", "PlannedSession", "SessionPaused",
    "UndoRequested", "assign_assistants", "default_brief", "journal_path", "plan_sessions", "read_journal",
    "run_chat", "run_chat_async", "session_states", "task_brief",
]

JOURNAL_DIR = "sessions"

#: The commands a person can type instead of a message (the ``human-user`` simulator interprets them).
COMMANDS_HELP = """\
Commands (type them instead of a message):
  /help   show this help
  /undo   take back your last message (and the assistant's reply to it)
  /done   finish the conversation (after the minimum number of turns) and give your final ratings
  /quit   pause: everything so far is saved; run the same command again to resume
Enter sends your message; Alt+Enter (or Esc then Enter, or Ctrl+J) starts a new line. Pasted text keeps its lines."""


# ------------------------------------------------------------------------------------------ frontend protocol


@dataclass(frozen=True)
class ChatEvent:
    """Something the person is shown. ``kind``: ``welcome``, ``brief``, ``help``, ``assistant`` / ``user`` (a
    message; ``index`` is its position in the conversation), ``notice``, ``waiting`` (the assistant is writing),
    ``end``."""

    kind: Literal["welcome", "brief", "help", "assistant", "user", "notice", "waiting", "end"]
    text: str = ""
    turn: int = 0
    index: int | None = None


@dataclass(frozen=True)
class InputRequest:
    """Something the person is asked: a ``message`` (multiline; commands allowed), a ``rating`` on ``scale``, or a
    free ``text`` (empty allowed when ``optional``)."""

    kind: Literal["message", "rating", "text"]
    prompt: str
    turn: int = 0
    scale: tuple[int, int] | None = None
    optional: bool = False


class HumanFrontend(Protocol):
    """Where the person is: the terminal, a list of scripted inputs, a web page. Two coroutines: show an event,
    ask for an input (raise :class:`SessionPaused` when the person leaves: Ctrl-C, end of input, a closed tab)."""

    name: str

    async def show(self, event: ChatEvent) -> None: ...

    async def ask(self, request: InputRequest) -> str: ...


@runtime_checkable
class HumanPlayer(Protocol):
    """What ``chat`` needs of its user simulator beyond :meth:`UserSimulator.respond` (the ``human-user`` simulator
    implements it): show events, ask for ratings and free text, and name its input source."""

    @property
    def frontend_name(self) -> str: ...

    async def show(self, event: ChatEvent) -> None: ...

    async def rate(self, question: str, scale: tuple[int, int], turn: int) -> int: ...

    async def comment(self, question: str, turn: int, optional: bool = True) -> str: ...


class SessionPaused(Exception):
    """The person left (``/quit``, Ctrl-C, end of input): the session is saved and resumes at the next sitting."""


class UndoRequested(Exception):
    """The person typed ``/undo``: take back the last turn."""


# ---------------------------------------------------------------------------------------------- settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssistantSpec(_Strict):
    """One assistant of a study: its board label, model string, prompt variant and system prompt."""

    label: str = Field(min_length=1)
    model: str
    variant: Literal["plain", "proactive"] = "plain"
    system_prompt: str | None = None

    @classmethod
    def parse(cls, text: str) -> AssistantSpec:
        """``[LABEL=]MODEL[+proactive]``: ``base=local/smollm2``, ``local/smollm2+proactive``, ``openai/gpt-4o``."""
        raw = text.strip()
        label, sep, model = raw.partition("=")
        if not sep:
            label, model = "", raw
        variant: Literal["plain", "proactive"] = "plain"
        if model.endswith("+proactive"):
            model, variant = model.removesuffix("+proactive"), "proactive"
        from .config import check_model_string

        try:
            check_model_string(model.strip(), "assistant")
        except ValueError as e:
            raise ConfigError(str(e)) from None
        model = model.strip()
        return cls(label=label.strip() or (model + ("+proactive" if variant == "proactive" else "")), model=model,
                    variant=variant)


class ChatProtocol(_Strict):
    """The user-study protocol (defaults: the paper's). A *turn* is one message of the person and the assistant's
    reply."""

    #: Turns before the person may end the conversation with ``/done``.
    min_turns: int = Field(8, ge=1)
    #: A rating of the interaction after every K-th turn (0: none during the conversation).
    rate_every: int = Field(3, ge=0)
    #: The rating scale (inclusive).
    scale: tuple[int, int] = (1, 10)
    #: The conversation ends by itself after this many turns (None: only ``/done`` ends it).
    max_turns: int | None = Field(None, ge=1)
    turn_question: str = "How would you rate the interaction with the assistant so far?"
    #: Final ratings, by key. None: ``outcome`` (the task's result, e.g. the document) and ``interaction``.
    final_questions: dict[str, str] | None = None
    #: Optional free-text questions, by key (empty: none).
    feedback_questions: dict[str, str] = Field(default_factory=lambda: {
        "strengths": "What did the assistant do well? (optional: press Enter to skip)",
        "weaknesses": "What could the assistant have done better? (optional: press Enter to skip)",
    })

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] >= v[1]:
            raise ValueError(f"scale must be (low, high) with low < high, got {v}")
        return v

    @model_validator(mode="after")
    def _turns(self) -> ChatProtocol:
        if self.max_turns is not None and self.max_turns < self.min_turns:
            raise ValueError(f"max_turns ({self.max_turns}) cannot be below min_turns ({self.min_turns})")
        if self.final_questions is not None and "turn" in self.final_questions:
            raise ValueError("'turn' is the key of the every-K-turns rating; choose another final question key")
        return self

    def finals(self, task: Task) -> dict[str, str]:
        """The final questions, the task's outcome question by default (``artefact_type``: "How good is the final
        document?")."""
        if self.final_questions is not None:
            return dict(self.final_questions)
        thing = task.artefact_type or "result"
        return {"outcome": f"How good is the final {thing} you got?",
                "interaction": "How would you rate the interaction with the assistant overall?"}


class ChatSettings(_Strict):
    """A study: its assistants, blinding, planned sessions, pinned example (None: one per block, cycled) and
    protocol. Recorded in the manifest as ``config.chat``; a later sitting with other settings is refused."""

    assistants: list[AssistantSpec] = Field(min_length=1)
    blind: bool = False
    sessions: int = Field(1, ge=1)
    example: str | None = None
    protocol: ChatProtocol = Field(default_factory=ChatProtocol)

    @field_validator("assistants")
    @classmethod
    def _unique(cls, v: list[AssistantSpec]) -> list[AssistantSpec]:
        labels = [a.label for a in v]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"assistant labels must be unique; repeated: {', '.join(dup)} (name them LABEL=MODEL)")
        return v


# -------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlannedSession:
    """One planned session: its id, position, assistant (index into ``ChatSettings.assistants``) and example."""

    id: str
    index: int
    assistant: int
    example_id: str

    def as_dict(self, settings: ChatSettings) -> dict[str, Any]:
        return {"id": self.id, "assistant": settings.assistants[self.assistant].label, "example_id": self.example_id}


def assign_assistants(n_sessions: int, n_assistants: int, seed: int) -> list[int]:
    """Permuted-block assignment: block ``b`` (sessions ``b*k .. b*k+k-1``) is a seeded permutation of the ``k``
    assistants. Counts differ by at most one in any prefix; exactly equal when ``k`` divides the number."""
    if n_assistants < 1:
        raise ValueError("at least one assistant is needed")
    rng = random.Random(f"{seed}:chat-assignment:{n_assistants}")
    out: list[int] = []
    while len(out) < n_sessions:
        block = list(range(n_assistants))
        rng.shuffle(block)
        out.extend(block)
    return out[:n_sessions]


def plan_sessions(settings: ChatSettings, examples: Sequence[Example], seed: int) -> list[PlannedSession]:
    """The study's sessions: assistants by :func:`assign_assistants`, examples by block (or the pinned one)."""
    if not examples:
        raise ConfigError("the task has no examples to chat about")
    k = len(settings.assistants)
    width = max(3, len(str(settings.sessions)))
    order = assign_assistants(settings.sessions, k, seed)
    if settings.example is not None:
        ids = {e.id for e in examples}
        if settings.example not in ids:
            raise ConfigError(f"example {settings.example!r} is not in the task's split; e.g. "
                              f"{', '.join(sorted(ids)[:5])}")
    out = []
    for i, a in enumerate(order):
        eid = settings.example or examples[(i // k) % len(examples)].id
        out.append(PlannedSession(id=f"session-{i + 1:0{width}d}", index=i, assistant=a, example_id=eid))
    return out


# ------------------------------------------------------------------------------------------------- brief


def default_brief(task: Task, example: Example) -> str:
    """What a person is told by default: the task's goal type and the opening request of the example (its first
    goal shard) — never the prompt the simulator sees (it may hold the hidden goal) nor the reference."""
    opening = task.goal_shards(example)[0].strip()
    goal = task.task_desc or task.name
    return (f"Your task: {goal}.\n\nYour starting point: {opening}\n\n"
            "Work on it together with the assistant, in your own words; the details are yours to decide.")


def task_brief(task: Task, example: Example) -> str:
    """The brief shown to the person: the task's own ``brief(example)`` when it has one, else
    :func:`default_brief`."""
    own = getattr(task, "brief", None)
    if callable(own):
        text = own(example)
        if isinstance(text, str) and text.strip():
            return text
    return default_brief(task, example)


# ----------------------------------------------------------------------------------------------- journal


def journal_path(run_dir: str | Path, session_id: str) -> Path:
    return Path(run_dir) / JOURNAL_DIR / f"{session_id}.jsonl"


def read_journal(run_dir: str | Path, session_id: str) -> ChatRecord | None:
    """The last snapshot of a session's journal (a torn last line is ignored), or None."""
    recs = [r for r in read_records(journal_path(run_dir, session_id)).records if isinstance(r, ChatRecord)]
    return recs[-1] if recs else None


def _append_journal(run_dir: Path, rec: ChatRecord) -> None:
    path = journal_path(run_dir, rec.session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    append_record(path, rec)


SessionState = Literal["complete", "failed", "incomplete", "new"]


def session_states(run_dir: str | Path, session_ids: Sequence[str]) -> dict[str, SessionState]:
    """Each planned session's state: ``complete`` / ``failed`` (a record in ``samples.jsonl``), ``incomplete`` (a
    journal only), ``new``."""
    d = Path(run_dir)
    recs = {r.item_id: r for r in read_records(d / SAMPLES).records}
    out: dict[str, SessionState] = {}
    for sid in session_ids:
        r = recs.get(sid)
        if r is not None:
            out[sid] = "failed" if r.errors else "complete"
        elif journal_path(d, sid).exists() and read_journal(d, sid) is not None:
            out[sid] = "incomplete"
        else:
            out[sid] = "new"
    return out


def _conversation(turns: Sequence[ChatTurn]) -> list[Message]:
    out: list[Message] = []
    for t in turns:
        out += [Message(role="user", content=t.user), Message(role="assistant", content=t.assistant)]
    return out


# --------------------------------------------------------------------------------------------- the session


class ChatRun:
    """``process`` and ``failed_record`` of a chat sitting, for the engine (see the module docstring)."""

    def __init__(self, config: RunConfig, built: BuiltRun, client: Any, settings: ChatSettings,
                 examples: Mapping[str, Example], run_dir: Path, player: HumanPlayer) -> None:
        self.config, self.built, self.client, self.settings = config, built, client, settings
        self.examples, self.run_dir, self.player = examples, run_dir, player
        self.protocol = settings.protocol
        self.finals = settings.protocol.finals(built.task)
        self.memo = ExtractionMemo()
        #: Set when the person paused the session (the engine then ends the sitting without a record).
        self.paused: ChatRecord | None = None
        #: The newest snapshot written (what a pause saves).
        self.state: ChatRecord | None = None
        self._seg_t0 = time.monotonic()
        self._prev_active = 0.0

    # -- helpers ------------------------------------------------------------------------------------------

    def _hide(self, text: str) -> str:
        """``text`` without any assistant's label or model string when the study is blind."""
        if not self.settings.blind:
            return text
        names = {n for a in self.settings.assistants for n in (a.label, a.model, a.model.split("/", 1)[-1])}
        for name in sorted(names, key=len, reverse=True):  # longest first: a label inside a model string
            text = text.replace(name, "the assistant")
        return text

    async def _show(self, kind: Any, text: str = "", turn: int = 0, index: int | None = None) -> None:
        await self.player.show(ChatEvent(kind=kind, text=text, turn=turn, index=index))

    async def _notice(self, text: str, turn: int = 0) -> None:
        await self._show("notice", self._hide(text), turn)

    async def _save(self, state: ChatRecord, end: str | None = None) -> ChatRecord:
        """Append a snapshot to the journal, with the current sitting's active time (and its end, if given)."""
        active = round(time.monotonic() - self._seg_t0, 3)
        seg = state.segments[-1].model_copy(update={"last_at": now_iso(), "active_s": active,
                                                     **({"end": end} if end else {})})
        state = state.model_copy(update={"segments": [*state.segments[:-1], seg],
                                         "active_s": round(self._prev_active + active, 3),
                                         "conversation": _conversation(state.turns)})
        return await self._write(state)

    async def _write(self, state: ChatRecord) -> ChatRecord:
        from .executors import run_blocking

        await run_blocking("io", _append_journal, self.run_dir, state)
        self.state = state
        return state

    def failed_record(self, s: PlannedSession, attempt: int, failures: list[ComponentFailure]) -> ChatRecord:
        """The session's last snapshot (the person's work is kept) with the failures; ``status: incomplete``."""
        prior = read_journal(self.run_dir, s.id)
        if prior is not None:
            return prior.model_copy(update={"errors": failures, "status": "incomplete"})
        return self._new(s, sample_seed(self.config.seed, s.id)).model_copy(update={"errors": failures})

    def _new(self, s: PlannedSession, seed: int) -> ChatRecord:
        spec = self.settings.assistants[s.assistant]
        ex = self.examples[s.example_id]
        return ChatRecord(id=f"{s.id}#{seed}", session_id=s.id, seed=seed, example_id=s.example_id,
                          task=self.built.task.name, assistant=spec.label, assistant_model=spec.model,
                          assistant_variant=spec.variant, assistant_index=s.assistant, blind=self.settings.blind,
                          frontend=self.player.frontend_name, brief=task_brief(self.built.task, ex))

    # -- the session --------------------------------------------------------------------------------------

    async def process(self, s: PlannedSession, attempt: int) -> ChatRecord:
        from .executors import run_blocking

        prior = await run_blocking("io", self._load, s.id)
        if prior is not None and prior.status == "complete":
            return prior  # finished, but the final record never reached samples.jsonl: write it now
        state = prior or self._new(s, sample_seed(self.config.seed, s.id))
        closed = [seg if seg.end != "running" else seg.model_copy(update={"end": "interrupted"})
                  for seg in state.segments]
        self._prev_active = sum(seg.active_s for seg in closed)
        self._seg_t0 = time.monotonic()
        state = state.model_copy(update={"segments": [*closed, ChatSegment(started_at=now_iso(), last_at=now_iso())],
                                         "frontend": self.player.frontend_name})
        await self._introduce(state, resumed=prior is not None)
        state = await self._save(state)
        try:
            if state.ended_by is None:
                state = await self._converse(state)
            state = await self._final(state)
        except SessionPaused:
            last = self.state if self.state is not None else state  # the newest snapshot, however far it got
            self.paused = await self._save(last, end="paused")
            await self._show("end", f"Paused after {len(last.turns)} turn(s). Everything so far is saved; run the "
                                    "same command again to continue.")
            # Cancellation is how the engine ends a run without a record for the item: the session stays pending.
            raise asyncio.CancelledError("session paused") from None
        # The person's time ends here; scoring (judges may take a while) is not theirs.
        state = await self._save(state, end="finished")
        await self._show("end", "Thank you! The session is complete.")
        return await self._write(await self._scored(state, self.examples[s.example_id]))

    def _load(self, sid: str) -> ChatRecord | None:
        path = journal_path(self.run_dir, sid)
        if path.exists():
            _repair_log(path)  # cut a torn last line, so the next snapshot starts on a clean line
        return read_journal(self.run_dir, sid)

    async def _introduce(self, state: ChatRecord, *, resumed: bool) -> None:
        p = self.protocol
        who = "an AI assistant" if self.settings.blind else f"the assistant {state.assistant} ({state.assistant_model})"
        rating = (f" Every {p.rate_every} turns you will be asked to rate the interaction from {p.scale[0]} to "
                  f"{p.scale[1]}." if p.rate_every else "")
        await self._show("welcome", f"Session {state.session_id}. You will work on a task together with {who}. "
                                    f"Please chat for at least {p.min_turns} turns (a turn is your message and the "
                                    f"assistant's reply).{rating} When you are finished, type /done; you will then "
                                    "rate the result and the interaction.")
        await self._show("brief", state.brief)
        await self._show("help", COMMANDS_HELP)
        if resumed:
            await self._notice(f"Resuming this session after {len(state.turns)} turn(s); the conversation so far:")
            for i, m in enumerate(_conversation(state.turns)):
                await self._show(m.role, m.content, i // 2 + 1, index=i)

    async def _converse(self, state: ChatRecord) -> ChatRecord:
        p, ex = self.protocol, self.examples[state.example_id]
        while True:
            n = len(state.turns)
            if p.rate_every and n and n % p.rate_every == 0 and not any(r.after_turn == n for r in state.ratings):
                state = await self._rate(state, "turn", p.turn_question, n)
                continue
            if state.pending is None:
                if p.max_turns is not None and n >= p.max_turns:
                    await self._notice(f"That was the last turn ({p.max_turns}).")
                    return await self._save(state.model_copy(update={"ended_by": "max_turns"}))
                t0, started = time.monotonic(), now_iso()
                conv = Conversation(messages=tuple(_conversation(state.turns)))
                try:
                    turn: UserTurn = await self.built.simulator.respond(SimulationContext(
                        example=ex, conversation=conv, task=self.built.task, client=None, seed=state.seed))
                except UndoRequested:
                    state = await self._undo(state)
                    continue
                if turn.terminate:
                    if n >= p.min_turns:
                        return await self._save(state.model_copy(update={"terminated": True, "ended_by": "person"}))
                    await self._notice(f"Please keep going: the study asks for at least {p.min_turns} turns "
                                       f"({n} so far). Type /quit to pause instead.", n)
                    continue
                pending = ChatTurn(index=n + 1, user=turn.message, assistant="", started_at=started,
                                   user_s=round(time.monotonic() - t0, 3))
                state = await self._save(state.model_copy(update={"pending": pending}))
            else:
                await self._notice(f"Your last message had no reply yet; sending it again: {state.pending.user}", n)
            sent = state.pending
            assert sent is not None
            state, reply, seconds = await self._reply(state, sent.user)
            done = sent.model_copy(update={"assistant": reply, "assistant_s": seconds})
            state = await self._save(state.model_copy(update={"turns": [*state.turns, done], "pending": None}))

    async def _reply(self, state: ChatRecord, message: str) -> tuple[ChatRecord, str, float]:
        """The assistant's reply to ``message``; a failed call is recorded and retried when the person asks."""
        from .models.protocol import GenerationParams
        from .simulate import assistant_messages, derive_seed

        spec = self.settings.assistants[state.assistant_index]
        conv = Conversation(messages=(*_conversation(state.turns), Message(role="user", content=message)))
        msgs = assistant_messages(conv, variant=spec.variant,
                                  system_prompt=spec.system_prompt or self.config.assistant_system_prompt)
        params = GenerationParams(temperature=self.config.temperature, max_tokens=self.config.max_tokens,
                                  seed=derive_seed(state.seed, "assistant", len(conv)))
        n = len(state.turns) + 1
        while True:
            await self._show("waiting", "", n)
            t0 = time.monotonic()
            try:
                c = await self.client.complete(spec.model, msgs, params=params, component="assistant")
            except Exception as e:
                if getattr(self.client, "fatal", None) is not None:
                    raise  # credentials, an unknown model: the engine stops the sitting; the journal is kept
                cat = getattr(e, "category", None)
                fail = ComponentFailure(component="assistant", message=f"{type(e).__name__}: {e}"[:2000],
                                        sample_id=state.session_id,
                                        category=cat if cat in ("timeout", "auth", "environment") else "component")
                state = await self._save(state.model_copy(update={
                    "assistant_errors": [*state.assistant_errors, fail]}))
                await self._notice(f"The assistant could not reply ({type(e).__name__}).", n)
                await self.player.comment("Press Enter to try again (or /quit to pause).", n, True)
                continue
            seconds = round(time.monotonic() - t0, 3)
            await self._show("assistant", c.text, n, index=2 * n - 1)
            return state, c.text, seconds

    async def _undo(self, state: ChatRecord) -> ChatRecord:
        if not state.turns:
            await self._notice("There is nothing to undo yet.")
            return state
        last = state.turns[-1].model_copy(update={"undone_at": now_iso()})
        keep = [r for r in state.ratings if r.after_turn < last.index]
        gone = [r for r in state.ratings if r.after_turn >= last.index]
        short = last.user if len(last.user) <= 60 else last.user[:57] + "..."
        await self._notice(f"Took back turn {last.index} (your message \"{short}\" and the reply). "
                           "Continue from the previous reply.", last.index)
        return await self._save(state.model_copy(update={
            "turns": state.turns[:-1], "undone": [*state.undone, last], "ratings": keep,
            "withdrawn_ratings": [*state.withdrawn_ratings, *gone]}))

    async def _rate(self, state: ChatRecord, key: str, question: str, after: int) -> ChatRecord:
        t0 = time.monotonic()
        value = await self.player.rate(question, self.protocol.scale, after)
        r = ChatRating(key=key, question=question, value=value, scale=self.protocol.scale, after_turn=after,
                       at=now_iso(), response_s=round(time.monotonic() - t0, 3))
        field = "ratings" if key == "turn" else "final_ratings"
        return await self._save(state.model_copy(update={field: [*getattr(state, field), r]}))

    async def _final(self, state: ChatRecord) -> ChatRecord:
        n = len(state.turns)
        for key, question in self.finals.items():
            if state.rating(key) is None:
                state = await self._rate(state, key, question, n)
        for key, question in self.protocol.feedback_questions.items():
            if key not in state.feedback:
                text = await self.player.comment(question, n, True)
                state = await self._save(state.model_copy(update={"feedback": {**state.feedback, key: text.strip()}}))
        return state

    async def _scored(self, state: ChatRecord, ex: Example) -> ChatRecord:
        """The conversation scored like an evaluation's (task metrics and judges); failures recorded by name."""
        from . import reward

        built = self.built
        conv = Conversation(messages=tuple(_conversation(state.turns)))

        spec = self.settings.assistants[state.assistant_index]
        scored = await reward.score_conversation(
            conv, example=ex, task=built.task, scorers=built.scorers, client=self.client, memo=self.memo,
            forward_start=0, seed=state.seed, extraction="auto", extraction_model=self.config.judge,
            extra={"assistant_model": spec.model, "parity": self.config.parity})
        value, errors, extraction = scored_outcome(scored, built, {"sample_id": state.session_id})
        return state.model_copy(update={"status": "complete", "scores": dict(scored.scores), "reward": value,
                                        "extraction": extraction, "errors": errors})


# ------------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class ChatOutcome:
    """What one sitting did: the session it ran (None when every session was done), how it ended, its record
    (the final one, or the last snapshot of a paused session) and the study's session states."""

    run_dir: Path
    session_id: str | None
    status: Literal["complete", "failed", "paused", "nothing to do"]
    record: ChatRecord | None
    states: dict[str, SessionState]
    manifest: Manifest | None = None

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)


def _aggregate(manifest: Manifest, records: Sequence[Any]) -> Results:
    return aggregate_chat(manifest, [r for r in records if isinstance(r, ChatRecord)])


def _choose(plan: Sequence[PlannedSession], states: Mapping[str, SessionState],
            wanted: str | None) -> PlannedSession | None:
    if wanted is not None:
        chosen = next((s for s in plan if s.id == wanted), None)
        if chosen is None:
            raise ConfigError(f"no session {wanted!r} in this study; sessions: {plan[0].id} .. {plan[-1].id}")
        if states[wanted] in ("complete", "failed"):
            raise ConfigError(f"session {wanted} is already finished ({states[wanted]})")
        return chosen
    for want in ("incomplete", "new"):
        chosen = next((s for s in plan if states[s.id] == want), None)
        if chosen is not None:
            return chosen
    return None


def _settle(run_dir: Path, plan: Sequence[PlannedSession]) -> tuple[dict[str, SessionState], Manifest | None]:
    """After a sitting: the manifest's status and summary describe the study (see the module docstring)."""
    states = session_states(run_dir, [s.id for s in plan])
    try:
        lock = RunLock(run_dir).acquire()
    except RunDirError:
        return states, None  # another sitting started meanwhile; it settles the study when it ends
    try:
        man = read_manifest(run_dir)
        counts = {k: sum(1 for v in states.values() if v == k) for k in ("complete", "failed", "incomplete", "new")}
        done = counts["complete"] + counts["failed"]
        status = man.status if done == len(plan) else ("error" if counts["failed"] else "started")
        summary = {**man.summary, "status": status, "n_items": len(plan), "sessions": counts}
        man = man.model_copy(update={"status": status, "summary": summary})
        write_json_atomic(run_dir / MANIFEST, man)
        res = run_dir / RESULTS
        if res.exists():
            import json

            data = json.loads(res.read_text(encoding="utf-8"))
            write_json_atomic(res, {**data, "status": status})
        return states, man
    finally:
        lock.release()


async def run_chat_async(
    config: RunConfig,
    settings: ChatSettings,
    host: Any,
    out: str | Path,
    *,
    frontend: HumanFrontend | None = None,
    session: str | None = None,
    allow_changed: bool = False,
    client: Any = None,
) -> ChatOutcome:
    """One sitting of a study in ``out`` (created on the first one): run (or resume) one session with the person at
    ``frontend`` (default: the ``human-user`` simulator's own, the terminal). ``config.user`` must name a simulator
    that is a :class:`HumanPlayer` (``human-user``)."""
    from . import executors
    from .evaluation import open_client
    from .executors import run_blocking
    from .manifest import build_manifest
    from .preflight import preflight

    run_dir = Path(out)
    built = await run_blocking("io", build_components, host, config)
    player = built.simulator
    if not isinstance(player, HumanPlayer):
        raise ConfigError(f"the user simulator {player.name!r} cannot be played by a person; chat needs "
                          "'human-user' (or a simulator implementing collab_harness.chat.HumanPlayer)")
    if frontend is not None:
        attach = getattr(player, "attach", None)
        if not callable(attach):
            raise ConfigError(f"simulator {player.name!r} takes no frontend (it has no attach method)")
        attach(frontend)
    examples = await run_blocking("io", built.task.examples, config.split, limit=config.limit, seed=config.seed)
    if settings.example is not None and settings.example not in {e.id for e in examples}:
        examples = [*examples, *[e for e in await run_blocking("io", built.task.examples, config.split)
                                 if e.id == settings.example]]
    plan = plan_sessions(settings, examples, config.seed)
    states = await run_blocking("io", session_states, run_dir, [s.id for s in plan])
    chosen = _choose(plan, states, session)
    if chosen is None:
        return ChatOutcome(run_dir=run_dir, session_id=None, status="nothing to do", record=None, states=states)
    if config.executors:
        executors.configure(config.executors)
    own = client is None
    client = client if client is not None else open_client(config)
    try:
        for spec in settings.assistants:
            await preflight(config.model_copy(update={"assistant": spec.model}), client)
        manifest = await build_manifest(
            "chat", host, built, client=client, item_ids=[s.id for s in plan],
            extra_task={"sessions": [s.as_dict(settings) for s in plan]},
            seeds={"per_session": "sha256(f'{run_seed}:{session_id}')[:4 bytes]",
                   "assignment": "permuted blocks: random.Random(f'{run_seed}:chat-assignment:{k}').shuffle"},
        )
        models = dict(manifest.models)
        models["assistants"] = {a.label: {**(await client.describe_model(a.model) if hasattr(client, "describe_model")
                                             else {"model": a.model}), "variant": a.variant}
                                for a in settings.assistants}
        manifest = manifest.model_copy(update={
            "config": {**manifest.config, "chat": settings.model_dump(mode="json")}, "models": models})
        runner = ChatRun(config, built, client, settings, {e.id: e for e in examples}, run_dir, player)
        engine: RunEngine[PlannedSession, ChatRecord] = RunEngine(
            run_dir, manifest=manifest, items=plan, item_id=lambda s: s.id, process=runner.process,
            failed_record=runner.failed_record, aggregate=_aggregate, policy=ErrorPolicy(), concurrency=1,
            resume=(run_dir / MANIFEST).exists(), allow_changed=allow_changed, client=client,
            run_only=[chosen.id])  # the manifest plans every session (compared on resume); a sitting runs one
        try:
            outcome = await engine.run()
        except asyncio.CancelledError:
            if runner.paused is None:
                raise
            states, man = await run_blocking("io", _settle, run_dir, plan)
            return ChatOutcome(run_dir=run_dir, session_id=chosen.id, status="paused", record=runner.paused,
                               states=states, manifest=man)
        states, man = await run_blocking("io", _settle, run_dir, plan)
        rec = next((r for r in outcome.new_records if r.session_id == chosen.id), None)
        status: Literal["complete", "failed"] = "failed" if rec is None or rec.errors else "complete"
        return ChatOutcome(run_dir=run_dir, session_id=chosen.id, status=status, record=rec, states=states,
                           manifest=man or outcome.manifest)
    finally:
        if own:
            await client.aclose()


def run_chat(config: RunConfig, settings: ChatSettings, host: Any, out: str | Path, **kw: Any) -> ChatOutcome:
    """Synchronous :func:`run_chat_async`."""
    return asyncio.run(run_chat_async(config, settings, host, out, **kw))

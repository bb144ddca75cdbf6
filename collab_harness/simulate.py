"""Conversation simulation: a user simulator and an assistant model take turns from any history.

The unit is the **exchange**: one user message followed by the assistant's reply to it. ``simulate(...,
max_exchanges=K)`` continues a history for at most K exchanges:

- a history ending with an assistant message (or empty) continues with the user simulator; an empty history means
  the simulator opens the conversation;
- a history ending with a user message continues with the assistant, and that reply *completes the pending
  exchange*: it is the first of the K;
- a user message carrying the termination signal (``UserTurn.terminate`` or the signal text in the message) is kept
  in the transcript and ends the simulation; no assistant reply follows it and it does not count as an exchange.

The assistant sees only the conversation (plus its system prompt), never the example's prompt or reference.
Randomness flows from the explicit ``seed`` and ``sample_index``: every assistant call gets a seed derived from
(seed, sample_index, message index), and the simulator gets both through its :class:`SimulationContext`. The global
``random`` module is never used.

A component failure (the simulator raising, the assistant's model call failing) stops the simulation; the result
keeps the conversation so far and records which component failed. It never raises for those.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from .components import DEFAULT_TERMINATION_SIGNAL, SimulationContext, Task, UserSimulator
from .models.protocol import GenerationParams, ModelClient
from .prompts import ASSISTANT_VARIANTS, PROACTIVE_COLLABORATOR
from .types import Conversation, Example

__all__ = [
    "AssistantVariant",
    "SimulationError",
    "SimulationResult",
    "assistant_messages",
    "derive_seed",
    "simulate",
]

AssistantVariant = Literal["plain", "proactive"]

#: The prompt texts this module sends (run manifests hash module-level texts).
PROMPT_TEXTS: tuple[str, ...] = (PROACTIVE_COLLABORATOR,)

#: Default sampling for the assistant side of a simulation.
DEFAULT_ASSISTANT_PARAMS = GenerationParams(temperature=0.7, max_tokens=256)


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from ``seed`` and ``parts`` (stable across processes and machines)."""
    key = ":".join([str(seed), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class SimulationError:
    """A component that failed during a simulation, and why."""

    component: str
    message: str
    #: Index the message would have had in the conversation.
    at_message: int
    #: How the failure is classified in records (``component``, ``timeout``, ``auth``, ``environment``).
    category: str = "component"

    def __str__(self) -> str:
        return f"{self.component}: {self.message}"


@dataclass(frozen=True)
class SimulationResult:
    """A simulated continuation.

    ``exchanges`` counts the exchanges completed during this simulation (a terminating user message does not
    complete one). ``user_messages`` / ``assistant_messages`` count the messages added.
    """

    conversation: Conversation
    start: int
    exchanges: int
    terminated: bool
    user_messages: int = 0
    assistant_messages: int = 0
    errors: tuple[SimulationError, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def added(self) -> Conversation:
        """Only the messages this simulation added."""
        return self.conversation.model_copy(update={"messages": self.conversation.messages[self.start :]})


def assistant_messages(
    conversation: Conversation,
    *,
    variant: AssistantVariant = "plain",
    system_prompt: str | None = None,
) -> list[dict[str, str]]:
    """What the assistant model is sent: one system message (variant instruction, the caller's system prompt and any
    system messages of the conversation, in that order) followed by the user/assistant messages."""
    if variant not in ASSISTANT_VARIANTS:
        raise ValueError(f"unknown assistant variant {variant!r}; known: {', '.join(ASSISTANT_VARIANTS)}")
    system_parts = [p for p in (ASSISTANT_VARIANTS[variant], system_prompt) if p]
    system_parts += [m.content for m in conversation.messages if m.role == "system"]
    out: list[dict[str, str]] = []
    if system_parts:
        # One system message: several of them break some chat templates (e.g. the embedded model's).
        out.append({"role": "system", "content": "\n\n".join(system_parts)})
    out += [m.as_dict() for m in conversation.messages if m.role != "system"]
    return out


def _category(exc: BaseException) -> str:
    cat = getattr(exc, "category", None)
    return cat if cat in ("component", "timeout", "auth", "environment") else "component"


def _last_turn_role(conversation: Conversation) -> str | None:
    for m in reversed(conversation.messages):
        if m.role != "system":
            return m.role
    return None


async def simulate(
    history: Conversation,
    *,
    example: Example,
    task: Task | None,
    simulator: UserSimulator,
    assistant_model: str,
    client: ModelClient,
    max_exchanges: int,
    seed: int,
    sample_index: int = 0,
    assistant_variant: AssistantVariant = "plain",
    system_prompt: str | None = None,
    termination_signal: str = DEFAULT_TERMINATION_SIGNAL,
    params: GenerationParams | None = None,
) -> SimulationResult:
    """Continue ``history`` for up to ``max_exchanges`` exchanges (see the module docstring)."""
    if max_exchanges < 0:
        raise ValueError(f"max_exchanges must be >= 0, got {max_exchanges}")
    if assistant_variant not in ASSISTANT_VARIANTS:
        raise ValueError(f"unknown assistant variant {assistant_variant!r}; known: {', '.join(ASSISTANT_VARIANTS)}")
    base_params = params or DEFAULT_ASSISTANT_PARAMS
    user_component = f"user:{simulator.name}"
    conv = history
    start = len(history)
    exchanges = users = assistants = 0
    terminated = False
    errors: list[SimulationError] = []

    # A history ending with a user message: the assistant's reply completes that pending exchange.
    need_user = _last_turn_role(conv) != "user"
    while exchanges < max_exchanges:
        if need_user:
            ctx = SimulationContext(
                example=example,
                conversation=conv,
                task=task,
                client=client,
                seed=seed,
                sample_index=sample_index,
                termination_signal=termination_signal,
            )
            try:
                turn = await simulator.respond(ctx)
            except Exception as e:  # a failing simulator ends this simulation, recorded with its name
                errors.append(SimulationError(user_component, f"{type(e).__name__}: {e}", len(conv),
                                              _category(e)))
                break
            conv = conv.append("user", turn.message)
            users += 1
            if turn.terminate or (termination_signal and termination_signal in turn.message):
                terminated = True
                break
        need_user = True
        at = len(conv)
        call_params = base_params.with_(seed=derive_seed(seed, sample_index, at, "assistant"))
        try:
            completion = await client.complete(
                assistant_model,
                assistant_messages(conv, variant=assistant_variant, system_prompt=system_prompt),
                params=call_params,
                sample_index=sample_index,
                component="assistant",
            )
        except Exception as e:  # the model layer already retried; record and stop
            errors.append(SimulationError("assistant", f"{type(e).__name__}: {e}", at, _category(e)))
            break
        conv = conv.append("assistant", completion.text)
        assistants += 1
        exchanges += 1

    return SimulationResult(
        conversation=conv,
        start=start,
        exchanges=exchanges,
        terminated=terminated,
        user_messages=users,
        assistant_messages=assistants,
        errors=tuple(errors),
    )


"""``llm-user``: a language model plays a lazy human user who knows the whole goal.

The model sees the goal (the example's complete prompt and the task description — neither is ever shown to the
assistant) and the conversation with the roles flipped, so that it speaks as the user. It answers with structured
output (a private thought, the message, and whether it is done) through :meth:`ModelClient.structured`, which
validates and retries a bounded number of times. A terminating turn always carries the termination signal in its
message, because the simulation loop decides on ``signal in message``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, SimulationContext, UserSimulator
from collab_harness.errors import CollabHarnessError, ComponentError
from collab_harness.models.protocol import GenerationParams
from collab_harness.types import Conversation, UserTurn

__all__ = ["LLMUser", "LLMUserOptions", "UserReply", "build_messages", "register_simulators"]

NAME = "llm-user"
#: How much of a bad raw output goes into an error message.
_RAW_IN_ERROR = 300


class LLMUserOptions(ComponentOptions):
    model: str = "local/smollm2"
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    max_tokens: int = Field(384, ge=16)
    #: Structured-output attempts (the first call plus retries with the validation error fed back).
    max_attempts: int = Field(3, ge=1, le=10)
    #: Overrides the signal given by the simulation context (which defaults to ``[[TERMINATE CHAT]]``).
    termination_signal: str | None = None


class UserReply(BaseModel):
    """What the model must return. Numbers in ``message``/``thought`` are kept as text (a user may reply "42")."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    thought: str = Field("", description="private reasoning, never shown to the assistant")
    message: str = Field(description="the next message to the assistant, written as the user")
    terminate: bool = Field(False, description="true when the goal is reached or the chat is stuck")

    @model_validator(mode="after")
    def _speaks_unless_done(self) -> UserReply:
        # An empty message that does not end the chat would stall the conversation: reject it so the client retries.
        if not self.terminate and not self.message.strip():
            raise ValueError("message must not be empty unless terminate is true")
        return self


_SYSTEM = """\
You are role-playing a human who is chatting with an AI assistant to get something done. You are the USER, \
not the assistant. Never solve the task yourself and never write the assistant's part.

Your goal ({task_desc}) — the assistant cannot see this, you know it by heart:
<<<GOAL
{goal}
GOAL>>>

How to behave:
- Be a realistic, somewhat lazy person: short, informal messages, a sentence or two.
- Start vague. Your first message names only the general thing you want, not the details.
- Reveal details only when the assistant asks about them, and then answer what was asked, no more.
- You have your own preferences (tone, length, format); mention one when the assistant's work clashes with it.
- You may make small slips (a typo, a slightly imprecise detail), but never contradict the goal.
- Stay on this goal; don't wander off to other topics.
- When the assistant's latest answer meets your goal, or the chat is going nowhere, thank it briefly and end the \
chat: set "terminate" to true and put {signal} at the end of your message.

Always reply with only a JSON object, no other text, like this example:
{{"thought": "It asked about the length; I want it short.", "message": "short pls, like a paragraph", \
"terminate": false}}"""

_OPENING = "(The chat has not started yet. Write your first message to the assistant.)"
_NEXT = "(Write your next message to the assistant as the user, as a JSON object.)"


def _flip(conversation: Conversation) -> list[dict[str, str]]:
    """The conversation from the simulator's side: its own past messages become "assistant", the assistant's "user".

    System messages belong to the assistant's set-up and are not the simulator's business, so they are dropped.
    """
    flipped = {"user": "assistant", "assistant": "user"}
    return [{"role": flipped[m.role], "content": m.content} for m in conversation.messages if m.role in flipped]


def build_messages(ctx: SimulationContext, signal: str) -> list[dict[str, str]]:
    """The chat sent to the simulator model for one turn."""
    system = _SYSTEM.format(
        task_desc=ctx.task_desc or "a task",
        goal=ctx.example.prompt.strip(),
        signal=signal,
    )
    history = _flip(ctx.conversation)
    messages = [{"role": "system", "content": system}, *history]
    # The model must get the last word as "user" in its own frame: the opening nudge, or a reminder after the
    # assistant's message (which keeps the JSON format request close to where it generates).
    if not history:
        messages.append({"role": "user", "content": _OPENING})
    elif history[-1]["role"] == "user":
        messages[-1] = {"role": "user", "content": f"{history[-1]['content']}\n\n{_NEXT}"}
    else:
        messages.append({"role": "user", "content": _NEXT})
    return messages


class LLMUser(UserSimulator):
    """An LLM-prompted lazy user: vague first, details when asked, ends with the termination signal."""

    name: ClassVar[str] = NAME
    #: ``--user openai/gpt-4o`` means this simulator played by that model.
    plays_model_strings: ClassVar[bool] = True
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "LLM-prompted lazy user who knows the full goal and reveals it when asked."
    Options: ClassVar[type[ComponentOptions]] = LLMUserOptions

    async def respond(self, ctx: SimulationContext) -> UserTurn:
        opts: Any = self.options
        sample_id = ctx.example.id
        if ctx.client is None:
            raise ComponentError(NAME, "no model client in the simulation context", sample_id=sample_id)
        signal = opts.termination_signal or ctx.termination_signal
        params = GenerationParams(temperature=opts.temperature, max_tokens=opts.max_tokens, seed=ctx.seed)
        try:
            result = await ctx.client.structured(
                opts.model,
                build_messages(ctx, signal),
                UserReply,
                params=params,
                sample_index=ctx.sample_index,
                component=NAME,
                max_attempts=opts.max_attempts,
            )
        except CollabHarnessError as e:  # e.g. ModelError after the client's own transport retries
            raise ComponentError(NAME, f"model call failed: {e}", sample_id=sample_id) from e
        reply = result.value
        if reply is None:
            raw = (result.raw or "")[:_RAW_IN_ERROR]
            raise ComponentError(
                NAME,
                f"no valid structured reply from {opts.model} ({result.attempts} attempt(s)): "
                f"{result.error or 'unknown error'}; last raw output: {raw!r}",
                sample_id=sample_id,
            )
        message = reply.message.strip()
        # The loop ends on `signal in message`: keep the flag and the text consistent whichever way the model slipped.
        terminate = reply.terminate or signal in message
        if terminate and signal not in message:
            message = f"{message} {signal}".strip()
        return UserTurn(message=message, terminate=terminate, thought=reply.thought or None)


@hookimpl
def register_simulators(register: Any) -> None:
    register(LLMUser)

"""``human-user``: a person plays the user — the simulator behind ``collab-harness chat``.

It is an ordinary :class:`~collab_harness.components.UserSimulator` (``respond(ctx) -> UserTurn``), so a person sits
exactly where ``shard-user`` or ``llm-user`` sit; it also implements :class:`collab_harness.chat.HumanPlayer`
(ratings, free text, events shown) for the study protocol. Where the person is, is a *frontend*
(:class:`collab_harness.chat.HumanFrontend`: ``show(event)`` and ``ask(request)``), swapped with :meth:`attach`:

- :class:`TerminalFrontend` (the default): rich output; input through prompt_toolkit on a terminal (Enter sends,
  Alt+Enter / Esc Enter / Ctrl+J start a new line, pasted text keeps its lines, Ctrl-C / Ctrl-D pause), or plain
  lines when there is no terminal or no prompt_toolkit (a line ending in ``\\`` continues);
  its reader can be a :class:`ScriptedReader` (scripted inputs, rendered as on the terminal);
- :class:`ScriptedFrontend`: a list of inputs and a list of what was shown, no terminal (tests, replays);
- a third party's (a web page): any object with ``name``, ``show`` and ``ask``.

Commands (``/help``, ``/undo``, ``/done``, ``/quit``) are interpreted here, so every frontend gets them. A frontend
whose person leaves (end of input, Ctrl-C, a closed page) raises :class:`~collab_harness.chat.SessionPaused`.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterable
from typing import Any, ClassVar

from collab_harness import hookimpl
from collab_harness.chat import (
    COMMANDS_HELP,
    ChatEvent,
    HumanFrontend,
    InputRequest,
    SessionPaused,
    UndoRequested,
    task_brief,
)
from collab_harness.components import ComponentOptions, SimulationContext, UserSimulator
from collab_harness.types import UserTurn

__all__ = [
    "HumanUser",
    "PlainReader",
    "PromptToolkitReader",
    "ScriptedFrontend",
    "ScriptedReader",
    "TerminalFrontend",
    "default_reader",
    "register_simulators",
]

NAME = "human-user"


# ---------------------------------------------------------------------------------------------- readers


class ScriptedReader:
    """Inputs from a list, in order (messages, ratings and commands alike). Running out means the person left:
    :class:`SessionPaused`. With a console, each prompt and answer is echoed as a terminal would show it."""

    name = "scripted"

    def __init__(self, inputs: Iterable[str], console: Any = None) -> None:
        self.inputs = list(inputs)
        self.console = console

    async def read(self, request: InputRequest) -> str:
        if not self.inputs:
            raise SessionPaused("no more scripted input")
        text = self.inputs.pop(0)
        if self.console is not None:
            self.console.print(f"{_prompt(request)}{text}", markup=False, highlight=False)
        return text


async def _input_line(prompt: str) -> str:
    """``input(prompt)`` off the event loop, in a daemon thread of its own: a read that never returns (the person
    walked away, Ctrl-C stopped the loop) must not keep the process alive at exit, as a pool thread would."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()

    def settle(line: str | None, err: BaseException | None) -> None:
        if fut.done():  # the waiting coroutine was cancelled
            return
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(str(line))

    def read() -> None:
        line: str | None = None
        err: BaseException | None = None
        try:
            line = input(prompt)
        except BaseException as e:  # EOFError, KeyboardInterrupt: handed to the waiting coroutine
            err = e
        try:
            loop.call_soon_threadsafe(settle, line, err)
        except RuntimeError:
            pass  # the loop is gone (the session ended meanwhile): nobody waits for this line

    threading.Thread(target=read, name="collab-human-input", daemon=True).start()
    return await fut


class PlainReader:
    """Lines from standard input (no terminal, or no prompt_toolkit). A line ending in a backslash continues on the
    next one. The blocking read runs in a daemon thread, never on the event loop."""

    name = "terminal (plain)"

    async def read(self, request: InputRequest) -> str:
        lines: list[str] = []
        prompt = _prompt(request)
        while True:
            try:
                line = await _input_line(prompt if not lines else "... ")
            except (EOFError, KeyboardInterrupt):
                raise SessionPaused("end of input") from None
            if request.kind != "rating" and line.endswith("\\"):
                lines.append(line[:-1])
                continue
            lines.append(line)
            return "\n".join(lines)


class PromptToolkitReader:
    """prompt_toolkit on a terminal: line editing and history; messages and free text are multiline (Enter sends,
    Alt+Enter / Esc Enter / Ctrl+J insert a newline), ratings single-line. Ctrl-C and Ctrl-D pause the session."""

    name = "terminal"

    def __init__(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.key_binding import KeyBindings

        kb = KeyBindings()

        @kb.add("enter")
        def _send(event: Any) -> None:
            event.current_buffer.validate_and_handle()

        @kb.add("escape", "enter")
        @kb.add("c-j")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        self.session: Any = PromptSession(key_bindings=kb, prompt_continuation=lambda w, n, s: "... ".rjust(w))

    async def read(self, request: InputRequest) -> str:
        try:
            text = await self.session.prompt_async(_prompt(request), multiline=request.kind != "rating")
        except (EOFError, KeyboardInterrupt):
            raise SessionPaused("the person left (Ctrl-C / Ctrl-D)") from None
        return str(text)


def default_reader() -> Any:
    """prompt_toolkit on an interactive terminal when it is installed, plain lines otherwise."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        try:
            return PromptToolkitReader()
        except ImportError:
            pass
    return PlainReader()


def _prompt(request: InputRequest) -> str:
    if request.kind == "message":
        return "you> "
    if request.kind == "rating" and request.scale:
        return f"rating {request.scale[0]}-{request.scale[1]}> "
    return "> "


# --------------------------------------------------------------------------------------------- frontends


class TerminalFrontend:
    """The terminal: rich output, input from a reader (default: :func:`default_reader`)."""

    def __init__(self, console: Any = None, reader: Any = None) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(highlight=False)
        self.reader = reader if reader is not None else default_reader()
        self.name = str(getattr(self.reader, "name", "terminal"))

    async def show(self, event: ChatEvent) -> None:
        from rich.panel import Panel
        from rich.text import Text

        c = self.console
        if event.kind == "welcome":
            c.rule("collab-harness chat")
            c.print(Text(event.text))
        elif event.kind == "brief":
            c.print(Panel(Text(event.text), title="your task", title_align="left", border_style="blue"))
        elif event.kind == "help":
            c.print(Text(event.text, style="dim"))
        elif event.kind == "assistant":
            # Verbatim, not rendered as Markdown: the person must read exactly what the assistant wrote (Markdown
            # rendering drops HTML-like text such as code with <tags> and joins lines).
            c.print(Text(f"assistant (turn {event.turn})", style="bold cyan"))
            c.print(Text(event.text))
            c.print()
        elif event.kind == "user":
            c.print(Text(f"you (turn {event.turn})", style="bold green"))
            c.print(Text(event.text))
        elif event.kind == "waiting":
            c.print(Text("the assistant is writing...", style="dim italic"))
        elif event.kind == "notice":
            c.print(Text(event.text, style="yellow"))
        elif event.kind == "end":
            c.print(Text(event.text, style="bold"))
        else:  # an event kind this frontend does not know: shown as text rather than dropped
            c.print(Text(event.text))

    async def ask(self, request: InputRequest) -> str:
        if request.kind != "message":
            self.console.print(request.prompt, style="bold", markup=False, highlight=False)
        return str(await self.reader.read(request))


class ScriptedFrontend:
    """Inputs from a list, nothing rendered: ``shown`` keeps every event, ``asked`` every request (tests)."""

    name = "scripted"

    def __init__(self, inputs: Iterable[str]) -> None:
        self.inputs = list(inputs)
        self.shown: list[ChatEvent] = []
        self.asked: list[InputRequest] = []

    async def show(self, event: ChatEvent) -> None:
        self.shown.append(event)

    async def ask(self, request: InputRequest) -> str:
        self.asked.append(request)
        if not self.inputs:
            raise SessionPaused("no more scripted input")
        return self.inputs.pop(0)


# --------------------------------------------------------------------------------------------- simulator


class HumanUser(UserSimulator):
    """A person plays the user, through a frontend (the terminal unless one is attached)."""

    name: ClassVar[str] = NAME
    played_by_person: ClassVar[bool] = True
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ("A person plays the user (collab-harness chat): terminal, scripted inputs, or an "
                                  "attached frontend.")
    Options: ClassVar[type[ComponentOptions]] = ComponentOptions

    def __init__(self, options: Any = None, /, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._frontend: HumanFrontend | None = None
        # Messages of the conversation the person has seen (replies are shown as they arrive, or by respond()).
        self._shown = 0
        # The last brief shown (by chat, or by respond() when a conversation opens without one).
        self._brief: str | None = None
        self._lock = asyncio.Lock()  # one question at a time, even if several conversations share the person

    # -- the frontend -----------------------------------------------------------------------------------------

    def attach(self, frontend: HumanFrontend) -> None:
        """Use ``frontend`` from now on (a terminal, scripted inputs, a web page)."""
        self._frontend = frontend
        self._shown = 0

    @property
    def frontend(self) -> HumanFrontend:
        if self._frontend is None:
            self._frontend = TerminalFrontend()  # created on first use: building the component touches no terminal
        return self._frontend

    @property
    def frontend_name(self) -> str:
        return str(getattr(self.frontend, "name", type(self.frontend).__name__))

    async def show(self, event: ChatEvent) -> None:
        if event.index is not None and event.kind in ("assistant", "user"):
            self._shown = max(self._shown, event.index + 1)
        if event.kind == "brief":
            self._brief = event.text
        await self.frontend.show(event)

    async def _ask(self, request: InputRequest) -> str:
        async with self._lock:
            return await self.frontend.ask(request)

    # -- UserSimulator ------------------------------------------------------------------------------------

    async def respond(self, ctx: SimulationContext) -> UserTurn:
        """The person's next message. The brief (when a conversation opens without one) and replies they have not
        seen yet are shown first (the plain simulation loop shows nothing). ``/done`` ends the conversation (the
        termination signal), ``/undo`` raises :class:`UndoRequested`, ``/quit`` :class:`SessionPaused`; ``/help``
        and empty input ask again."""
        msgs = ctx.conversation.messages
        if not msgs and ctx.task is not None:
            # Opening a conversation: the person must know their goal (chat shows the brief itself; the plain
            # simulation loop does not).
            brief = task_brief(ctx.task, ctx.example)
            if brief != self._brief:
                await self.show(ChatEvent(kind="brief", text=brief, turn=1))
        self._shown = min(self._shown, len(msgs))
        for i in range(self._shown, len(msgs)):
            if msgs[i].role == "assistant":
                await self.show(ChatEvent(kind="assistant", text=msgs[i].content, turn=(i + 1) // 2, index=i))
        self._shown = len(msgs)
        turn = sum(1 for m in msgs if m.role == "user") + 1
        while True:
            text = await self._ask(InputRequest(kind="message", prompt="Your message", turn=turn))
            body = text.strip()
            command = body.split()[0].lower() if body.startswith("/") and body.split() else ""
            if command == "/help":
                await self.show(ChatEvent(kind="help", text=COMMANDS_HELP, turn=turn))
            elif command == "/undo":
                raise UndoRequested()
            elif command in ("/quit", "/exit", "/pause"):
                raise SessionPaused("/quit")
            elif command == "/done":
                return UserTurn(message=ctx.termination_signal, terminate=True, thought="/done")
            elif command:
                await self.show(ChatEvent(kind="notice", text=f"Unknown command {command}; type /help.", turn=turn))
            elif not body:
                await self.show(ChatEvent(kind="notice", text="Type a message (or /help).", turn=turn))
            else:
                return UserTurn(message=text.strip("\n").rstrip())

    # -- the study protocol ------------------------------------------------------------------------------------

    async def rate(self, question: str, scale: tuple[int, int], turn: int) -> int:
        """A whole number on ``scale``, asked until one is given (``/quit`` pauses, ``/help`` helps)."""
        lo, hi = scale
        while True:
            text = (await self._ask(InputRequest(kind="rating", prompt=f"{question} ({lo} = worst, {hi} = best)",
                                                 turn=turn, scale=scale))).strip()
            if text.lower() in ("/quit", "/exit", "/pause"):
                raise SessionPaused("/quit")
            if text.lower() == "/help":
                await self.show(ChatEvent(kind="help", text=f"Type a whole number from {lo} to {hi} and press "
                                                            "Enter; /quit pauses the session.", turn=turn))
                continue
            try:
                value = int(text)
            except ValueError:
                value = None
            if value is not None and lo <= value <= hi:
                return value
            await self.show(ChatEvent(kind="notice", text=f"Please type a whole number from {lo} to {hi}.",
                                      turn=turn))

    async def comment(self, question: str, turn: int, optional: bool = True) -> str:
        """Free text (multiline; empty when ``optional``); ``/quit`` pauses."""
        while True:
            text = await self._ask(InputRequest(kind="text", prompt=question, turn=turn, optional=optional))
            if text.strip().lower() in ("/quit", "/exit", "/pause"):
                raise SessionPaused("/quit")
            if text.strip() or optional:
                return text


@hookimpl
def register_simulators(register: Any) -> None:
    register(HumanUser)

"""``collab-harness chat`` (issue 15): a person plays the user, with the paper's user-study protocol.

The terminal session is driven through a real pseudo-terminal (pexpect) against scripted assistants: nine turns,
ratings after turns 3, 6 and 9, final ratings, killed with SIGKILL mid-session and resumed — one record, every
message, rating and time in it, nothing duplicated, no assistant name on the screen. Blind assignment of 30 seeded
sessions over 3 assistants is 10/10/10 and invisible in the terminal output. The rest: the human-user simulator on
the plain simulation path, undo, the minimum turns, pauses, a failing assistant, the journal's torn line, settings
that change between sittings, aggregates, schema and the board's chat section.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import collab_harness_plugins.simulators.human_user as human_user
import pytest

from collab_harness import build_plugin_manager
from collab_harness.chat import (
    AssistantSpec,
    ChatProtocol,
    ChatSettings,
    assign_assistants,
    default_brief,
    journal_path,
    plan_sessions,
    read_journal,
    run_chat,
    run_chat_async,
    session_states,
    task_brief,
)
from collab_harness.config import make_config
from collab_harness.errors import ConfigError
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.plugins import PluginHost
from collab_harness.records import ChatRecord
from collab_harness.rundir import read_records

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[\]P^_][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\r")

#: Runs ``collab-harness chat ARGS`` in a fresh process with the scripted assistants registered (scripts live in the
#: process that registers them) and the human-user plugin loaded (also before its entry point is installed).
DRIVER = r"""
import sys
from collab_harness.models.scripted import register_script

def reply(messages, params, sample_index):
    n = sum(1 for m in messages if m["role"] == "assistant")
    last = messages[-1]["content"].replace("\n", " / ")
    return f"Reply {n + 1} to <{last}>: " + ("who will read it?" if n % 2 == 0 else "here is a revised draft.")

for name in ("secret-alpha", "secret-bravo", "secret-charlie"):
    register_script(name, reply)

import collab_harness_plugins.simulators.human_user as hu
from collab_harness.cli import main as cli_main
from collab_harness.cli._common import State
from collab_harness.plugins import build_plugin_manager

host = build_plugin_manager(strict=False, block=[])
if "human-user" not in host.registry.names("simulator"):
    host.add_plugin(hu, name="human-user")
if "chat" in cli_main.COMMANDS:  # the real entry point, once the command is registered
    cli_main.State = lambda **kw: _state(kw)
    def _state(kw):
        st = State(**kw)
        st._host = host
        return st
    cli_main.main(["chat", *sys.argv[1:]])
else:
    from collab_harness.cli.chat_cmd import chat
    st = State(debug=False, strict=False, block=[])
    st._host = host
    chat.main(args=sys.argv[1:], prog_name="collab-harness chat", obj=st, standalone_mode=True)
"""

SECRETS = ("secret-alpha", "secret-bravo", "secret-charlie", "Alpha", "Bravo", "Charlie")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def host() -> PluginHost:
    h = build_plugin_manager(strict=False, block=[])
    if "human-user" not in h.registry.names("simulator"):
        h.add_plugin(human_user, name="human-user")
    return h


def _reply(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    n = sum(1 for m in messages if m["role"] == "assistant")
    return f"Reply {n + 1}: what is the post about, and who reads it?" if n % 2 == 0 else \
        "Here is a draft about " + messages[-1]["content"]


@pytest.fixture
def assistants() -> Iterator[list[str]]:
    names = ["t-alpha", "t-bravo", "t-charlie"]
    models = [register_script(n, _reply) for n in names]
    yield models
    for n in names:
        unregister_script(n)


def _settings(models: list[str], **proto: Any) -> ChatSettings:
    labels = ["Alpha", "Bravo", "Charlie"]
    sessions = proto.pop("sessions", len(models))
    blind = proto.pop("blind", True)
    return ChatSettings(assistants=[AssistantSpec(label=lb, model=m) for lb, m in zip(labels, models, strict=False)],
                        blind=blind, sessions=sessions, protocol=ChatProtocol(**proto))


def _config(model: str, **kw: Any) -> Any:
    return make_config({"task": "doc-chat", "assistant": model, "user": "human-user", "cache": False, **kw})


# --------------------------------------------------------------------------------------- the pseudo-terminal


class Terminal:
    """A pexpect child whose output is read continuously; ``wait`` looks for text in the ANSI-stripped stream."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str) -> None:
        import pexpect

        self.pexpect = pexpect
        self.child = pexpect.spawn(sys.executable, ["-c", DRIVER, *args], env=env, cwd=cwd, dimensions=(50, 140),
                                   encoding="utf-8", timeout=60)
        self.raw = ""
        self.seen = 0  # how much of the stripped text earlier waits consumed

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw)

    def _pump(self, timeout: float) -> None:
        try:
            self.raw += self.child.read_nonblocking(65536, timeout=timeout)
        except (self.pexpect.TIMEOUT, self.pexpect.EOF):
            pass

    def wait(self, needle: str, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            i = self.text.find(needle, self.seen)
            if i >= 0:
                self.seen = i + len(needle)
                return self.text
            if not self.child.isalive():
                self._pump(0.1)
                if self.text.find(needle, self.seen) >= 0:
                    continue
                raise AssertionError(f"the chat ended before {needle!r}:\n{self.text[-3000:]}")
            self._pump(0.2)
        raise AssertionError(f"timed out waiting for {needle!r}:\n{self.text[-3000:]}")

    def say(self, text: str, then: str) -> None:
        """Type ``text`` at the prompt (Enter sends) and wait for ``then``."""
        self.wait("you>")
        self.child.send(text + "\r")
        self.wait(then)

    def finish(self, timeout: float = 60.0) -> int:
        end = time.monotonic() + timeout
        while self.child.isalive() and time.monotonic() < end:
            self._pump(0.2)
        self._pump(0.1)
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)


@pytest.mark.slow
def test_pty_session_nine_turns_killed_and_resumed(tmp_path: Path) -> None:
    pytest.importorskip("pexpect")
    study = tmp_path / "study"
    args = ["--task", "doc-chat", "--assistants",
            "Alpha=scripted/secret-alpha,Bravo=scripted/secret-bravo,Charlie=scripted/secret-charlie",
            "--blind", "--sessions", "3", "--seed", "5", "--out", str(study), "--no-cache"]
    env = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1",
           "COLLAB_HARNESS_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    repo = str(Path(__file__).resolve().parents[1])
    sent: dict[int, str] = {}

    # --- sitting 1: five turns, a rating after turn 3, an early /done refused; then SIGKILL at the sixth prompt.
    t1 = Terminal(args, env, repo)
    t1.wait("Your task: document creation")
    t1.wait("/undo")  # the commands are explained
    for turn in range(1, 6):
        if turn == 2:
            t1.say("/done", "at least 8 turns")
        sent[turn] = f"message {turn}: the post is for busy parents"
        t1.say(sent[turn], f"Reply {turn} to <{sent[turn]}>")
        if turn == 3:
            t1.wait("rating 1-10>")
            t1.child.send("11\r")  # out of range: asked again
            t1.wait("whole number from 1 to 10")
            t1.wait("rating 1-10>")
            t1.child.send("4\r")
    t1.wait("you>")
    journal = journal_path(study, "session-001")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        snap = read_journal(study, "session-001")
        if snap is not None and len(snap.turns) == 5:
            break
        time.sleep(0.05)
    os.kill(t1.child.pid, signal.SIGKILL)
    t1.finish(20)
    screen_1 = t1.text
    assert not (study / "samples.jsonl").exists() or not read_records(study / "samples.jsonl").records
    assert session_states(study, ["session-001", "session-002", "session-003"])["session-001"] == "incomplete"
    before = read_journal(study, "session-001")
    assert before is not None and before.status == "incomplete" and len(before.turns) == 5
    assert [r.after_turn for r in before.ratings] == [3] and before.ratings[0].value == 4
    n_lines_before = journal.read_bytes().count(b"\n")

    # --- sitting 2: the same command resumes session-001 (not a new session) and finishes it.
    t2 = Terminal(args, env, repo)
    t2.wait("Session session-001")
    t2.wait("Resuming this session after 5 turn(s)")
    t2.wait(f"Reply 5 to <{sent[5]}>")  # the conversation so far is shown again
    sent[6] = "message 6: keep it under 500 words"
    t2.say(sent[6], f"Reply 6 to <{sent[6]}>")
    t2.wait("rating 1-10>")
    t2.child.send("6\r")
    t2.say("a message I take back", "Reply 7 to <a message I take back>")
    t2.say("/undo", "Took back turn 7")
    t2.say("/help", "take back your last message")
    t2.wait("you>")
    t2.child.send("message 7: first line\x1b\rsecond line\r")  # Alt+Enter: a new line, Enter: send
    sent[7] = "message 7: first line\nsecond line"
    t2.wait("Reply 7 to <message 7: first line / second line>")
    for turn in (8, 9):
        sent[turn] = f"message {turn}: add a checklist"
        t2.say(sent[turn], f"Reply {turn} to <{sent[turn]}>")
    t2.wait("rating 1-10>")
    t2.child.send("9\r")
    t2.say("/done", "How good is the final document")
    t2.wait("rating 1-10>")
    t2.child.send("8\r")
    t2.wait("overall")
    t2.wait("rating 1-10>")
    t2.child.send("6\r")
    t2.wait("What did the assistant do well")
    t2.child.send("clear drafts\r")
    t2.wait("could the assistant have done better")
    t2.child.send("\r")  # optional: skipped
    t2.wait("Thank you")
    assert t2.finish() == 0, t2.text[-2000:]
    screen_2 = t2.text

    # One record, complete, holding every message, rating and time.
    log = read_records(study / "samples.jsonl")
    assert len(log.records) == 1 and not log.duplicates
    rec = log.records[0]
    assert isinstance(rec, ChatRecord) and rec.session_id == "session-001" and rec.status == "complete"
    assert rec.id == before.id and rec.seed == before.seed  # the same session, resumed
    assert [t.index for t in rec.turns] == list(range(1, 10))
    assert [t.user for t in rec.turns] == [sent[i] for i in range(1, 10)]
    assert all(t.assistant.startswith(f"Reply {t.index} to <") for t in rec.turns)
    assert [m.role for m in rec.conversation] == ["user", "assistant"] * 9
    assert [m.content for m in rec.conversation[::2]] == [sent[i] for i in range(1, 10)]
    assert [(r.after_turn, r.value) for r in rec.ratings] == [(3, 4), (6, 6), (9, 9)]
    assert all(r.key == "turn" and r.scale == (1, 10) and r.response_s > 0 for r in rec.ratings)
    assert rec.rating("outcome") == 8 and rec.rating("interaction") == 6
    assert all(r.after_turn == 9 for r in rec.final_ratings)
    assert rec.feedback == {"strengths": "clear drafts", "weaknesses": ""}
    assert rec.terminated and rec.ended_by == "person"
    assert [u.user for u in rec.undone] == ["a message I take back"] and rec.undone[0].undone_at
    assert all(t.user_s > 0 and t.assistant_s >= 0 and t.started_at for t in rec.turns)
    assert [s.end for s in rec.segments] == ["interrupted", "finished"]
    assert rec.active_s == pytest.approx(sum(s.active_s for s in rec.segments), abs=0.01) and rec.active_s > 0
    assert rec.active_s >= sum(t.user_s for t in rec.turns)
    assert rec.blind and rec.frontend == "terminal"
    # Scored like an evaluation: the task metric, the interactivity judge, token counts.
    assert {"bleu", "interactivity", "token_amount"} <= set(rec.scores) and not rec.errors
    assert all(s.ok for s in rec.scores.values())
    # The journal was appended to, never rewritten; its last line is the final record.
    lines = journal.read_bytes().count(b"\n")
    assert lines > n_lines_before
    assert read_journal(study, "session-001") == rec.model_copy(update={"usage": {}, "elapsed_s": 0.0})
    man = json.loads((study / "manifest.json").read_text())
    assert man["kind"] == "chat" and man["status"] == "started"  # two sessions of the study remain
    assert man["summary"]["sessions"] == {"complete": 1, "failed": 0, "incomplete": 0, "new": 2}
    proto = man["config"]["chat"]["protocol"]
    assert (proto["min_turns"], proto["rate_every"], proto["scale"]) == (8, 3, [1, 10])
    assert man["config"]["chat"]["blind"] is True and len(man["resumes"]) == 1
    # --- sitting 3: the next session; Ctrl-C at the prompt pauses it (saved, exit 0), it does not crash.
    t3 = Terminal(args, env, repo)
    t3.wait("Session session-002")
    t3.wait("you>")
    t3.child.sendcontrol("c")
    t3.wait("Paused after 0 turn(s)")
    assert t3.finish() == 0, t3.text[-2000:]
    assert session_states(study, ["session-002"]) == {"session-002": "incomplete"}
    assert json.loads((study / "manifest.json").read_text())["summary"]["sessions"]["incomplete"] == 1
    # Blind: no assistant name or model string ever reached the screen.
    for screen in (screen_1, screen_2, t3.text):
        flat = re.sub(r"\s+", "", screen)
        for secret in SECRETS:
            assert secret not in screen and secret not in flat, secret


# --------------------------------------------------------------------------------------------- blind balance


@pytest.mark.slow
def test_blind_assignment_of_30_sessions_is_balanced_and_never_shown(tmp_path: Path, host: PluginHost,
                                                                     assistants: list[str]) -> None:
    from rich.console import Console

    settings = _settings(assistants, sessions=30, min_turns=1, rate_every=1, feedback_questions={})
    config = _config(assistants[0], seed=17)
    study = tmp_path / "study"
    screens = []
    for _ in range(30):
        buf = io.StringIO()
        console = Console(file=buf, width=100, force_terminal=True, color_system="truecolor")
        frontend = human_user.TerminalFrontend(console=console,
                                               reader=human_user.ScriptedReader(["hello", "5", "/done", "6", "7"],
                                                                                console=console))
        out = run_chat(config, settings, host, study, frontend=frontend)
        assert out.status == "complete"
        screens.append(buf.getvalue())
    recs = [r for r in read_records(study / "samples.jsonl").records if isinstance(r, ChatRecord)]
    assert len(recs) == 30 and len({r.session_id for r in recs}) == 30
    assert Counter(r.assistant for r in recs) == {"Alpha": 10, "Bravo": 10, "Charlie": 10}
    # Permuted blocks: every block of three consecutive sessions meets each assistant once, on one example.
    by_id = sorted(recs, key=lambda r: r.session_id)
    for b in range(10):
        block = by_id[3 * b: 3 * b + 3]
        assert sorted(r.assistant for r in block) == ["Alpha", "Bravo", "Charlie"]
        assert len({r.example_id for r in block}) == 1
    # Seeded: the plan in the manifest is the plan the seed gives; another seed gives another order.
    man = json.loads((study / "manifest.json").read_text())
    planned = [s["assistant"] for s in man["task"]["sessions"]]
    assert planned == [r.assistant for r in by_id]
    assert assign_assistants(30, 3, 17) != assign_assistants(30, 3, 18)
    assert man["status"] == "success" and man["summary"]["sessions"]["complete"] == 30
    # Nothing on any screen names the assistant (labels or model strings), in any sitting.
    text = "\n".join(screens)
    assert "the assistant is writing" in text and "Reply 1: what is the post about" in text
    for secret in ("Alpha", "Bravo", "Charlie", *assistants, *(m.split("/")[1] for m in assistants)):
        assert secret not in text, secret
    # A 31st sitting has nothing left to do.
    assert run_chat(config, settings, host, study, frontend=human_user.ScriptedFrontend([])).status == "nothing to do"


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_permuted_blocks_keep_every_prefix_balanced(k: int) -> None:
    for seed in range(5):
        order = assign_assistants(50, k, seed)
        for n in range(1, 51):
            counts = Counter(order[:n])
            assert max(counts.values()) - min(counts.get(i, 0) for i in range(k)) <= 1


def test_not_blind_names_the_assistant(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    fe = human_user.ScriptedFrontend(["hi", "/done", "5", "5", "", ""])
    out = run_chat(_config(assistants[0]), _settings(assistants[:1], blind=False, min_turns=1), host,
                   tmp_path / "s", frontend=fe)
    assert out.status == "complete" and not out.record.blind  # type: ignore[union-attr]
    assert "Alpha" in fe.shown[0].text and assistants[0] in fe.shown[0].text


# ------------------------------------------------------------------------------------------- the protocol


def test_undo_minimum_turns_ratings_and_finals(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    inputs = ["one", "/done", "two", "7",  # rating after turn 2
              "three", "/undo",  # takes back turn 3 (no rating went with it)
              "/undo",  # takes back turn 2: its rating is withdrawn and asked again
              "two again", "8", "", "  ", "/unknown", "three again", "/done", "x", "0", "9", "4", "good", ""]
    fe = human_user.ScriptedFrontend(inputs)
    out = run_chat(_config(assistants[0]), _settings(assistants[:1], min_turns=3, rate_every=2), host,
                   tmp_path / "s", frontend=fe)
    rec = out.record
    assert out.status == "complete" and rec is not None
    assert [t.user for t in rec.turns] == ["one", "two again", "three again"]
    assert [t.user for t in rec.undone] == ["three", "two"]
    assert [(r.after_turn, r.value) for r in rec.ratings] == [(2, 8)]
    assert [(r.after_turn, r.value) for r in rec.withdrawn_ratings] == [(2, 7)]
    assert rec.rating("outcome") == 9 and rec.rating("interaction") == 4
    notices = [e.text for e in fe.shown if e.kind == "notice"]
    assert any("at least 3 turns" in n for n in notices)
    assert any("Unknown command /unknown" in n for n in notices)
    assert any("Type a message" in n for n in notices)
    assert sum("whole number from 1 to 10" in n for n in notices) == 2  # "x" and "0"
    assert [a.kind for a in fe.asked].count("rating") == 2 + 2 + 2  # every-K (twice) + invalid (2) + finals
    # The assistant never saw the withdrawn turn: the third reply answers the conversation as it stands.
    assert rec.conversation[4].content == "three again"


def test_pause_and_resume_are_one_session(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    settings, config, study = _settings(assistants, sessions=3, min_turns=2, rate_every=0), \
        _config(assistants[0]), tmp_path / "s"
    first = run_chat(config, settings, host, study, frontend=human_user.ScriptedFrontend(["one", "/quit"]))
    assert first.status == "paused" and first.session_id == "session-001"
    assert first.record is not None and len(first.record.turns) == 1
    assert first.record.segments[-1].end == "paused"
    man = json.loads((study / "manifest.json").read_text())
    assert man["status"] == "started" and man["summary"]["sessions"]["incomplete"] == 1
    # End of input (the person closed the terminal) pauses too.
    again = run_chat(config, settings, host, study, frontend=human_user.ScriptedFrontend([]))
    assert again.status == "paused" and again.session_id == "session-001"
    fe = human_user.ScriptedFrontend(["two", "/done", "6", "7", "", ""])
    done = run_chat(config, settings, host, study, frontend=fe)
    assert done.status == "complete" and done.session_id == "session-001"
    assert [e.text for e in fe.shown if e.kind == "user"] == ["one"]  # the history, shown again
    rec = done.record
    assert rec is not None and [t.user for t in rec.turns] == ["one", "two"]
    assert [s.end for s in rec.segments] == ["paused", "paused", "finished"]
    assert len(read_records(study / "samples.jsonl").records) == 1
    nxt = run_chat(config, settings, host, study, frontend=human_user.ScriptedFrontend(["/quit"]))
    assert nxt.session_id == "session-002"
    # --session picks one; a finished one is refused.
    with pytest.raises(ConfigError, match="already finished"):
        run_chat(config, settings, host, study, session="session-001", frontend=human_user.ScriptedFrontend([]))


def test_resume_with_other_settings_is_refused(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    config, study = _config(assistants[0]), tmp_path / "s"
    run_chat(config, _settings(assistants, min_turns=2), host, study, frontend=human_user.ScriptedFrontend(["a"]))
    with pytest.raises(ConfigError, match="settings differ"):
        run_chat(config, _settings(assistants, min_turns=4), host, study, frontend=human_user.ScriptedFrontend([]))


def test_torn_journal_line_and_pending_message(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    config, settings, study = _config(assistants[0]), _settings(assistants[:1], min_turns=1, rate_every=0), \
        tmp_path / "s"
    run_chat(config, settings, host, study, frontend=human_user.ScriptedFrontend(["one"]))
    snap = read_journal(study, "session-001")
    assert snap is not None
    # As if killed while the assistant was writing: the last snapshot holds a sent message without reply, and a
    # crash mid-write left half a line.
    from collab_harness.records import ChatTurn
    from collab_harness.rundir import append_record

    pending = ChatTurn(index=2, user="two", assistant="", started_at=snap.segments[0].started_at, user_s=1.5)
    path = journal_path(study, "session-001")
    append_record(path, snap.model_copy(update={"pending": pending}))
    with open(path, "ab") as f:
        f.write(b'{"kind": "chat", "session_id": "session-0')
    fe = human_user.ScriptedFrontend(["/done", "5", "5", "", ""])
    out = run_chat(config, settings, host, study, frontend=fe)
    rec = out.record
    assert out.status == "complete" and rec is not None
    assert [(t.user, t.user_s) for t in rec.turns] == [("one", rec.turns[0].user_s), ("two", 1.5)]
    assert rec.turns[1].assistant.startswith("Here is a draft about two")
    assert any("sending it again" in e.text for e in fe.shown if e.kind == "notice")
    assert not read_records(path).torn_tail  # cut off before the next line was appended


def test_assistant_failure_is_recorded_and_retried(tmp_path: Path, host: PluginHost) -> None:
    from collab_harness.models.client import Client

    # Find a seed whose first draw injects an error and whose next draws do not (two draws per call).
    seed = next(s for s in range(1000) if _draws_ok(s))
    model = register_script("t-flaky", "A draft. Anything else?", error_rate=0.5, seed=seed)
    try:
        client = Client(use_cache=False, max_retries=0)
        fe = human_user.ScriptedFrontend(["hi", "", "/done", "5", "5", "", ""])
        import asyncio

        out = asyncio.run(run_chat_async(_config(model), _settings([model], min_turns=1, rate_every=0), host,
                                         tmp_path / "s", frontend=fe, client=client))
        rec = out.record
        assert out.status == "complete" and rec is not None
        assert len(rec.assistant_errors) == 1 and rec.assistant_errors[0].component == "assistant"
        assert "503" in rec.assistant_errors[0].message
        assert [t.assistant for t in rec.turns] == ["A draft. Anything else?"]
        shown = [e.text for e in fe.shown if e.kind == "notice"]
        assert any("could not reply" in t for t in shown)
        assert not any("t-flaky" in t for t in shown)  # blind: the error text shown names no model
    finally:
        unregister_script("t-flaky")


def _draws_ok(seed: int) -> bool:
    r = random.Random(seed)
    draws = [r.random() for _ in range(8)][0::2]  # the fault draw of each call
    return draws[0] < 0.5 and all(d >= 0.5 for d in draws[1:])


def test_human_user_on_the_plain_simulation_path(assistants: list[str], host: PluginHost) -> None:
    """The same UserSimulator code path as simulated users: ``simulate`` with a person (scripted) as the user."""
    import asyncio

    from collab_harness.models.client import Client
    from collab_harness.simulate import simulate
    from collab_harness.types import Conversation

    task = host.registry.create("task", "doc-chat")
    ex = task.examples("test", limit=1)[0]  # type: ignore[attr-defined]
    user = host.registry.create("simulator", "human-user")
    fe = human_user.ScriptedFrontend(["I want a post about sleep", "for new parents", "/done"])
    user.attach(fe)  # type: ignore[attr-defined]

    async def go() -> Any:
        client = Client(use_cache=False)
        try:
            return await simulate(Conversation(), example=ex, task=task, simulator=user,  # type: ignore[arg-type]
                                  assistant_model=assistants[0], client=client, max_exchanges=5, seed=0)
        finally:
            await client.aclose()

    res = asyncio.run(go())
    assert res.ok and res.terminated and res.exchanges == 2
    assert [m.content for m in res.conversation.by_role("user")][:2] == ["I want a post about sleep",
                                                                          "for new parents"]
    # The person was told their goal (the brief, once), and each reply was shown before they answered it.
    briefs = [e.text for e in fe.shown if e.kind == "brief"]
    assert briefs == [task_brief(task, ex)]  # type: ignore[arg-type]
    assert [e.text for e in fe.shown if e.kind == "assistant"] == \
        [m.content for m in res.conversation.by_role("assistant")]


def test_brief_is_the_opening_not_the_goal(host: PluginHost) -> None:
    for name in ("doc-chat", "math-chat", "code-chat"):
        task = host.registry.create("task", name)
        for ex in task.examples("test", limit=3):  # type: ignore[attr-defined]
            brief = task_brief(task, ex)  # type: ignore[arg-type]
            if len(ex.reference.strip()) >= 20:  # (a short math answer like "2" may occur in the problem itself)
                assert ex.reference.strip()[:80] not in brief  # never the answer
            if name == "doc-chat":  # the default brief: the goal type and the opening request
                assert task.goal_shards(ex)[0].strip() in brief  # type: ignore[attr-defined]
                assert task.task_desc in brief  # type: ignore[attr-defined]
                assert ex.prompt[:200] not in brief  # the simulator's prompt holds the hidden article
                assert default_brief(task, ex) == brief  # type: ignore[arg-type]
            else:  # a math problem or a function to write is no secret: the person needs it
                assert ex.prompt in brief

    class Own:
        def brief(self, example: Any) -> str:
            return "Write a haiku."

    assert task_brief(Own(), ex) == "Write a haiku."  # type: ignore[arg-type]


def test_settings_parsing_and_validation(host: PluginHost) -> None:
    a = AssistantSpec.parse("base=local/smollm2")
    assert (a.label, a.model, a.variant) == ("base", "local/smollm2", "plain")
    b = AssistantSpec.parse("local/smollm2+proactive")
    assert (b.label, b.model, b.variant) == ("local/smollm2+proactive", "local/smollm2", "proactive")
    with pytest.raises(ConfigError, match="provider/name"):
        AssistantSpec.parse("nonsense")
    with pytest.raises(ValueError, match="unique"):
        ChatSettings(assistants=[a, a])
    with pytest.raises(ValueError, match="max_turns"):
        ChatProtocol(min_turns=8, max_turns=4)
    task = host.registry.create("task", "doc-chat")
    assert ChatProtocol().finals(task)["outcome"] == "How good is the final document you got?"  # type: ignore[arg-type]
    exs = task.examples("test", limit=4)  # type: ignore[attr-defined]
    plan = plan_sessions(ChatSettings(assistants=[a, b], sessions=5), exs, seed=1)
    assert [p.id for p in plan] == [f"session-00{i}" for i in range(1, 6)]
    assert [p.example_id for p in plan] == [exs[0].id, exs[0].id, exs[1].id, exs[1].id, exs[2].id]


def test_max_turns_ends_the_conversation(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    fe = human_user.ScriptedFrontend(["one", "two", "6", "7", "", ""])
    out = run_chat(_config(assistants[0]), _settings(assistants[:1], min_turns=1, max_turns=2, rate_every=0),
                   host, tmp_path / "s", frontend=fe)
    assert out.record is not None and out.record.ended_by == "max_turns" and not out.record.terminated
    assert len(out.record.turns) == 2


# ---------------------------------------------------------------------------------------- records and reports


@pytest.mark.slow
def test_results_schema_and_board(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    from click.testing import CliRunner

    from collab_harness.cli.schema_cmd import schema
    from collab_harness.report.leaderboard import build_board, to_markdown, write_leaderboard

    settings, config, study = _settings(assistants, sessions=6, min_turns=2, rate_every=1), \
        _config(assistants[0], judge="rules"), tmp_path / "s"
    for i in range(6):
        inputs = ["one", str(3 + i), "two", str(4 + i), "/done", str(2 + i), str(10 - i), "", ""]
        assert run_chat(config, settings, host, study, frontend=human_user.ScriptedFrontend(inputs)).status == \
            "complete"
    res = json.loads((study / "results.json").read_text())
    assert res["kind"] == "chat" and res["status"] == "success" and res["n_items"] == 6 and res["complete"]
    m = res["metrics"]
    assert m["human.outcome"]["n"] == 6 and m["human.outcome"]["mean"] == pytest.approx(4.5)
    assert m["human.outcome"]["ci_method"].startswith("bootstrap") and m["human.outcome"]["ci_low"] >= 1
    assert m["human.turn"]["n"] == 6 and "interactivity" in m and m["turns"]["mean"] == 2
    assert sum(m[f"human.outcome@{lb}"]["n"] for lb in ("Alpha", "Bravo", "Charlie")) == 6

    jsonschema = pytest.importorskip("jsonschema")
    from collab_harness.records import record_schema

    for line in (study / "samples.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(line), record_schema("chat"))  # every record the engine wrote validates
    for line in journal_path(study, "session-001").read_text().splitlines():
        jsonschema.validate(json.loads(line), record_schema("chat"))  # and every journal snapshot
    jsonschema.validate(json.loads((study / "manifest.json").read_text()), record_schema("manifest"))
    jsonschema.validate(res, record_schema("results"))
    schema_out = CliRunner().invoke(schema, ["chat"])
    assert schema_out.exit_code == 0
    js = json.loads(schema_out.output)
    assert js["properties"]["kind"]["const"] == "chat" and "ratings" in js["properties"]

    board = build_board([study])
    assert board.tasks == [] and board.chat is not None
    rows = board.chat.rows_of("doc-chat")
    assert [r.label for r in rows] == ["Alpha", "Bravo", "Charlie"] and all(r.n_sessions == 2 for r in rows)
    assert all(set(r.over_turns) == {1, 2} for r in rows)
    pooled = [c for c in board.chat.correlations if c.group == "all assistants"]
    assert pooled and pooled[0].human == "human.interaction" and pooled[0].n == 6
    md = to_markdown(board)
    assert "## Human chat studies" in md and "after turn 2" in md and "Spearman ρ" in md
    files = write_leaderboard([study], tmp_path / "board", command="(test)")
    assert (tmp_path / "board" / "plots" / "chat-doc-chat.png").exists()
    data = json.loads(files.json.read_text())
    assert [r["label"] for r in data["chat"]["rows"]] == ["Alpha", "Bravo", "Charlie"]
    html = files.html.read_text()
    assert 'id="chat-board-doc-chat"' in html and 'class="chat-plot"' in html


def test_board_with_chat_and_eval_runs_side_by_side(tmp_path: Path, host: PluginHost,
                                                     assistants: list[str]) -> None:
    from collab_harness.evaluation import run_evaluation
    from collab_harness.report.leaderboard import build_board

    run_evaluation(make_config({"task": "doc-chat", "limit": 2, "assistant": assistants[0], "max_exchanges": 1,
                                "cache": False}), host, tmp_path / "eval")
    run_chat(_config(assistants[0]), _settings(assistants[:1], min_turns=1), host, tmp_path / "chat",
             frontend=human_user.ScriptedFrontend(["one", "/done", "5", "5", "", ""]))
    board = build_board([tmp_path / "eval", tmp_path / "chat"])
    assert board.tasks == ["doc-chat"] and len(board.rows) == 1
    assert board.chat is not None and board.chat.rows[0].n_sessions == 1


def test_cli_without_a_terminal_reads_plain_lines(tmp_path: Path, host: PluginHost, assistants: list[str]) -> None:
    """No terminal (a pipe): plain lines, a trailing backslash continues the message; the CLI prints no names."""
    from click.testing import CliRunner

    from collab_harness.cli._common import State
    from collab_harness.cli.chat_cmd import chat

    st = State(debug=False, strict=False, block=[])
    st._host = host
    study = tmp_path / "s"
    args = ["--task", "doc-chat", "--assistants", f"Alpha={assistants[0]},Bravo={assistants[1]}", "--blind",
            "--out", str(study), "--min-turns", "2", "--rate-every", "2", "--no-feedback", "--no-cache"]
    lines = ["first line\\", "second line", "another", "8", "/done", "7", "6"]
    r = CliRunner().invoke(chat, args, input="\n".join(lines) + "\n", obj=st)
    assert r.exit_code == 0, (r.output, r.exception)
    assert "Session session-001 is saved" in r.output and "(1 of 2 sessions finished)" in r.output
    for secret in ("Alpha", "Bravo", *assistants):
        assert secret not in r.output
    rec = read_records(study / "samples.jsonl").records[0]
    assert isinstance(rec, ChatRecord) and rec.frontend == "terminal (plain)"
    assert [t.user for t in rec.turns] == ["first line\nsecond line", "another"] and rec.feedback == {}
    # The input ends mid-session in the next sitting: paused, exit 0, resumable.
    r2 = CliRunner().invoke(chat, args, input="hello\n", obj=st)
    assert r2.exit_code == 0 and "session-002 is paused" in r2.output
    bad = CliRunner().invoke(chat, [*args[:2], "--assistants", "nonsense", "--out", str(tmp_path / "x")], obj=st)
    assert isinstance(bad.exception, ConfigError) and "provider/name" in str(bad.exception)

"""``collab-harness chat``: a person plays the user against an assistant, with the paper's user-study protocol.

``--out`` is a study directory: the first sitting creates it (``--sessions`` planned sessions, assistants assigned
by seeded permuted blocks), every later sitting with the same command runs the next session — an interrupted one
first, resumed where it stopped. See :mod:`collab_harness.chat` for the protocol, the journal and the records.
With ``--blind`` the person never sees which assistant they talk to; nothing this command prints names it.
"""

from __future__ import annotations

from typing import Any

import click

from ._common import build_config, env, state


@click.command("chat")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=env("config"),
              help="YAML run config (task, judge, metrics ...); flags win over it.")
@click.option("--task", envvar=env("task"), help="Task name (doc-chat, math-chat, code-chat, ...).")
@click.option("--assistants", envvar=env("assistants"),
              help="Comma-separated assistants, each [LABEL=]MODEL[+proactive] (e.g. "
                   "base=local/smollm2,proactive=local/smollm2+proactive); default: --assistant.")
@click.option("--assistant", envvar=env("assistant"), help="One assistant model (default local/smollm2).")
@click.option("--blind/--no-blind", default=False, envvar=env("blind"),
              help="Never show the person which assistant they talk to.")
@click.option("--out", required=True, envvar=env("out"), help="Study directory (created by the first sitting).")
@click.option("--sessions", type=int, envvar=env("sessions"),
              help="Planned sessions of the study (default: one per assistant).")
@click.option("--session", "session_id", envvar=env("session"),
              help="Run (or resume) this session instead of the next one.")
@click.option("--example", envvar=env("example"), help="Every session works on this example id.")
@click.option("--min-turns", type=int, envvar=env("min_turns"), help="Turns before /done is accepted (8).")
@click.option("--rate-every", type=int, envvar=env("rate_every"),
              help="Rate the interaction after every K-th turn (3; 0 = never).")
@click.option("--max-turns", type=int, envvar=env("max_turns"), help="End the conversation after N turns.")
@click.option("--feedback/--no-feedback", default=True, envvar=env("feedback"),
              help="Ask for optional free-text strengths and weaknesses at the end.")
@click.option("--source", type=click.Choice(["auto", "hub", "local", "sample"]), envvar=env("source"),
              help="Where the task's data comes from.")
@click.option("--data", envvar=env("data"), type=click.Path(), help="A local data file for the task.")
@click.option("--split", envvar=env("split"), help="Split to draw examples from (default: test).")
@click.option("--limit", type=int, envvar=env("limit"), help="Draw examples from N of the split, chosen by --seed.")
@click.option("--seed", type=int, envvar=env("seed"), help="Study seed: assignment and sampling (default 0).")
@click.option("--assistant-system-prompt", envvar=env("assistant_system_prompt"),
              help="System prompt of every assistant.")
@click.option("--judge", envvar=env("judge"), help="Model for LLM judges and extraction, or 'rules' (default).")
@click.option("--judge-api-base", envvar=env("judge_api_base"), help="Endpoint(s) of the judge model.")
@click.option("--metrics", envvar=env("metrics"), help="Comma-separated metrics/judges (default: the task's).")
@click.option("--weights", envvar=env("weights"), help="Weights, e.g. bleu=1,interactivity=0.5.")
@click.option("--max-tokens", type=int, envvar=env("max_tokens"), help="Max tokens per assistant reply.")
@click.option("--temperature", type=float, envvar=env("temperature"), help="Assistant sampling temperature (0).")
@click.option("--cache/--no-cache", default=None, envvar=env("cache"), help="Use the persistent model-call cache.")
@click.option("--timeout", type=float, envvar=env("timeout"), help="Seconds per model-call attempt.")
@click.option("--user", envvar=env("user"), help="The person's simulator (default: the one installed simulator "
              "played by a person, human-user).")
@click.option("--allow-changed", is_flag=True, envvar=env("allow_changed"),
              help="Continue the study although the harness, a component or a prompt changed (recorded).")
def chat(config_path: str | None, assistants: str | None, blind: bool, out: str, sessions: int | None,
         session_id: str | None, example: str | None, min_turns: int | None, rate_every: int | None,
         max_turns: int | None, feedback: bool, allow_changed: bool, **opts: Any) -> None:
    """A person plays the user: a terminal chat with an assistant (one session per sitting), rated every K turns and
    at the end; the conversation is also scored by the task's metrics and judges."""
    from ..chat import AssistantSpec, ChatProtocol, ChatSettings, run_chat
    from ..errors import CollabHarnessError, ConfigError

    specs = [AssistantSpec.parse(a) for a in (assistants or "").split(",") if a.strip()]
    if not specs:
        specs = [AssistantSpec.parse(opts.get("assistant") or "local/smollm2")]
    opts["assistant"] = specs[0].model
    if not opts.get("user"):
        # The simulator a person plays, found by its capability (the core names no plugin).
        host = state().host
        people = [n for n in host.registry.names("simulator")
                  if getattr(host.registry.get("simulator", n).cls, "played_by_person", False)]
        if len(people) != 1:
            raise ConfigError(f"{len(people)} installed simulators are played by a person "
                              f"({', '.join(people) or 'none'}); name one with --user")
        opts["user"] = people[0]
    config = build_config(config_path, opts)
    proto: dict[str, Any] = {k: v for k, v in (("min_turns", min_turns), ("rate_every", rate_every),
                                                ("max_turns", max_turns)) if v is not None}
    if not feedback:
        proto["feedback_questions"] = {}
    try:
        settings = ChatSettings(assistants=specs, blind=blind, sessions=sessions or len(specs), example=example,
                                protocol=ChatProtocol(**proto))
    except ValueError as e:
        raise ConfigError(f"invalid chat settings: {e}".replace("\n", " ")) from None
    outcome = run_chat(config, settings, state().host, out, allow_changed=allow_changed)
    n = len(outcome.states)
    done = outcome.count("complete") + outcome.count("failed")
    if outcome.status == "nothing to do":
        click.echo(f"All {n} sessions of the study in {out} are finished; nothing to do.")
        return
    if outcome.status == "paused":
        click.echo(f"Session {outcome.session_id} is paused and saved in {out}; run the same command to resume it.")
        return
    click.echo(f"Session {outcome.session_id} is saved in {out} ({done} of {n} sessions finished).")
    rec = outcome.record
    if rec is not None and rec.errors:
        by = ", ".join(sorted({e.component for e in rec.errors}))
        raise CollabHarnessError(f"the session's automatic scoring had failures ({by}); see {out}/samples.jsonl")

"""``--dry-run``: the model calls a run would make, per component, from the cost model (SPEC §2), and what they would
cost where litellm knows the model's price. Nothing is called, nothing is written.

Counts are upper bounds: every conversation is assumed to run to its last exchange (a user who ends early saves the
rest), every structured call to succeed at its first attempt (each failed validation adds one call, up to the
component's ``max_attempts``; the bound with retries is shown too). Token estimates for prices: the prompt grows by
one exchange per turn (``max_tokens`` for each assistant reply plus as much again for the user's), starting from
the example's prompt length; completions are ``max_tokens`` long.

- evaluation, per example: W = ``max_exchanges`` assistant replies; the same number of user turns when the user is a
  model; one call per LLM judge; one extraction when an artefact metric is scored and the judge is a model.
- MR, per row: S futures × (W assistant + W user calls) + S × (LLM judges + 1 extraction per artefact type);
  W = 0 scores h + r once.
- synthesis, per example and turn: N candidates, then MR of each (the formula above, S and W of the run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import OFFLINE_JUDGE, BuiltRun

__all__ = ["CallPlan", "plan_eval", "plan_mr", "plan_synth"]


@dataclass
class ComponentPlan:
    model: str
    calls: int = 0
    calls_with_retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class CallPlan:
    kind: str
    items: int
    components: dict[str, ComponentPlan] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, component: str, model: str, calls: int, *, prompt: int, completion: int, attempts: int = 1) -> None:
        c = self.components.setdefault(component, ComponentPlan(model=model))
        c.calls += calls
        c.calls_with_retries += calls * attempts
        c.prompt_tokens += calls * prompt
        c.completion_tokens += calls * completion

    def cost(self) -> tuple[dict[str, float | None], float | None]:
        """Estimated cost per component (None where litellm has no price; local/scripted models cost 0)."""
        out: dict[str, float | None] = {}
        for name, c in self.components.items():
            out[name] = _price(c.model, c.prompt_tokens, c.completion_tokens)
        known = [v for v in out.values() if v is not None]
        total = sum(known) if len(known) == len(out) else None
        return out, total

    def lines(self) -> list[str]:
        costs, total = self.cost()
        lines = [f"dry run ({self.kind}): {self.items} item(s); no model is called, nothing is written"]
        for name, c in sorted(self.components.items()):
            cost = costs[name]
            money = "no price known" if cost is None else f"~${cost:.4f}"
            retries = f" (<= {c.calls_with_retries} with retries)" if c.calls_with_retries != c.calls else ""
            lines.append(f"  {name:<22} {c.model:<40} <= {c.calls} calls{retries}, ~{c.prompt_tokens:,} prompt + "
                         f"{c.completion_tokens:,} completion tokens, {money}")
        total_calls = sum(c.calls for c in self.components.values())
        lines.append(f"  total: <= {total_calls} calls, "
                     + ("estimated cost unknown (some model has no price)" if total is None else f"~${total:.4f}"))
        lines += [f"  note: {n}" for n in self.notes]
        return lines


def _price(model: str, prompt: int, completion: int) -> float | None:
    provider = model.partition("/")[0]
    if provider in ("local", "scripted"):
        return 0.0
    try:
        from .models._litellm import import_litellm

        litellm = import_litellm()
        p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt, completion_tokens=completion)
        return float(p) + float(c)
    except Exception:  # litellm has no price for it (local servers, retired or new models)
        return None


def _judges(built: BuiltRun) -> list[tuple[str, str, int, int]]:
    """(component label, model, max tokens, max attempts) of every scorer that calls a model."""
    out = []
    for s in built.scorers:
        opts: Mapping[str, Any] = s.options.model_dump()
        model = opts.get("model")
        if s.kind == "judge" and model and model != OFFLINE_JUDGE:
            out.append((f"judge:{s.name}", str(model), int(opts.get("max_tokens", 512)),
                        int(opts.get("max_attempts", 1))))
    return out


def _user(built: BuiltRun) -> tuple[str, int] | None:
    opts = built.simulator.options.model_dump()
    model = opts.get("model")
    return (str(model), int(opts.get("max_attempts", 1) or 1)) if model else None


def _wants_extraction(built: BuiltRun) -> bool:
    return (built.config.judge != OFFLINE_JUDGE and built.task.artefact_type is not None
            and any(s.needs_artefact for s in built.scorers))


def _conversation(plan: CallPlan, built: BuiltRun, n: int, exchanges: int, prompt0: int, *,
                  assistant_tokens: int, start_turns: int = 0) -> None:
    """``n`` simulated conversations of ``exchanges`` exchanges each, continuing ``start_turns`` earlier turns."""
    if exchanges <= 0 or n <= 0:
        return
    per_turn = 2 * assistant_tokens
    prompt = sum(prompt0 + (start_turns + k) * per_turn for k in range(exchanges)) // exchanges
    plan.add("assistant", built.config.assistant, n * exchanges, prompt=prompt, completion=assistant_tokens)
    user = _user(built)
    if user is not None:
        plan.add(f"user:{built.simulator.name}", user[0], n * exchanges, prompt=prompt + 200,
                 completion=assistant_tokens, attempts=user[1])


def _scoring(plan: CallPlan, built: BuiltRun, n: int, transcript_tokens: int) -> None:
    for label, model, max_tokens, attempts in _judges(built):
        plan.add(label, model, n, prompt=transcript_tokens + 300, completion=max_tokens, attempts=attempts)
    if _wants_extraction(built):
        plan.add("extract", built.config.judge, n, prompt=transcript_tokens + 200,
                 completion=built.config.mr.extraction_max_tokens)


def plan_eval(built: BuiltRun, n_items: int, prompt_tokens: int = 200) -> CallPlan:
    cfg = built.config
    plan = CallPlan("eval", n_items)
    _conversation(plan, built, n_items, cfg.max_exchanges, prompt_tokens, assistant_tokens=cfg.max_tokens)
    _scoring(plan, built, n_items, prompt_tokens + cfg.max_exchanges * 2 * cfg.max_tokens)
    return plan


def plan_mr(built: BuiltRun, n_items: int, history_turns: int = 1, prompt_tokens: int = 200) -> CallPlan:
    cfg = built.config
    s = 1 if cfg.mr.window == 0 else cfg.mr.samples
    plan = CallPlan("mr", n_items)
    _conversation(plan, built, n_items * s, cfg.mr.window, prompt_tokens, assistant_tokens=cfg.max_tokens,
                  start_turns=history_turns)
    _scoring(plan, built, n_items * s, prompt_tokens + (history_turns + cfg.mr.window) * 2 * cfg.max_tokens)
    return plan


def plan_synth(built: BuiltRun, n_items: int, *, turns: int, candidates: int, prompt_tokens: int = 200) -> CallPlan:
    """Per example and turn: N candidates, MR of each (S futures of W exchanges), plus the user's next message."""
    cfg = built.config
    s = 1 if cfg.mr.window == 0 else cfg.mr.samples
    plan = CallPlan("synth", n_items)
    user = _user(built)
    for t in range(turns):
        plan.add("candidate", cfg.assistant, n_items * candidates,
                 prompt=prompt_tokens + t * 2 * cfg.max_tokens, completion=cfg.max_tokens)
        _conversation(plan, built, n_items * candidates * s, cfg.mr.window, prompt_tokens,
                      assistant_tokens=cfg.max_tokens, start_turns=t + 1)
        _scoring(plan, built, n_items * candidates * s,
                 prompt_tokens + (t + 1 + cfg.mr.window) * 2 * cfg.max_tokens)
    if user is not None:
        plan.add(f"user:{built.simulator.name}", user[0], n_items, prompt=prompt_tokens, completion=cfg.max_tokens,
                 attempts=user[1])
        plan.notes.append("the next user message of a turn comes from the chosen candidate's futures (no extra call)")
    return plan

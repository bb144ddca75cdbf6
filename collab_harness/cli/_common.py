"""Shared CLI plumbing: the plugin host of this invocation, JSON output, and option env vars."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import ConfigError
from ..plugins import PluginHost, build_plugin_manager


class State:
    """Per-invocation state held on the click context."""

    def __init__(self, *, debug: bool, strict: bool, block: list[str]) -> None:
        self.debug = debug
        self.strict = strict
        self.block = block
        self._host: PluginHost | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = build_plugin_manager(strict=self.strict or None, block=self.block)
        return self._host


def state() -> State:
    obj = click.get_current_context().find_object(State)
    assert obj is not None, "CLI state missing"
    return obj


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def env(option: str) -> str:
    """The env var of an option: ``COLLAB_HARNESS_<OPTION>``."""
    return "COLLAB_HARNESS_" + option.upper().replace("-", "_")


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"bleu=1,interactivity=0.5"`` -> ``{"bleu": 1.0, "interactivity": 0.5}``."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, val = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--weights: expected name=value pairs separated by commas, got {part!r}")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise ConfigError(f"--weights: {val.strip()!r} is not a number (in {part.strip()!r})") from None
    return out


# ----------------------------------------------------------------------------------- shared run options

F = Any


def run_options(fn: F) -> F:
    """The options every run command (run, mr, synth) shares; each also reads ``COLLAB_HARNESS_<OPTION>``."""
    opts = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=env("config"),
                     help="YAML file with the same options; flags win over it."),
        click.option("--task", envvar=env("task"), help="Task name (doc-chat, math-chat, code-chat, abg-coqa, ...)."),
        click.option("--source", type=click.Choice(["auto", "hub", "local", "sample"]), envvar=env("source"),
                     help="Where the task's data comes from: the hub set, a local file (--data), the shipped offline "
                          "sample, or auto (local if --data, else the hub when reachable, else the sample)."),
        click.option("--data", envvar=env("data"), type=click.Path(),
                     help="A local data file (JSONL, JSON, parquet) in the task's or the hub's format."),
        click.option("--split", envvar=env("split"), help="Split to use (default: test)."),
        click.option("--limit", type=int, envvar=env("limit"), help="Use N examples, chosen by --seed."),
        click.option("--seed", type=int, envvar=env("seed"), help="Run seed (default 0)."),
        click.option("--out", envvar=env("out"), help="Run directory."),
        click.option("--resume", is_flag=True, envvar=env("resume"), help="Continue an interrupted run in --out."),
        click.option("--allow-changed", is_flag=True, envvar=env("allow_changed"),
                     help="Resume even though the harness, a component or a prompt changed (recorded)."),
        click.option("--label", envvar=env("label"), help="Board label of this run (default: from the assistant)."),
        click.option("--assistant", envvar=env("assistant"), help="Assistant model string (default local/smollm2)."),
        click.option("--assistant-system-prompt", envvar=env("assistant_system_prompt"),
                     help="System prompt given to the assistant."),
        click.option("--assistant-api-base", envvar=env("assistant_api_base"),
                     help="OpenAI-compatible endpoint(s) of the assistant (comma-separated: replicas)."),
        click.option("--user", envvar=env("user"),
                     help="Simulator name (shard-user, llm-user) or a model string played by the simulator that "
                          "plays model strings (llm-user)."),
        click.option("--user-api-base", envvar=env("user_api_base"), help="Endpoint(s) of the user model."),
        click.option("--judge", envvar=env("judge"),
                     help="Model for LLM judges and extraction, or 'rules' (default: the offline rule judge)."),
        click.option("--judge-api-base", envvar=env("judge_api_base"), help="Endpoint(s) of the judge model."),
        click.option("--metrics", envvar=env("metrics"), help="Comma-separated metrics/judges (default: the task's)."),
        click.option("--weights", envvar=env("weights"), help="Weights, e.g. bleu=1,interactivity=0.5."),
        click.option("--max-tokens", type=int, envvar=env("max_tokens"), help="Max tokens per assistant reply."),
        click.option("--concurrency", type=int, envvar=env("concurrency"), help="Items / model calls in flight."),
        click.option("--cache/--no-cache", default=None, envvar=env("cache"),
                     help="Use the persistent model-call cache."),
        click.option("--fail-on-error", type=float, envvar=env("fail_on_error"),
                     help="Stop after this many failed items (>= 1) or this proportion of them (< 1); fewer are "
                          "allowed (default: none allowed, the run goes on and exits non-zero)."),
        click.option("--retry-on-error", type=int, envvar=env("retry_on_error"),
                     help="Retry a failed item up to N times with fresh seeds (earlier failures are kept)."),
        click.option("--timeout", type=float, envvar=env("timeout"),
                     help="Seconds per model-call attempt (default 120)."),
        click.option("--sample-timeout", type=float, envvar=env("sample_timeout"),
                     help="Seconds one item may take in all (default: no budget)."),
        click.option("--local-threads", type=int, envvar=env("local_threads"),
                     help="torch threads for local models (default: torch's choice)."),
        click.option("--executor", type=click.Choice(["local", "ray"]), envvar=env("executor"),
                     help="Where sandboxed verdicts run: the local pool (default) or Ray tasks on a cluster "
                          "(extra 'ray'; see docs/SCALING.md)."),
        click.option("--ray-address", envvar=env("ray_address"),
                     help="Ray cluster of --executor ray (HOST:PORT, ray://HOST:10001, auto; default: RAY_ADDRESS, "
                          "else a cluster on this machine, else a new local one)."),
        click.option("--parity/--no-parity", default=None, envvar=env("parity"), help="Paper-parity mode."),
        click.option("--progress/--no-progress", default=True, envvar=env("progress"),
                     help="Show progress on stderr."),
        click.option("--json", "as_json", is_flag=True, envvar=env("json"), help="Print the results as JSON."),
        click.option("--dry-run", is_flag=True, envvar=env("dry_run"),
                     help="Print the planned model calls per component and their estimated cost; call nothing."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def build_config(config_path: str | None, opts: dict[str, Any], mr: dict[str, Any] | None = None) -> Any:
    """A :class:`~collab_harness.config.RunConfig` from a YAML file (optional) and flags (flags win)."""
    from ..config import load_config, make_config

    opts = dict(opts)
    task_opts = {k: v for k, v in (("source", opts.pop("source", None)), ("data", opts.pop("data", None)))
                 if v is not None}
    if opts.get("metrics") is not None:
        opts["metrics"] = [m.strip() for m in str(opts["metrics"]).split(",") if m.strip()]
    opts["weights"] = parse_weights(opts.get("weights"))
    overrides = {k: v for k, v in opts.items() if v is not None}
    mr_over = {k: v for k, v in (mr or {}).items() if v is not None}
    base: Any = {}
    if config_path:
        import yaml

        try:
            with open(config_path, encoding="utf-8") as fh:
                base = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError):
            base = {}  # load_config reports it, with the file's name
        base = base if isinstance(base, dict) else {}
    if mr_over:
        file_mr: dict[str, Any] = base["mr"] if isinstance(base.get("mr"), dict) else {}
        overrides["mr"] = {**file_mr, **mr_over}
    # The task: --task names it, --source/--data set its options; options from the file are kept when the file
    # names the same task (a flag must not silently drop them).
    file_task = base.get("task")
    file_ref: dict[str, Any] = ({"name": file_task} if isinstance(file_task, str)
                                else dict(file_task) if isinstance(file_task, dict) else {})
    name = overrides.get("task") or file_ref.get("name")
    if name is None:
        raise click.UsageError("--task is required (or --config run.yaml)")
    if "task" in overrides or task_opts:
        keep = dict(file_ref.get("options") or {}) if file_ref.get("name") == name else {}
        overrides["task"] = {"name": name, "options": {**keep, **task_opts}}
    if config_path:
        return load_config(config_path, **overrides)
    return make_config(overrides, source="command-line options")


def summary_lines(results: Any) -> list[str]:
    """Human summary of a :class:`~collab_harness.records.Results`: metric means with their intervals, failures."""
    lines = []
    r = results.reward
    if r.n or r.n_failed:
        label = "MR" if results.kind == "mr" else "reward"
        ci = f" [{r.ci_low:.4g}, {r.ci_high:.4g}]" if r.ci_low is not None and r.ci_high is not None else ""
        lines.append(f"  {label}: {r.mean:.4g}{ci} (n={r.n}, {r.n_failed} without)" if r.mean is not None
                     else f"  {label}: none ({r.n_failed} without)")
    for name, m in results.metrics.items():
        if "." in name:
            continue
        if m.mean is None:
            if m.n_failed:
                lines.append(f"  {name}: all failed ({m.n_failed})")
            continue
        ci = f" [{m.ci_low:.4g}, {m.ci_high:.4g}]" if m.ci_low is not None and m.ci_high is not None else ""
        failed = f", {m.n_failed} failed" if m.n_failed else ""
        env_ = f" ({m.n_environment} by the environment)" if m.n_environment else ""
        lines.append(f"  {name}: {m.mean:.4g}{ci} (n={m.n}{failed}{env_})")
    if results.errors_by_component:
        lines.append("  failures: " + ", ".join(f"{k}={v}" for k, v in results.errors_by_component.items()))
    return lines


def finish_run(outcome: Any, as_json: bool, what: str = "samples") -> None:
    """Print the outcome; exit non-zero unless the run's status is success."""
    from ..errors import CollabHarnessError

    res = outcome.results
    if as_json:
        echo_json({"run_dir": str(outcome.run_dir), **res.model_dump(mode="json")})
    else:
        click.echo(f"run directory: {outcome.run_dir}  ({res.n_samples}/{res.n_items} {what}, {outcome.n_new} new, "
                   f"{outcome.n_skipped} resumed; status {outcome.status})")
        for line in summary_lines(res):
            click.echo(line)
    if outcome.status != "success":
        by = ", ".join(f"{k} {v}" for k, v in res.errors_by_component.items()) or "see the records"
        raise CollabHarnessError(f"{res.n_failed} of {res.n_samples} {what} failed ({by}); status "
                                 f"{outcome.status}; the failures are in {outcome.run_dir}/samples.jsonl")

"""Entry point of the ``collab-harness`` command.

Expected errors (:class:`~collab_harness.errors.CollabHarnessError`, click usage errors) print one line and exit
non-zero; a traceback only with ``--debug`` or ``COLLAB_HARNESS_RAISE_ERRORS=1``. Subcommands are imported lazily
so that ``--help`` stays fast and never imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import CollabHarnessError
from ..scrub import scrub_text
from ._common import State, env

# command name -> "module:function"; imported only when the command runs (or help lists it).
COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": ("collab_harness.cli.plugins_cmd:plugins", "Show plugins, distributions, components, load errors."),
    "list": ("collab_harness.cli.list_cmd:list_", "List components: tasks, metrics, judges, simulators, trainers."),
    "validate": ("collab_harness.cli.validate_cmd:validate", "Build every component of a run config; no model call."),
    "run": ("collab_harness.cli.run_cmd:run", "Simulate and score conversations on a task's test split."),
    "mr": ("collab_harness.cli.mr_cmd:mr", "Score candidate responses with the multiturn-aware reward."),
    "synth": ("collab_harness.cli.synth_cmd:synth", "Generate multi-turn training data ranked by MR."),
    "export": ("collab_harness.cli.export_cmd:export", "Export SFT / DPO / RL-prompt datasets from a synth run."),
    "train": ("collab_harness.cli.train_cmd:train", "Train a model with a trainer backend."),
    "leaderboard": ("collab_harness.cli.leaderboard_cmd:leaderboard", "Build a leaderboard from run directories."),
    "view": ("collab_harness.cli.view_cmd:view", "Write a static HTML conversation viewer for a run."),
    "schema": ("collab_harness.cli.schema_cmd:schema", "Print the JSON Schema of a run record kind."),
    "doctor": ("collab_harness.cli.doctor_cmd:doctor", "List what the environment lacks for each task's examples."),
    "chat": ("collab_harness.cli.chat_cmd:chat",
             "A person plays the user: the user-study protocol (ratings every K turns, time, blind assistants)."),
}


def _available(name: str) -> bool:
    module = COMMANDS[name][0].split(":")[0]
    return importlib.util.find_spec(module) is not None


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in COMMANDS if _available(n)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module, _, attr = COMMANDS[cmd_name][0].partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the table, so `--help` imports no subcommand module.
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            from difflib import get_close_matches

            close = get_close_matches(name, self.list_commands(ctx), n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise click.UsageError(f"no such command {name!r}{hint} Commands: {', '.join(self.list_commands(ctx))}.")
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="collab-harness")
@click.option("--debug", is_flag=True, envvar=env("debug"), help="Show tracebacks for expected errors too.")
@click.option("--strict-plugins", is_flag=True, envvar=env("strict_plugins"),
              help="A plugin that fails to load is fatal instead of skipped.")
@click.option("--block-plugin", "block", multiple=True, metavar="NAME",
              help="Do not load this plugin (entry-point or distribution name); repeatable. "
                   "Env: COLLAB_HARNESS_BLOCK_PLUGINS (comma-separated).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, strict_plugins: bool, block: tuple[str, ...]) -> None:
    """collab-harness: train and evaluate language models as collaborators (CollabLLM)."""
    blocked = list(block) + [
        b.strip() for b in os.environ.get("COLLAB_HARNESS_BLOCK_PLUGINS", "").split(",") if b.strip()
    ]
    ctx.obj = State(debug=debug, strict=strict_plugins, block=blocked)
    from ..scrub import install_log_filter

    install_log_filter()  # provider libraries log request errors; a key they echo never reaches the terminal


def _raise_errors(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("COLLAB_HARNESS_RAISE_ERRORS", "").lower() in {"1", "true", "yes"} \
        or os.environ.get("COLLAB_HARNESS_DEBUG", "").lower() in {"1", "true", "yes"}


def main(argv: list[str] | None = None) -> Any:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _raise_errors(args)
    try:
        return cli.main(args=args, prog_name="collab-harness", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        if debug:
            raise
        click.echo(scrub_text(f"error: {e.format_message()}".replace("\n", " ")), err=True)
        sys.exit(e.exit_code)
    except CollabHarnessError as e:
        if debug:
            raise
        click.echo(scrub_text(f"error: {e}".replace("\n", " ")), err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()

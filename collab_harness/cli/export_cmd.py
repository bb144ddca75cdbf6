"""``collab-harness export sft|dpo|rl SYNTH_DIR --out PATH``: datasets TRL trains on, from a synthesis run."""

from __future__ import annotations

import click

from ._common import env, parse_weights


@click.command("export")
@click.argument("kind", type=click.Choice(["sft", "dpo", "rl"]))
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, envvar=env("export_out"), help="Output directory.")
@click.option("--format", "fmt", type=click.Choice(["disk", "parquet", "jsonl"]), default="disk", show_default=True,
              help="datasets save_to_disk, or one parquet / JSONL file per split.")
@click.option("--min-gap", type=float, default=0.02, show_default=True,
              help="dpo: the least MR gap between the chosen and the rejected candidate.")
@click.option("--min-metric", help="sft: keep conversations whose final per-metric MR is at least this, e.g. "
                                   "math_accuracy=0.5 (comma-separated for several).")
@click.option("--eval-fraction", type=float, default=0.0, show_default=True,
              help="Share of the examples in the eval split (seeded by example id; all turns of a conversation "
                   "stay together).")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the train/eval split.")
@click.option("--push-to-hub", "repo", help="Also upload to this Hub dataset repo (private unless --public; token "
                                            "from HF_TOKEN only).")
@click.option("--public", is_flag=True, help="With --push-to-hub: a public repo.")
def export(kind: str, run_dir: str, out: str, fmt: str, min_gap: float, min_metric: str | None,
           eval_fraction: float, split_seed: int, repo: str | None, public: bool) -> None:
    """Export SFT conversations, DPO pairs or RL prompts from a synth run directory."""
    from ..export import export_run

    res = export_run(run_dir, kind, out, fmt=fmt, min_gap=min_gap,  # type: ignore[arg-type]
                     min_metric=parse_weights(min_metric) if min_metric else None, eval_fraction=eval_fraction,
                     split_seed=split_seed, push_to_hub=repo, public=public)
    counts = ", ".join(f"{s} {n}" for s, n in res.counts.items() if n)
    dropped = ", ".join(f"{k} {v}" for k, v in res.dropped.items() if v) or "none"
    click.echo(f"{kind} export in {res.out} ({fmt}): {counts} rows; dropped: {dropped}; card: {res.out / 'README.md'}")

"""Leaderboard (rows by run label, flags for differing settings, failures, intervals, paired comparisons) and the
conversation viewer (reference, artefact, rationale, models, seeds, failures, LaTeX), from real runs on scripted
models."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evaluate_scripts import assistant_reply, judge_reply

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.evaluation import run_evaluation as evaluate
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.report.katex import katex_assets
from collab_harness.report.leaderboard import LeaderboardError, board_json, build_board, to_markdown, write_leaderboard
from collab_harness.report.runs import derive_label, load_run
from collab_harness.report.viewer import render_viewer, segments

SYSTEM_PROMPT = "You are a proactive collaborator: ask before you answer."
SCRIPTS = ("rp-asks", "rp-oracle", "rp-wrong", "rp-judge", "rp-badjudge", "rp-flakyjudge")


def _wrong(messages: list[dict[str, str]], params: object, i: int) -> str:
    return "Sure, here it is. \\boxed{-987654}"


def _oracle_script(host: Any) -> Any:
    """Answers each math-chat sample problem correctly once the user has stated it (a test double that knows the
    shipped sample's answers), so a paired comparison has a real difference to find."""
    task = host.registry.create("task", "math-chat", {"source": "sample"})
    known = [(ex.metadata["shards"][1], ex.reference) for ex in task.load("test")]

    def reply(messages: list[dict[str, str]], params: object, i: int) -> str:
        told = " ".join(m["content"] for m in messages if m["role"] == "user")
        for shard, ref in known:
            if shard in told:
                return f"The answer is $\\boxed{{{ref}}}$."
        return "Which problem is it exactly?"

    return reply


def _flaky_judge() -> Any:
    """Malformed verdicts for the first three judge calls (all the judge's own attempts on the first item of a
    sequential run), then good ones: that item fails once and passes on the engine's retry."""
    calls = [0]

    def reply(messages: list[dict[str, str]], params: object, i: int) -> str:
        system = str(messages[0].get("content", ""))
        if "extract" in system.lower():
            return judge_reply(messages, params, i)
        calls[0] += 1
        return "not json" if calls[0] <= 3 else judge_reply(messages, params, i)

    return reply


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """math-chat (4 examples): one assistant plain, with a system prompt and with 3 exchanges; an oracle and an
    always-wrong assistant (labelled); doc-chat for the plain assistant; a run whose judge always fails; a run
    whose judge fails once per item and passes on retry."""
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLAB_HARNESS_CACHE_DIR", str(root / "cache"))
    host = build_plugin_manager(strict=False, block=[])
    asks = register_script("rp-asks", assistant_reply)
    oracle = register_script("rp-oracle", _oracle_script(host))
    wrong = register_script("rp-wrong", _wrong)
    j = register_script("rp-judge", judge_reply)
    bad_j = register_script("rp-badjudge", "I refuse to answer in JSON.")
    flaky_j = register_script("rp-flakyjudge", _flaky_judge())
    base = {"task": "math-chat", "limit": 4, "assistant": asks, "judge": j, "max_exchanges": 2}
    plan = {
        "asks": base,
        "asks-system": {**base, "assistant_system_prompt": SYSTEM_PROMPT},
        "asks-3x": {**base, "max_exchanges": 3},
        "oracle": {**base, "assistant": oracle, "label": "oracle"},
        "wrong": {**base, "assistant": wrong, "label": "wrong"},
        "doc": {**base, "task": "doc-chat", "limit": 3},
        "asks-sim": {**base, "user": {"name": "shard-user", "options": {"reveal_when_asked": 1}}},
        "bad": {**base, "limit": 2, "judge": bad_j, "max_exchanges": 1},
        "flaky": {**base, "limit": 2, "judge": flaky_j, "max_exchanges": 1, "retry_on_error": 1,
                  "concurrency": 1, "label": "flaky"},
    }
    out: dict[str, Path] = {}
    try:
        for name, cfg in plan.items():
            evaluate(make_config(cfg), host, root / name)
            out[name] = root / name
        yield out
    finally:
        for n in SCRIPTS:
            unregister_script(n)
        mp.undo()


@pytest.fixture(scope="module")
def host() -> Any:
    return build_plugin_manager(strict=False, block=[])


def _math_runs(runs: dict[str, Path]) -> list[Path]:
    return [runs[k] for k in ("asks", "asks-system", "asks-3x", "oracle", "wrong", "doc")]


def _row(board: Any, label: str) -> Any:
    return next(r for r in board.rows if r.label == label)


def _disp(board: Any, run_dir: Path) -> str:
    """The display name of the row that holds ``run_dir``."""
    return next(r.display for r in board.rows if any(run.path == str(run_dir) for run in r.runs.values()))


def test_labels_make_variants_of_one_assistant_separate_rows(runs: dict[str, Path], host: Any) -> None:
    board = build_board(_math_runs(runs), host=host)
    short = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:8]
    labels = [r.label for r in board.rows]
    # The plain and system-prompt variants are two rows (not refused); 3 exchanges is a third row of the same label.
    assert labels == ["scripted/rp-asks", f"scripted/rp-asks + system:{short}", "scripted/rp-asks", "oracle",
                      "wrong"]
    plain, variant = board.rows[0], board.rows[1]
    assert set(plain.runs) == {"math-chat", "doc-chat"} and set(variant.runs) == {"math-chat"}
    assert not plain.label_given and _row(board, "oracle").label_given
    # Rows sharing a label are told apart by the setting that differs.
    assert [board.rows[0].display, board.rows[2].display] == ["scripted/rp-asks [2 exchanges]",
                                                              "scripted/rp-asks [3 exchanges]"]
    assert derive_label({"assistant": "local/smollm2"}) == "local/smollm2"
    assert derive_label({"assistant": "local/smollm2", "assistant_system_prompt": SYSTEM_PROMPT}) == \
        f"local/smollm2 + system:{short}"
    # Two runs of one label, task and setting are still ambiguous: refused, naming --label.
    with pytest.raises(LeaderboardError, match="give one of them another --label"):
        build_board([runs["asks"], runs["asks"]], host=host)


def test_settings_that_differ_are_flagged_per_task(runs: dict[str, Path], host: Any) -> None:
    board = build_board(_math_runs(runs), host=host)
    diffs = {d.setting: d for d in board.flags["math-chat"]}
    assert set(diffs) == {"exchanges"}  # same examples, simulator, judge, tokenizer, parity
    values = dict(diffs["exchanges"].values)
    assert values["3 exchanges"] == ["scripted/rp-asks [3 exchanges]"]
    assert len(values["2 exchanges"]) == 4
    assert board.flags["doc-chat"] == []
    three = board.rows[2].cells["math-chat"]
    assert three["task_metric"].tags == ("3 exchanges",) and three["interactivity"].flagged
    assert not board.rows[0].cells["doc-chat"]["task_metric"].flagged
    md = to_markdown(board)
    assert "math-chat ⚑: math_accuracy ↑" in md and "doc-chat: bleu ↑" in md
    assert "⚑ **math-chat**: exchanges differs: 2 exchanges (scripted/rp-asks [2 exchanges], " in md
    assert "; 3 exchanges (scripted/rp-asks [3 exchanges])" in md


def test_different_tokenizers_and_example_sets_are_flagged(runs: dict[str, Path], host: Any,
                                                           tmp_path: Path) -> None:
    # A copy of a run whose token counts came from another tokenizer (as a run with `tokenizer: o200k_base` records).
    other = tmp_path / "other-tokenizer"
    shutil.copytree(runs["oracle"], other)
    lines = []
    for line in (other / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec["scores"]["token_amount"]["details"]["tokenizer"] = "o200k_base"
        lines.append(json.dumps(rec))
    (other / "samples.jsonl").write_text("\n".join(lines) + "\n")
    board = build_board([runs["asks"], other, runs["bad"]], host=host)
    flags = {d.setting: dict(d.values) for d in board.flags["math-chat"]}
    asks, bad = _disp(board, runs["asks"]), _disp(board, runs["bad"])
    assert flags["tokenizer"] == {"cl100k_base": [asks, bad], "o200k_base": ["oracle"]}
    assert set(flags) == {"tokenizer", "examples", "exchanges", "judge"}
    k = _row(board, "oracle").cells["math-chat"]["k_tokens"]
    assert k.tags == ("tokenizer: o200k_base",) and "⚑ tokenizer: o200k_base" in k.text()
    assert any("4 examples" in v or "×4" in v for v in flags["examples"])


def test_settings_differing_only_in_details_are_spelled_out(runs: dict[str, Path], host: Any) -> None:
    board = build_board([runs["asks"], runs["asks-sim"]], host=host)
    # Same label and the same simulator name, different simulator options: two rows, numbered, and a note that
    # shows the options (the names alone would read as equal).
    assert [r.display for r in board.rows] == ["scripted/rp-asks [#1]", "scripted/rp-asks [#2]"]
    (diff,) = board.flags["math-chat"]
    assert diff.setting == "simulator"
    assert [v for v, _ in diff.values] == [
        'shard-user options {"min_answer_words": 5, "not_asked_every": 2, "reveal_when_asked": 2, '
        '"reveal_when_not_asked": 1, "termination_signal": null}',
        'shard-user options {"min_answer_words": 5, "not_asked_every": 2, "reveal_when_asked": 1, '
        '"reveal_when_not_asked": 1, "termination_signal": null}']
    assert board.rows[1].cells["math-chat"]["task_metric"].tags == (f"simulator: {diff.values[1][0]}",)
    (cmp,) = board.comparisons
    assert cmp.settings_differ == ("simulator",)


def test_failed_metric_shows_its_failure_count_never_a_value(runs: dict[str, Path], host: Any,
                                                            tmp_path: Path) -> None:
    files = write_leaderboard([runs["asks"], runs["bad"]], tmp_path / "board", host=host)
    board = json.loads(files.json.read_text())
    bad = next(r for r in board["rows"] if r["runs"]["math-chat"]["path"] == str(runs["bad"]))
    cell = bad["cells"]["math-chat"]["interactivity"]
    assert cell["state"] == "failed" and cell["mean"] is None and cell["n_failed"] == 2
    assert cell["text"].startswith("failed (2)")
    # The run finished with status error: placed, marked with its failure counts.
    run = bad["runs"]["math-chat"]
    assert run["status"] == "error" and "2 of 2 items failed" in run["problems"]
    assert run["failures_by_component"] == {"judge:interactivity": 2}
    md = files.markdown.read_text()
    assert "failed (2)" in md and "⚠ run status error; 2 of 2 items failed" in md and "–" not in md
    html = files.html.read_text()
    assert '<span class="failed">failed (2)</span>' in html
    assert f"no bar for {bad['display']}: failed (2) (every sample of this metric failed)" in html


def test_cells_show_asymmetric_intervals_with_their_method(runs: dict[str, Path], host: Any) -> None:
    board = build_board(_math_runs(runs), host=host)
    wrong = _row(board, "wrong").cells["math-chat"]["task_metric"]
    res = json.loads((runs["wrong"] / "results.json").read_text())["metrics"]["math_accuracy"]
    assert wrong.mean == 0.0 and res["ci_high"] > 0.3  # 0/4: Wilson's upper bound is far from 0
    assert (wrong.ci_low, wrong.ci_high, wrong.method_key) == (res["ci_low"], res["ci_high"], "W")
    assert wrong.text().startswith(f"0.000 [0.000, {res['ci_high']:.3f}] W (n=4)")
    k = _row(board, "oracle").cells["math-chat"]["k_tokens"]
    ta = json.loads((runs["oracle"] / "results.json").read_text())["metrics"]["token_amount"]
    assert k.ci_high == pytest.approx(ta["ci_high"] / 1000) and k.method_key == "t"
    assert _row(board, "oracle").cells["math-chat"]["interactivity"].method_key == "B"
    md = to_markdown(board)
    assert "±" not in md and "**W**: Wilson" in md and "**B**: percentile bootstrap" in md


def test_paired_comparisons_make_or_refuse_the_claim(runs: dict[str, Path], host: Any) -> None:
    board = build_board([*_math_runs(runs), runs["bad"]], host=host)
    res = json.loads((runs["oracle"] / "results.json").read_text())["metrics"]["math_accuracy"]
    assert res["mean"] == 1.0 and res["n"] == 4  # the oracle answered every problem
    by = {(c.task, c.a, c.b): c for c in board.comparisons}
    asks, system, three, bad = (_disp(board, runs[k]) for k in ("asks", "asks-system", "asks-3x", "bad"))
    win = by[("math-chat", "oracle", "wrong")]
    assert (win.verdict, win.n_pairs, win.mean_diff) == ("a>b", 4, 1.0) and win.ci_low is not None and win.ci_low > 0
    assert "oracle vs wrong on math-chat (math_accuracy, 4 paired examples): difference +1.000" in win.text()
    assert win.text().endswith(": oracle > wrong (higher is better)") and "tango" in str(win.ci_method)
    same = by[("math-chat", asks, system)]
    assert system == f"scripted/rp-asks + system:{hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:8]}"
    assert same.outcome == "no difference shown" and same.ci_low is not None and same.ci_high is not None
    assert same.ci_low < 0 < same.ci_high
    exch = by[("math-chat", asks, three)]
    assert exch.settings_differ == ("exchanges",) and "settings differ (exchanges)" in exch.text()
    other = by[("math-chat", asks, bad)]
    assert other.refused == "different example sets" and "not compared" in other.text()
    # Only rows with a run of the task are compared; nothing is compared across tasks.
    assert all(c.task == "math-chat" for c in board.comparisons)
    js = board_json(board)
    assert any(c["outcome"] == "oracle > wrong" for c in js["comparisons"])


def _schema1(src: Path, dst: Path) -> None:
    """Write ``src`` (a schema-2 run) as the schema-1 files collab-harness 0.1.0 wrote."""
    man = json.loads((src / "manifest.json").read_text())
    comps = [{k: v for k, v in c.items() if k not in ("role", "value_kind", "value_range", "higher_is_better")}
             for c in man["components"]]
    old = {
        "schema_version": 1, "kind": "evaluation", "created_at": man["created_at"], "harness_version": "0.1.0",
        "python": man["python"], "platform": man["platform"], "plugins": man["plugins"],
        "config": {k: v for k, v in man["config"].items() if k not in ("label", "mr", "synth")},
        "task": {"name": man["task"]["name"], "split": "test", "task_metric": man["task"]["task_metric"],
                 "n_examples": len(man["item_ids"]), "example_ids": man["item_ids"], "data_source": "sample"},
        "models": {"assistant": man["models"]["assistant"], "user": None, "judge": man["models"]["judge"]},
        "simulator": next(c for c in comps if c["kind"] == "simulator"),
        "judges": [c for c in comps if c["kind"] == "judge"], "metrics": man["metrics"], "weights": man["weights"],
        "components": comps, "prompt_hashes": man["prompt_hashes"], "seeds": man["seeds"], "parity": False,
    }
    dst.mkdir(parents=True)
    (dst / "manifest.json").write_text(json.dumps(old))
    lines = []
    for line in (src / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for k in ("kind", "schema_version", "retried"):
            rec.pop(k, None)
        rec["extraction"] = {k: v for k, v in (rec.get("extraction") or {}).items() if k != "artefact"}
        lines.append(json.dumps(rec))
    (dst / "samples.jsonl").write_text("\n".join(lines) + "\n")
    # 0.1.0 wrote Student-t intervals for everything, leaving [0, 1] at 0/n and past 1 for judge scores.
    metrics = {n: {"mean": m["mean"], "std": m["std"], "ci_low": m["mean"], "ci_high": m["mean"], "ci_half": 0.0,
                   "n": m["n"], "n_failed": m["n_failed"]}
               for n, m in json.loads((src / "results.json").read_text())["metrics"].items()}
    (dst / "results.json").write_text(json.dumps({
        "schema_version": 1, "task": old["task"]["name"], "task_metric": old["task"]["task_metric"],
        "n_examples": len(man["item_ids"]), "n_samples": len(lines), "n_samples_with_errors": 0,
        "ci_method": "student-t 95% interval of the mean", "metrics": metrics}))


def test_schema1_runs_still_read(runs: dict[str, Path], host: Any, tmp_path: Path) -> None:
    old = tmp_path / "schema1"
    _schema1(runs["wrong"], old)
    run = load_run(old, host=host)
    assert run.manifest.schema_version == 1 and run.label == "scripted/rp-wrong"
    assert any("schema-1 run: results recomputed" in n for n in run.notes)
    new = json.loads((runs["wrong"] / "results.json").read_text())["metrics"]
    # Recomputed with today's value kinds: the same Wilson and bootstrap intervals as the schema-2 run.
    for name in ("math_accuracy", "interactivity", "token_amount"):
        got = run.results.metrics[name]
        assert got.ci_method == new[name]["ci_method"]
        assert got.ci_low == pytest.approx(new[name]["ci_low"]) and got.ci_high == pytest.approx(new[name]["ci_high"])
    board = build_board([old, runs["oracle"]], host=host)
    # The schema-1 run does not record its data file's digest: the example sets cannot be shown to be the same.
    assert "examples" in {d.setting for d in board.flags["math-chat"]}
    assert "schema-1 run" in to_markdown(board)
    html = render_viewer(old, host=host)
    assert "not recorded by this run's schema" in html and 'class="judge-rationale">scripted verdict' in html


def test_runs_that_cannot_be_placed_are_refused(runs: dict[str, Path], host: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(runs["asks"], broken)
    man = json.loads((broken / "manifest.json").read_text())
    man["components"] = [c for c in man["components"] if c["kind"] != "simulator"]
    man["models"]["assistant"] = {}
    (broken / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(LeaderboardError, match=r"incomplete manifest \(missing simulator, models.assistant\)"):
        build_board([broken], host=host)
    board = build_board([runs["doc"], broken], skip_invalid=True, host=host)
    assert len(board.rows) == 1 and "incomplete manifest" in board.refused[0]

    started = tmp_path / "started"
    shutil.copytree(runs["asks"], started)
    man = json.loads((started / "manifest.json").read_text())
    man["status"] = "started"
    (started / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(LeaderboardError, match=r"has not finished .*resume it with --resume"):
        build_board([started], host=host)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["wrong"], unfinished)
    (unfinished / "results.json").unlink()
    with pytest.raises(LeaderboardError, match=r"no results\.json"):
        build_board([unfinished], host=host)


def test_viewer_shows_reference_artefact_rationale_models_seeds(runs: dict[str, Path], host: Any) -> None:
    html = render_viewer(runs["oracle"], host=host)
    task = host.registry.create("task", "math-chat", {"source": "sample"})
    refs = {ex.id: ex for ex in task.load("test")}
    recs = [json.loads(line) for line in (runs["oracle"] / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and html.count('<details class="sample') == 4
    for r in recs:
        ex = refs[r["example_id"]]
        assert f'data-id="{r["example_id"]}"' in html
        assert f"seed {r['seed']}" in html  # the record's seed
        assert f'<div class="tex">{ex.reference}</div>' in html  # the reference, read back from the task
        assert r["extraction"]["artefact"] and r["extraction"]["artefact"].replace("$", "") in html.replace("$", "")
    assert 'id="reference-note"' not in html  # loaded and checked against the run's data digest
    assert "extracted artefact — llm by scripted/rp-judge" in html
    assert html.count('class="judge-rationale">scripted verdict') == 4
    assert "scripted/rp-oracle" in html and "scripted/rp-judge" in html and "run 0; per sample" in html
    # Interval methods of the results table are named.
    assert "W: wilson 95%" in html and "B: bootstrap percentile 95%" in html


def test_viewer_shows_failures_with_component_category_and_retries(runs: dict[str, Path], host: Any) -> None:
    html = render_viewer(runs["bad"], host=host)
    assert html.count('<li class="failure">[judge:interactivity; component; attempt 1]') == 2
    assert 'data-score-interactivity=""' in html and 'class="failed">failed</td>' in html
    flaky = render_viewer(runs["flaky"], host=host)
    recs = [json.loads(line) for line in (runs["flaky"] / "samples.jsonl").read_text().splitlines()]
    assert sorted((r["attempt"], len(r["errors"]), len(r["retried"])) for r in recs) == [(1, 0, 0), (2, 0, 1)]
    assert flaky.count('class="retried-failure">retried past: [judge:interactivity; component; attempt 1]') == 1
    assert "retried</span>" in flaky and 'class="failure"' not in flaky


def test_viewer_reference_falls_back_with_a_note(runs: dict[str, Path], host: Any, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    shutil.copytree(runs["wrong"], gone)
    man = json.loads((gone / "manifest.json").read_text())
    man["config"]["task"]["name"] = "no-such-task"
    (gone / "manifest.json").write_text(json.dumps(man))
    html = render_viewer(gone, host=host)
    assert "references not shown: task &#39;no-such-task&#39; could not be loaded (ComponentNotFound" in html
    assert html.count("not available: see the note at the top") == 4
    changed = tmp_path / "changed"
    shutil.copytree(runs["wrong"], changed)
    man = json.loads((changed / "manifest.json").read_text())
    man["task"]["data"]["sha256"] = "0" * 64
    (changed / "manifest.json").write_text(json.dumps(man))
    assert "the task&#39;s data file changed since the run" in render_viewer(changed, host=host)


def test_viewer_is_self_contained_with_bundled_katex(runs: dict[str, Path], host: Any) -> None:
    import re

    assets = katex_assets()
    assert assets is not None and assets.version
    assert "url(fonts/" not in assets.css and assets.css.count("data:font/woff2;base64,") == 20
    html = render_viewer(runs["asks"], host=host)
    assert assets.js[:200] in html and "renderMathInElement" in html
    # Nothing is loaded from anywhere: no src/href to another document, no url() but data: URIs, no @import.
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?!#|data:)[a-z]+:""", html, re.I)
    assert not re.search(r"url\((?!\s*['\"]?data:)", html) and "@import" not in html
    # Prose may hold LaTeX; fenced code never becomes math.
    segs = segments("Let $x=1$.\n```python\nprice = '$5'\n```\nSo \\boxed{2}")
    assert [s.kind for s in segs] == ["text", "code", "text"] and segs[1].text == "price = '$5'"
    assert segs[2].text.strip() == "So \\(\\boxed{2}\\)"


def test_cli_leaderboard_and_view(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from collab_harness.cli.main import main

    out = tmp_path / "lb"
    main(["leaderboard", str(runs["asks"]), str(runs["asks-system"]), "--out", str(out)])
    text = capsys.readouterr().out
    assert f"html: {out / 'index.html'}" in text and f"json: {out / 'leaderboard.json'}" in text
    assert "compare: scripted/rp-asks vs scripted/rp-asks + system:" in text and "no difference shown" in text
    assert "collab-harness leaderboard " in (out / "README.md").read_text()
    assert len(json.loads((out / "leaderboard.json").read_text())["rows"]) == 2
    main(["view", str(runs["bad"]), "--out", str(tmp_path / "v.html"), "--no-references"])
    page = (tmp_path / "v.html").read_text()
    assert "references not loaded (--no-references)" in page and 'class="box reference"' in page

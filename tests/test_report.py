"""Leaderboard (Markdown, HTML, plots) and conversation viewer, from real runs on scripted models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from evaluate_scripts import assistant_reply, judge_reply

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.evaluation import run_evaluation as evaluate
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.report.leaderboard import LeaderboardError, build_board, write_leaderboard
from collab_harness.report.viewer import render_viewer


def _terse(messages: list[dict[str, str]], params: object, i: int) -> str:
    return "Sure, here it is. \\boxed{1}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two assistants × two tasks, plus a run with a failing judge (for the viewer's error display)."""
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLAB_HARNESS_CACHE_DIR", str(root / "cache"))
    a1 = register_script("rp-asks", assistant_reply)
    a2 = register_script("rp-terse", _terse)
    j = register_script("rp-judge", judge_reply)
    bad_j = register_script("rp-badjudge", "I refuse to answer in JSON.")
    host = build_plugin_manager(strict=False, block=[])
    out: dict[str, Path] = {}
    try:
        for task in ("math-chat", "doc-chat"):
            for a in (a1, a2):
                d = root / f"{task}-{a.split('/')[1]}"
                evaluate(make_config({"task": task, "limit": 3, "assistant": a, "judge": j, "max_exchanges": 2}),
                         host, d)
                out[f"{task}/{a}"] = d
        d = root / "badjudge"
        evaluate(make_config({"task": "math-chat", "limit": 2, "assistant": a1, "judge": bad_j,
                              "max_exchanges": 1}), host, d)
        out["bad"] = d
        yield out
    finally:
        for n in ("rp-asks", "rp-terse", "rp-judge", "rp-badjudge"):
            unregister_script(n)
        mp.undo()


def test_leaderboard_table_rows_columns_and_files(runs: dict[str, Path], tmp_path: Path) -> None:
    dirs = [v for k, v in runs.items() if k != "bad"]
    files = write_leaderboard(dirs, tmp_path / "board", command="collab-harness leaderboard ... --out board")
    md = files.markdown.read_text()
    assert "collab-harness leaderboard ... --out board" in md  # the generation command is in the header
    header = next(line for line in md.splitlines() if line.startswith("| assistant"))
    for col in ("math-chat: math_accuracy ↑", "math-chat: k-tokens ↓", "doc-chat: bleu ↑",
                "doc-chat: interactivity ↑", "simulator", "judge", "parity"):
        assert col in header
    rows = [line for line in md.splitlines() if line.startswith("| `scripted/")]
    assert len(rows) == 2  # one row per assistant, both tasks side by side
    board = json.loads(files.json.read_text())
    asks = next(r for r in board["rows"] if r["assistant"] == "scripted/rp-asks")
    res = json.loads((runs["math-chat/scripted/rp-asks"] / "results.json").read_text())
    # Cells come from results.json: k-tokens is token_amount / 1000, with its CI scaled too.
    k_tokens = asks["cells"]["math-chat"]["k_tokens"]
    assert k_tokens["mean"] == pytest.approx(res["metrics"]["token_amount"]["mean"] / 1000)
    ta = res["metrics"]["token_amount"]
    assert k_tokens["ci_half"] == pytest.approx((ta["ci_high"] - ta["ci_low"]) / 2 / 1000)
    assert asks["cells"]["math-chat"]["interactivity"]["n"] == 3
    assert asks["simulator"] == "shard-user" and "interactivity (scripted/rp-judge)" in asks["judge"]
    assert asks["parity"] is False
    html = files.html.read_text()
    assert html.count('<tr class="row">') == 2 and "data:image/png;base64," in html
    for p in files.plots.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_incomplete_manifest_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(runs["math-chat/scripted/rp-asks"], broken)
    man = json.loads((broken / "manifest.json").read_text())
    man["components"] = [c for c in man["components"] if c["kind"] != "simulator"]
    man["models"]["assistant"] = {}
    (broken / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(LeaderboardError, match=r"incomplete manifest \(missing simulator, models.assistant\)"):
        build_board([broken])
    board = build_board([runs["doc-chat/scripted/rp-asks"], broken], skip_invalid=True)
    assert len(board.rows) == 1 and "incomplete manifest" in board.refused[0]

    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["math-chat/scripted/rp-terse"], unfinished)
    (unfinished / "results.json").unlink()
    with pytest.raises(LeaderboardError, match=r"no results\.json"):
        build_board([unfinished])
    with pytest.raises(LeaderboardError, match="already on the board"):
        build_board([runs["math-chat/scripted/rp-terse"], runs["math-chat/scripted/rp-terse"]])


def test_viewer_shows_every_conversation_scores_and_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    html = render_viewer(runs["bad"])
    recs = [json.loads(line) for line in (runs["bad"] / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 2
    for r in recs:
        assert f'data-id="{r["example_id"]}"' in html
        assert r["errors"] and r["errors"][0]["component"] == "judge:interactivity"
    assert "[judge:interactivity, attempt 1]" in html and 'class="failed">failed</td>' in html
    assert 'data-score-math-accuracy="' in html and 'data-score-interactivity=""' in html  # failed: no value
    assert "<script" in html and "http://" not in html and "https://" not in html  # self-contained


def test_cli_leaderboard_and_view(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from collab_harness.cli.main import main

    out = tmp_path / "lb"
    main(["leaderboard", str(runs["math-chat/scripted/rp-asks"]), str(runs["math-chat/scripted/rp-terse"]),
          "--out", str(out)])
    text = capsys.readouterr().out
    assert f"html: {out / 'index.html'}" in text
    assert "collab-harness leaderboard " in (out / "README.md").read_text()
    main(["view", str(runs["bad"]), "--out", str(tmp_path / "v.html")])
    assert (tmp_path / "v.html").stat().st_size > 1000

"""The viewer of synthesis runs (issue 13, item 4): per conversation and per turn the candidate tree — every candidate
with how it was sampled, its MR (mean ± std, n_ok/n_total), per-metric means, the chosen one and why not the others
(their MR or their error), the next user message and the future it came from, and each candidate's futures folded
underneath with their exchanges, scores, reward and failures. Also an ``mr`` run's page, the CLI, and the page in
headless Chromium (self-contained, LaTeX typeset when a fold opens, links open their folds, nothing cut off).

The run is real: ``run_synthesis`` on scripted models with a registered metric, 2 examples × 2 turns × 4 candidates,
S = 2, W = 1. The candidates are built so their outcome is known by hand: 0 (proactive) asks → MR 1 over 2/2
futures; 1 answers → MR 0; 2 is a candidate the metric cannot score → no MR (0/2 futures); 3's generation fails
permanently → no text, no futures.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import lxml.html
import pytest

from collab_harness import Metric, Score, ScoringContext, build_plugin_manager, hookimpl
from collab_harness.config import make_config
from collab_harness.models._provider import ProviderError
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.mr_run import run_mr
from collab_harness.prompts import PROACTIVE_COLLABORATOR
from collab_harness.records import ComponentFailure, SynthCandidate, SynthRecord
from collab_harness.report.viewer import render_viewer, write_viewer
from collab_harness.rundir import read_records
from collab_harness.synthesize import run_synthesis

MR_ROWS = Path(__file__).parent / "data" / "mr_histories.jsonl"


class AsksOrFails(Metric):
    """1 when the candidate asks a question, 0 when not; a candidate saying "fragile" cannot be scored (a failed
    score, so its futures fail and its MR is a recorded failure)."""

    name: ClassVar[str] = "asks-or-fails"
    value_kind: ClassVar[Any] = "proportion"

    def compute(self, ctx: ScoringContext) -> Score:
        first = next(m for m in ctx.conversation.messages[ctx.forward_start:] if m.role == "assistant")
        if "fragile" in first.content:
            return Score.failed(self.name, "this candidate cannot be scored (fragile)")
        return Score(component=self.name, value=float("?" in first.content))


class _Plugin:
    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register(AsksOrFails)


def _assistant(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    """Candidates are sampled with sample_index = candidate index; futures use their own index (0 or 1 here)."""
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if messages[0]["role"] == "system" and PROACTIVE_COLLABORATOR[:40] in messages[0]["content"]:
        return f"Turn {turn}: which form do you need, $x^2 + \\frac{{1}}{{2}}$ or something else?"
    if sample_index == 3:
        raise ProviderError("scripted: injected permanent failure", transient=False)
    if sample_index == 2:
        return f"Turn {turn}: a fragile answer"
    return f"Turn {turn}: the answer is $\\boxed{{42}}$.\n```python\nprint(42)\n```"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("view-synth")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLAB_HARNESS_CACHE_DIR", str(root / "cache"))
    a = register_script("vs-assistant", _assistant)
    try:
        host = build_plugin_manager(strict=False, block=[])
        host.add_plugin(_Plugin(), name="view-synth-test")
        cfg = make_config({"task": "math-chat", "split": "train", "limit": 2, "assistant": a,
                           "metrics": ["asks-or-fails"], "mr": {"samples": 2, "window": 1},
                           "synth": {"candidates": 4, "proactive_share": 0.25, "max_turns": 2,
                                     "temperatures": [0.7, 1.0]}})
        assert run_synthesis(cfg, host, root / "synth").status == "success"
        mr_cfg = make_config({"task": "math-chat", "assistant": a, "metrics": ["asks-or-fails"],
                              "mr": {"samples": 2, "window": 1}})
        run_mr(mr_cfg, host, root / "mr", MR_ROWS)
        page = write_viewer(root / "synth", root / "synth.html", host=host)
        records = [r for r in read_records(root / "synth" / "samples.jsonl").records if isinstance(r, SynthRecord)]
        yield {"root": root, "host": host, "page": page, "records": sorted(records, key=lambda r: r.example_id)}
    finally:
        unregister_script("vs-assistant")
        mp.undo()


def _doc(page: Path | str) -> Any:
    text = page.read_text(encoding="utf-8") if isinstance(page, Path) else page
    doc = lxml.html.fromstring(text)
    for br in doc.iter("br"):  # a line break reads as a space in text_content()
        br.tail = " " + (br.tail or "")
    return doc


def _text(el: Any) -> str:
    return " ".join(el.text_content().split())


def _conv(doc: Any, example_id: str) -> Any:
    (el,) = doc.xpath(f'//details[contains(@class, "sample")][@data-id="{example_id}"]')
    return el


def test_every_turn_shows_its_candidates_mr_sampling_and_why_not_chosen(runs: dict[str, Any]) -> None:
    doc = _doc(runs["page"])
    recs: list[SynthRecord] = runs["records"]
    assert len(recs) == 2 and len(doc.xpath('//details[contains(@class, "sample")]')) == 2
    for rec in recs:
        conv = _conv(doc, rec.example_id)
        turns = conv.xpath('.//section[contains(@class, "turn")]')
        assert len(turns) == len(rec.turns) == 2
        for t, sec in zip(rec.turns, turns, strict=True):
            rows = sec.xpath('.//table[@class="cands"]//tr[contains(@class, "cand-row")]')
            cells = [[_text(td) for td in r.xpath("./td")] for r in rows]
            # By hand (see the module docstring): # / sampled as / MR ± std / futures ok / metric mean / outcome.
            seeds = [c.seed for c in t.candidates]
            assert [c[:5] for c in cells] == [
                ["0 ✓", f"proactive, T 0.7 seed {seeds[0]}", "1.000 ± 0.000", "2/2", "1"],
                ["1", f"plain, T 1.0 seed {seeds[1]}", "0.000 ± 0.000", "2/2", "0"],
                ["2", f"plain, T 0.7 seed {seeds[2]}", "—", "0/2", "—"],
                ["3", f"plain, T 1.0 seed {seeds[3]}", "—", "0/0", "—"],
            ]
            assert cells[0][5] == "chosen: highest MR"
            assert cells[1][5] == "not chosen: MR 0.000 < 1.000 of candidate 0 (gap 1.000)"
            assert cells[2][5].startswith("not chosen: no MR — 0/2 futures succeeded")
            assert "this candidate cannot be scored (fragile)" in cells[2][5]
            assert cells[3][5].startswith("not chosen: no MR — candidate: ")
            assert "injected permanent failure" in cells[3][5]
            assert [r.get("class").split() for r in rows] == [["cand-row", "chosen"], ["cand-row"],
                                                              ["cand-row", "no-mr"], ["cand-row", "no-mr"]]
            # The chosen candidate is the path's assistant message, shown once in the flow with its MR.
            (chosen,) = sec.xpath('./div[contains(@class, "chosen-msg")]')
            assert _text(chosen).startswith("assistant — candidate 0, chosen (MR 1.000)")
            assert rec.conversation[t.prefix].content == t.candidates[0].text
            assert "$x^2 + \\frac{1}{2}$" in _text(chosen)
        summary = _text(conv.xpath("./summary")[0])
        assert summary == (f"{rec.example_id} — 2 turns, stopped: {rec.stop_reason} — chosen MR t0 1.000 · t1 1.000 "
                           "— 4 candidate(s) without MR")


def test_each_candidate_has_its_futures_folded_with_exchanges_scores_reward_and_failures(
        runs: dict[str, Any]) -> None:
    doc = _doc(runs["page"])
    # Folded by default: only the first conversation is open; no candidate, no future.
    assert not doc.xpath('//details[contains(@class, "cand")][@open]')
    assert not doc.xpath('//details[contains(@class, "future")][@open]')
    n_futures = 0
    for rec in runs["records"]:
        conv = _conv(doc, rec.example_id)
        for t, sec in zip(rec.turns, conv.xpath('.//section[contains(@class, "turn")]'), strict=True):
            cards = sec.xpath('./details[contains(@class, "cand")]')
            assert [int(c.get("data-candidate")) for c in cards] == [0, 1, 2, 3]
            for c, card in zip(t.candidates, cards, strict=True):
                futures = card.xpath('./details[contains(@class, "future")]')
                assert len(futures) == len(c.futures) == (0 if c.index == 3 else 2)
                n_futures += len(futures)
                meta = _text(card.xpath('./p[@class="meta"]')[0])
                assert ("per-metric means · asks-or-fails " + {0: "1", 1: "0"}.get(c.index, "—")) in meta
                if c.text is None:
                    assert "no text: candidate: " in _text(card)
                for f, el in zip(c.futures, futures, strict=True):
                    msgs = el.xpath('./div[contains(@class, "msg")]')
                    # The simulated exchange after the candidate (history and candidate are shown once, above).
                    want = f.conversation[f.forward_start + 1:]
                    assert [m.get("class").split()[1] for m in msgs] == [m.role for m in want]
                    assert len(want) >= 1
                    assert [_text(m.xpath('./div[@class="tex"]')[0]) for m in msgs] == [
                        " ".join(m.content.split("```")[0].split()) for m in want]
                    head = _text(el.xpath("./summary")[0])
                    assert head.startswith(f"future {f.index} · seed {f.seed} · {f.exchanges} exchange")
                    if c.index == 2:  # the metric failed: a failure with its component, never a value
                        assert f.reward is None and "failed: metric:asks-or-fails" in head
                        assert "[metric:asks-or-fails; component; attempt 1] this candidate cannot be scored" in \
                            _text(el.xpath('./ul[@class="errors"]')[0])
                        assert _text(el.xpath('.//tr[@class="score"]/td[2]')[0]) == "failed"
                    else:
                        assert f.reward == float(c.index == 0)
                        assert f"reward {f.reward:.3f}" in head and f"asks-or-fails {f.reward:.3g}" in head
                        assert _text(el.xpath('./p[contains(@class, "reward")]')[0]) == \
                            f"reward {f.reward:.4g} = asks-or-fails {f.reward:.4g}"
    assert n_futures == 2 * 2 * 3 * 2


def test_next_user_message_names_and_links_the_future_it_came_from(runs: dict[str, Any]) -> None:
    doc = _doc(runs["page"])
    for rec in runs["records"]:
        conv = _conv(doc, rec.example_id)
        t0 = rec.turns[0]
        assert t0.next_user_source == "future 0 of candidate 0"  # rule "sample": the first future in seed order
        (msg,) = conv.xpath('./div[contains(@class, "next-user")]')
        assert _text(msg.xpath('./span[@class="role"]')[0]) == "user — from future 0 of candidate 0"
        assert _text(msg.xpath('./div[@class="tex"]')[0]) == " ".join(str(t0.next_user).split())
        (link,) = msg.xpath('.//a[@class="source-link"]')
        (target,) = doc.xpath(f'//*[@id="{link.get("href")[1:]}"]')
        assert "gave-next-user" in target.get("class") and target.get("data-future") == "0"
        assert target.xpath('ancestor::details[contains(@class, "cand")]')[0].get("data-candidate") == "0"
        # The future's first simulated message is the next user message; it is the only future so marked.
        assert _text(target.xpath('./div[contains(@class, "msg")]')[0]).endswith(" ".join(t0.next_user.split()))
        assert len(conv.xpath('.//details[contains(@class, "gave-next-user")]')) == 1
        # The last turn has no next user message (max_turns).
        assert rec.turns[1].next_user is None and len(conv.xpath('./div[contains(@class, "next-user")]')) == 1
        opening = conv.xpath('./div[contains(@class, "msg")]')[0]
        assert _text(opening).startswith("user — the simulator's opening")


def test_page_header_settings_results_and_no_external_asset(runs: dict[str, Any]) -> None:
    text = runs["page"].read_text(encoding="utf-8")
    doc = _doc(text)
    meta = _text(doc.xpath('//p[@class="meta"]')[0])
    assert "synth run, status success" in meta and "2 conversations, 0 failed" in meta
    settings = _text(doc.xpath('//table[@id="models"]//tr[th="settings"]/td')[0])
    assert "MR: S 2 futures, W 1 exchanges, weighted form, weights asks-or-fails 1.0" in settings
    assert "synth: 4 candidates per turn (proactive share 0.25, temperatures [0.7, 1.0]), up to 2 turns" in settings
    assert "next user message rule 'sample'" in settings
    seeds = _text(doc.xpath('//table[@id="models"]//tr[th="seeds"]/td')[0])
    assert "mr (shared by the candidates of a turn)" in seeds
    chosen_mr = _text(doc.xpath('//p[@id="chosen-mr"]')[0])
    assert chosen_mr.startswith("MR of the chosen candidates (every turn): mean 1.000")
    # Self-contained: no script, stylesheet, image or font from anywhere (KaTeX and its fonts are inline).
    assert not doc.xpath("//script[@src] | //link | //img[not(starts-with(@src, 'data:'))]")
    assert not re.search(r"url\((?!data:)", text) and "katex" in text
    # References come from the task, as in the evaluation viewer.
    assert len(doc.xpath('//div[@class="box reference"]/div[@class="tex"]')) == 2


def test_failed_turn_and_failed_conversation_are_shown_with_their_reasons(runs: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """The shapes synthesis writes when a turn has no candidate with an MR, or the opening failed."""
    src = runs["root"] / "synth"
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(src / "manifest.json", run / "manifest.json")
    rec: SynthRecord = runs["records"][0]
    t1 = rec.turns[1]
    dead = [SynthCandidate(index=c.index, text=c.text, variant=c.variant, temperature=c.temperature, seed=c.seed,
                           n_total=2, error="0/2 futures succeeded, 2 needed (min_futures): judge down")
            for c in t1.candidates]
    broken = rec.model_copy(update={
        "turns": [rec.turns[0], t1.model_copy(update={"candidates": dead, "chosen": None})],
        "conversation": rec.conversation[: t1.prefix], "stop_reason": "failed",
        "errors": [ComponentFailure(component="mr", message="turn 1: no candidate has an MR")]})
    failed = SynthRecord(id="math-chat/x#1", example_id="math-chat/x", seed=1, stop_reason="failed",
                         errors=[{"component": "user:shard-user", "message": "opening failed", "attempt": 1}])
    (run / "samples.jsonl").write_text("".join(json.dumps(r.model_dump(mode="json")) + "\n"
                                               for r in (broken, failed)), encoding="utf-8")
    doc = _doc(render_viewer(run, references=False))
    conv = _conv(doc, rec.example_id)
    sec = conv.xpath('.//section[contains(@class, "turn")]')[1]
    assert "failed-turn" in sec.get("class")
    assert _text(sec.xpath('./p[@class="failed"]')[0]) == "no candidate has an MR: the conversation stops here"
    whys = [_text(td) for td in sec.xpath('.//td[@class="why"]')]
    assert whys == ["not chosen: no MR — 0/2 futures succeeded, 2 needed (min_futures): judge down"] * 4
    assert "[mr; component; attempt 1] turn 1: no candidate has an MR" in _text(conv)
    assert "stopped: failed" in _text(conv.xpath("./summary")[0])
    other = _conv(doc, "math-chat/x")
    assert "0 turns, stopped: failed" in _text(other.xpath("./summary")[0])
    assert "[user:shard-user; component; attempt 1] opening failed" in _text(other)
    assert "references not loaded (--no-references)" in _text(doc)


def test_mr_run_page_shows_each_row_with_its_futures(runs: dict[str, Any]) -> None:
    run = runs["root"] / "mr"
    recs = {r.item_id: r for r in read_records(run / "samples.jsonl").records}
    doc = _doc(render_viewer(run, host=runs["host"]))
    rows = doc.xpath('//details[contains(@class, "sample")]')
    assert sorted(r.get("data-id") for r in rows) == sorted(recs) and len(recs) == 4
    for el in rows:
        rec: Any = recs[el.get("data-id")]
        (card,) = el.xpath('./details[contains(@class, "cand")]')
        assert card.get("open") is not None  # the row's one candidate is open; its futures are folded
        assert len(card.xpath('./details[contains(@class, "future")]')) == len(rec.futures) == 2
        shown = _text(card.xpath('./div[contains(@class, "candidate-text")]/div')[0])
        assert shown.replace("\\(", "").replace("\\)", "") == " ".join(rec.candidate.split())  # bare \boxed typeset
        head = _text(card.xpath("./summary")[0])
        assert f"MR {rec.mr:.3f} ± {rec.std:.3f} ({rec.n_ok}/{rec.n_total} futures)" in head
        assert [_text(m) for m in el.xpath('./div[contains(@class, "msg")]/div')] == [
            " ".join(m.content.split()) for m in rec.history]
    assert "MR of the rows: mean" in _text(doc)


def test_cli_view_writes_the_synth_page(runs: dict[str, Any], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from collab_harness.cli.main import main

    out = tmp_path / "page.html"
    try:
        main(["view", str(runs["root"] / "synth"), "--out", str(out), "--no-references"])
    except SystemExit as e:
        assert not e.code
    assert f"html: {out}" in capsys.readouterr().out
    doc = _doc(out)
    assert len(doc.xpath('//section[contains(@class, "turn")]')) == 4
    assert len(doc.xpath('//details[contains(@class, "future")]')) == 24


# ------------------------------------------------------------------------------------------------ in Chromium

#: After load: what is typeset while everything is folded; then "expand" (every conversation shown, candidate and
#: future opens and is typeset); then
#: "collapse" and a click on the next user message's source link (its future and candidate open).
PROBE = """<script>
(function () {
  var out = {inner: window.innerWidth,
             resources: performance.getEntriesByType('resource').map(function (e) { return e.name; })
                          .filter(function (n) { return n.indexOf('data:') !== 0; }),
             katex_folded: document.querySelectorAll('.chosen-msg .katex').length,
             typeset_in_futures_folded: document.querySelectorAll('details.future .tex[data-typeset]').length};
  setTimeout(function () {
    document.getElementById('expand').click();
    setTimeout(function () {
      out.open_samples = document.querySelectorAll('details.sample[open]').length;
      out.future_tex = document.querySelectorAll('details.future .tex').length;
      out.future_tex_typeset = document.querySelectorAll('details.future .tex[data-typeset]').length;
      out.future_katex = document.querySelectorAll('details.future .katex').length;
      out.katex_errors = document.querySelectorAll('.katex-error').length;
      out.open_futures = document.querySelectorAll('details.future[open]').length;
      out.doc = document.documentElement.scrollWidth;
      document.getElementById('collapse').click();
      out.open_after_collapse = document.querySelectorAll('details.cand[open], details.future[open]').length;
      var link = document.querySelector('details.sample[open] a.source-link');
      link.click();
      var target = document.getElementById(link.getAttribute('href').slice(1));
      out.link_target_open = target.open && target.closest('details.cand').open;
      document.body.setAttribute('data-probe', JSON.stringify(out));
    }, 200);
  }, 100);
})();
</script>"""


def test_synth_page_in_chromium(runs: dict[str, Any], tmp_path: Path) -> None:
    from test_browser import WIDTH, _chromium, _run, _screenshot

    exe = _chromium()
    probed = tmp_path / "probed.html"
    probed.write_text(runs["page"].read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"),
                      encoding="utf-8")
    r = _run(exe, tmp_path, "--dump-dom", probed.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]*)\"", r.stdout)
    assert m, "the probe did not run"
    probe = json.loads(html.unescape(m.group(1)))
    assert probe["inner"] == WIDTH and probe["resources"] == [], probe  # self-contained
    # Folded: the chosen messages of the open conversation are typeset, nothing inside a folded future is.
    assert probe["katex_folded"] >= 2 and probe["typeset_in_futures_folded"] == 0, probe
    # "expand": every conversation shown, candidate and future is open, and every future is typeset
    # ($\boxed{42}$ in each simulated reply of candidates 0 and 1).
    assert probe["open_samples"] == 2 and probe["open_futures"] == 24 and probe["future_tex"] > 0, probe
    assert probe["future_tex_typeset"] == probe["future_tex"] and probe["future_katex"] >= 16, probe
    assert probe["katex_errors"] == 0 and probe["doc"] <= probe["inner"], probe  # nothing cut off at 1400 px
    assert probe["open_after_collapse"] == 0 and probe["link_target_open"] is True, probe
    # A screenshot with everything expanded (what a reviewer sees; not blank).
    expanded = tmp_path / "expanded.html"
    expanded.write_text(runs["page"].read_text(encoding="utf-8").replace(
        "</body>", "<script>document.getElementById('expand').click();</script>\n</body>"), encoding="utf-8")
    _screenshot(exe, tmp_path, expanded, height=2400)

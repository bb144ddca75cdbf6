"""The HTML leaderboard and the conversation viewer, opened in headless Chromium (Debian's ``chromium``) at 1400 px.

Checks what a reader sees: labelled variants of one assistant as separate rows, a differing setting flagged, a 0/3
proportion with a non-zero upper bound, a failed metric shown as a failure count, wide tables that scroll instead of
being cut off (also on the committed offline board), LaTeX typeset by the bundled KaTeX, and no asset loaded from
anywhere. Layout facts are measured in the browser by a script added to a copy of the page.

If /usr/bin/chromium is missing, the test installs it only when COLLAB_HARNESS_INSTALL_CHROMIUM=1 (apt-get, as
root); otherwise it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evaluate_scripts import judge_reply

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.evaluation import run_evaluation as evaluate
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.report.leaderboard import write_leaderboard
from collab_harness.report.viewer import write_viewer
from collab_harness.stats import proportion_interval

WIDTH = 1400
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", f"--window-size={WIDTH},900", "--hide-scrollbars",
                  "--virtual-time-budget=5000"]
COMMITTED_BOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "offline-smollm2" / "index.html"

#: Measures the page in the browser and writes the facts into the DOM (read back from --dump-dom).
PROBE = """<script>
(function () {
  var out = {inner: window.innerWidth, doc: document.documentElement.scrollWidth,
             resources: performance.getEntriesByType('resource').map(function (e) { return e.name; })
                          .filter(function (n) { return n.indexOf('data:') !== 0; }),
             katex: document.querySelectorAll('.katex').length, mathml: document.querySelectorAll('math').length,
             katex_errors: document.querySelectorAll('.katex-error').length};
  var wrap = document.getElementById('board-scroll');
  if (wrap) {
    var cells = wrap.querySelectorAll('tr.row td'), last = cells[cells.length - 1];
    out.overflow = getComputedStyle(wrap).overflowX;
    out.wrap_client = wrap.clientWidth; out.wrap_scroll = wrap.scrollWidth;
    wrap.scrollLeft = wrap.scrollWidth;  // scroll to the end: the last cell must come into view
    var w = wrap.getBoundingClientRect(), c = last.getBoundingClientRect();
    out.last_visible = c.right <= w.right + 1 && c.left >= w.left - 1;
  }
  document.body.setAttribute('data-probe', JSON.stringify(out));
})();
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found:
        return found
    if os.environ.get("COLLAB_HARNESS_INSTALL_CHROMIUM") == "1":
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, capture_output=True, env=env,
                       timeout=1200)
        found = shutil.which("chromium")
        if found:
            return found
        pytest.fail("apt-get install chromium succeeded but no chromium executable was found")
    pytest.skip("headless Chromium not installed (/usr/bin/chromium missing); install it with "
                "`apt-get install -y chromium` or set COLLAB_HARNESS_INSTALL_CHROMIUM=1 to let this test do it")


def _run(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


def _dom(exe: str, tmp: Path, page: Path) -> tuple[str, dict[str, Any]]:
    """The DOM after scripts ran, and what the probe measured on a copy of ``page``."""
    probed = tmp / f"probed-{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    r = _run(exe, tmp, "--dump-dom", probed.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]*)\"", r.stdout)
    assert m, "the probe did not run"
    import html as _html

    return r.stdout, json.loads(_html.unescape(m.group(1)))


def _screenshot(exe: str, tmp: Path, page: Path, height: int = 900) -> Path:
    import matplotlib.image as mpimg
    import numpy as np

    shot = tmp / f"{page.stem}.png"
    r = _run(exe, tmp, f"--window-size={WIDTH},{height}", f"--screenshot={shot}", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 5000, "no screenshot written"
    img = mpimg.imread(str(shot))
    assert img.shape[1] == WIDTH and img.shape[0] >= 800
    gray = img[..., :3].mean(axis=2)
    # Not blank: plenty of dark (text, table borders) and light (background) pixels.
    assert (gray < 0.4).mean() > 0.002 and (gray > 0.9).mean() > 0.3 and float(np.std(gray)) > 0.05
    return shot


def _check_layout(probe: dict[str, Any]) -> None:
    assert probe["inner"] == WIDTH
    assert probe["doc"] <= probe["inner"], f"the page is wider than the window: {probe}"  # nothing cut off
    if probe["wrap_scroll"] > probe["wrap_client"]:  # wider than the window: it must scroll, to its last cell
        assert probe["overflow"] in ("auto", "scroll"), probe
    assert probe["last_visible"], probe
    assert probe["resources"] == [], probe  # self-contained: nothing fetched


def _wrong(messages: list[dict[str, str]], params: object, i: int) -> str:
    n = sum(1 for m in messages if m.get("role") == "assistant")
    if n == 0:
        return "Happy to help. What is the problem, exactly?"
    return "Let me work it out: $x^2 + 1 = \\frac{a}{b}$, so the answer is $\\boxed{-987654}$."


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One assistant as two labelled variants ("base"; "proactive" with a system prompt), "base" again with 3
    exchanges, and "base" with a judge that always fails; math-chat, 3 examples each."""
    root = tmp_path_factory.mktemp("browser")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLAB_HARNESS_CACHE_DIR", str(root / "cache"))
    a = register_script("br-assistant", _wrong)
    j = register_script("br-judge", judge_reply)
    bad = register_script("br-badjudge", "no JSON here")
    try:
        host = build_plugin_manager(strict=False, block=[])
        base = {"task": "math-chat", "limit": 3, "assistant": a, "judge": j, "max_exchanges": 2, "label": "base"}
        plan = {"base": base,
                "proactive": {**base, "label": "proactive",
                              "assistant_system_prompt": "Ask clarifying questions before answering."},
                "base-3x": {**base, "max_exchanges": 3},
                "base-badjudge": {**base, "judge": bad}}
        for name, cfg in plan.items():
            evaluate(make_config(cfg), host, root / name)
        files = write_leaderboard([root / n for n in plan], root / "board", command="(test)", host=host)
        viewer = write_viewer(root / "proactive", root / "viewer.html", host=host)
        yield {"board": files.html, "viewer": viewer}
    finally:
        for n in ("br-assistant", "br-judge", "br-badjudge"):
            unregister_script(n)
        mp.undo()


def test_board_rows_flags_intervals_and_failures_in_chromium(pages: dict[str, Path], tmp_path: Path) -> None:
    exe = _chromium()
    dom, probe = _dom(exe, tmp_path, pages["board"])
    _check_layout(probe)
    rows = re.findall(r'<tr class="row" data-label="([^"]+)">\s*<td class="sticky label">([^<]+)</td>', dom)
    # Labelled variants of one assistant are separate rows; the 3-exchange run is a row of its own.
    assert [d for _, d in rows] == ["base [2 exchanges, scripted/br-judge]", "proactive",
                                    "base [3 exchanges, scripted/br-judge]", "base [2 exchanges, scripted/br-badjudge]"]
    # The differing settings are flagged on the task header and explained in a note.
    header = re.search(r'<th colspan="3" class="task flagged" data-task="math-chat">(.*?)</th>', dom, re.S)
    assert header and "exchanges, judge differ" in header.group(1)
    assert re.search(r'class="flag-note" data-task="math-chat" data-setting="exchanges">.*?2 exchanges.*?'
                     r'3 exchanges</i> \(base \[3 exchanges, scripted/br-judge\]\)', dom, re.S)
    assert '<span class="tag">⚑ 3 exchanges</span>' in dom
    # 0/3 correct: the interval's upper end is Wilson's 0.561, not 0.
    upper = f"{proportion_interval(0, 3).high:.3f}"
    assert upper != "0.000"
    assert dom.count(f'<span class="mean">0.000</span> <span class="ci">[0.000, {upper}]</span>'
                     f'<sup class="method" title="wilson 95%">W</sup>') == 4
    assert "±" not in dom
    # The failing judge: a failure count, never a value; the run is marked with its status.
    failed = re.findall(r'data-col="interactivity" data-state="failed"><span class="failed">([^<]+)</span>', dom)
    assert failed == ["failed (3)"]
    assert "⚠ run status error; 3 of 3 items failed" in dom
    assert "no bar for base [2 exchanges, scripted/br-badjudge]: failed (3)" in dom
    _screenshot(exe, tmp_path, pages["board"])


def test_committed_board_fits_or_scrolls_at_1400px(tmp_path: Path) -> None:
    exe = _chromium()
    if not COMMITTED_BOARD.exists():
        pytest.skip(f"{COMMITTED_BOARD} is not in this checkout")
    copy = tmp_path / "index.html"
    shutil.copy(COMMITTED_BOARD, copy)
    dom, probe = _dom(exe, tmp_path, copy)
    assert 'id="board-scroll"' in dom, "the committed board predates scrolling tables; regenerate it"
    _check_layout(probe)
    assert probe["wrap_scroll"] > 0


def test_viewer_reference_artefact_rationale_and_latex_in_chromium(pages: dict[str, Path], tmp_path: Path) -> None:
    exe = _chromium()
    dom, probe = _dom(exe, tmp_path, pages["viewer"])
    assert probe["resources"] == [] and probe["doc"] <= probe["inner"]
    # KaTeX typeset the LaTeX of prompts, messages and artefacts (HTML + MathML output), without a parse error.
    assert probe["katex"] >= 10 and probe["mathml"] >= 10 and probe["katex_errors"] == 0
    assert dom.count('<details class="sample') == 3 and "3 / 3 shown" in dom
    ref = re.search(r'<div class="box reference"><h4>reference</h4><div class="tex">([^<]+)</div>', dom)
    assert ref and ref.group(1).strip()
    art = re.search(r'<div class="box artefact"><h4>extracted artefact — llm by scripted/br-judge</h4>(.*?)</div>',
                    dom, re.S)
    assert art and 'class="katex"' in art.group(1)  # the artefact's math is typeset too
    assert 'class="judge-rationale">scripted verdict' in dom
    assert "scripted/br-assistant" in dom and "seed " in dom and "Ask clarifying questions" in dom
    _screenshot(exe, tmp_path, pages["viewer"], height=1400)

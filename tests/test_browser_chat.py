"""The board of a chat study, opened in headless Chromium: three scripted "people" (each with their own way of writing
and rating) sit three sessions each with three blind assistants; the board shows per-assistant ratings with
intervals, the ratings over turns as a table and as a plot (a line per assistant, measured in the browser by
counting each line's colour in the plot's left panel), and the people-vs-judge correlation.

Skipped with the reason when /usr/bin/chromium is missing (see tests/test_browser.py for installing it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import collab_harness_plugins.simulators.human_user as human_user
import pytest

from collab_harness import build_plugin_manager
from collab_harness.chat import AssistantSpec, ChatProtocol, ChatSettings, assign_assistants, run_chat
from collab_harness.config import make_config
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.report.leaderboard import write_leaderboard

WIDTH = 1400
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         f"--window-size={WIDTH},900", "--hide-scrollbars", "--virtual-time-budget=5000"]
#: matplotlib's first three colours: the assistants' lines (rows are sorted by label).
LINE_COLORS = {"base": (0x1F, 0x77, 0xB4), "collab": (0xFF, 0x7F, 0x0E), "proactive": (0x2C, 0xA0, 0x2C)}

#: After load: the plot drawn on a canvas, pixels of each line colour counted in its left panel (the ratings over
#: turns); the facts written into the DOM for --dump-dom.
PROBE = """<script>
window.addEventListener('load', function () {
  var out = {resources: performance.getEntriesByType('resource').map(function (e) { return e.name; })
                          .filter(function (n) { return n.indexOf('data:') !== 0; }),
             doc: document.documentElement.scrollWidth, inner: window.innerWidth, colors: {}};
  var img = document.querySelector('img.chat-plot');
  if (img) {
    out.natural = [img.naturalWidth, img.naturalHeight];
    out.shown = [img.getBoundingClientRect().width, img.getBoundingClientRect().height];
    var c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    var g = c.getContext('2d'); g.drawImage(img, 0, 0);
    var w = Math.floor(img.naturalWidth / 3), d = g.getImageData(0, 0, w, img.naturalHeight).data;
    var want = COLORS;
    for (var k in want) { out.colors[k] = 0; }
    for (var i = 0; i < d.length; i += 4) {
      for (var k in want) {
        var t = want[k];
        if (Math.abs(d[i] - t[0]) < 12 && Math.abs(d[i + 1] - t[1]) < 12 && Math.abs(d[i + 2] - t[2]) < 12) {
          out.colors[k]++;
        }
      }
    }
  }
  document.body.setAttribute('data-probe', JSON.stringify(out));
});
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or (str(Path("/usr/bin/chromium")) if Path("/usr/bin/chromium").exists()
                                         else None)
    if not found:
        pytest.skip("headless Chromium not installed (/usr/bin/chromium missing); `apt-get install -y chromium`")
    return found


def _chromium_run(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def _assistant(asks_every: int) -> Any:
    """Asks a question about the reader every ``asks_every`` turns, otherwise drafts from what it was told."""
    def reply(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
        n = sum(1 for m in messages if m["role"] == "assistant")
        if n % asks_every == 0:
            return "Who will read the post, and what should they take away from it?"
        told = " ".join(m["content"] for m in messages if m["role"] == "user")
        return f"Here is a draft: {told[-400:]}"
    return reply


#: Three people: how they write, and how generous they are (their rating of an average assistant).
PEOPLE = {
    "generous": (["I need a blog post about habits.", "It is for students.", "Make it upbeat.",
                  "Add a short list.", "Shorter intro please.", "Looks good."], 7),
    "strict": (["blog post, habits", "students", "less fluff", "no, shorter", "fix the ending", "ok"], 3),
    "middling": (["Could you help me write about building habits?", "Readers are first-year students.",
                  "Practical tips, please.", "One example each.", "Tighten it.", "Thanks."], 5),
}
#: How each assistant moves a person's ratings: after turn 3, after turn 6, outcome, interaction (the shape of the
#: paper's Figure 7: the collaborative assistant's ratings rise over turns, the base one's fall).
EFFECT = {"base": (0, -1, 0, -1), "proactive": (1, 1, 1, 2), "collab": (1, 3, 2, 3)}


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("chat-board")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLAB_HARNESS_CACHE_DIR", str(root / "cache"))
    names = {"base": 99, "proactive": 2, "collab": 1}
    models = {label: register_script(f"cb-{label}", _assistant(every)) for label, every in names.items()}
    try:
        host = build_plugin_manager(strict=False, block=[])
        if "human-user" not in host.registry.names("simulator"):
            host.add_plugin(human_user, name="human-user")
        config = make_config({"task": "doc-chat", "assistant": models["base"], "user": "human-user",
                              "cache": False, "seed": 3})
        settings = ChatSettings(assistants=[AssistantSpec(label=k, model=v) for k, v in models.items()], blind=True,
                                sessions=9, protocol=ChatProtocol(min_turns=6, rate_every=3))
        study = root / "study"
        sittings = []
        order = assign_assistants(9, 3, 3)  # the study's plan (seed 3): who meets whom is known in advance
        for i in range(9):
            # A Latin square: each person sits once per block and meets each assistant once.
            messages, base = PEOPLE[list(PEOPLE)[(i // 3 + order[i]) % 3]]
            t3, t6, outcome, interaction = (str(base + e) for e in EFFECT[list(names)[order[i]]])
            inputs = [messages[0], messages[1], messages[2], t3, messages[3], messages[4], messages[5], t6, "/done",
                      outcome, interaction, "", ""]
            out = run_chat(config, settings, host, study, frontend=human_user.ScriptedFrontend(inputs))
            assert out.status == "complete", out
            sittings.append(out.record)
        files = write_leaderboard([study], root / "board", command="(test)", host=host)
        yield {"html": files.html, "json": json.loads(files.json.read_text()), "records": sittings, "root": root}
    finally:
        for label in names:
            unregister_script(f"cb-{label}")
        mp.undo()


def test_board_of_three_scripted_people_shows_ratings_over_turns(board: dict[str, Any], tmp_path: Path) -> None:
    exe = _chromium()
    page: Path = board["html"]
    colors = json.dumps({k: list(v) for k, v in LINE_COLORS.items()})
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE.replace("COLORS", colors)
                                                               + "\n</body>"), encoding="utf-8")
    r = _chromium_run(exe, tmp_path, "--dump-dom", probed.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    m = re.search(r'data-probe="([^"]*)"', dom)
    assert m, "the probe did not run"
    probe = json.loads(html.unescape(m.group(1)))
    assert probe["resources"] == [] and probe["doc"] <= probe["inner"]  # self-contained, nothing cut off
    # The plot is there, decoded and shown at a readable size.
    assert probe["natural"][0] >= 1000 and probe["natural"][1] >= 300
    assert probe["shown"][0] >= 900
    # A line per assistant in the ratings-over-turns panel: each colour is drawn there.
    for label, count in probe["colors"].items():
        assert count > 400, (label, probe["colors"])  # a legend swatch alone is ~100 pixels
    # The table behind the plot: every assistant rated after turns 3 and 6 by its three sessions.
    rows = re.findall(r'<tr class="over-turns-row" data-label="([^"]+)">(.*?)</tr>', dom, re.S)
    assert [label for label, _ in rows] == ["base", "collab", "proactive"]
    for label, cells in rows:
        assert re.findall(r'data-turn="(\d+)"', cells) == ["3", "6"]
        assert cells.count("n=3") == 2
        means = [float(x) for x in re.findall(r'data-turn="\d+">([0-9.]+)', cells)]
        assert means == [5 + EFFECT[label][0], 5 + EFFECT[label][1]]
    # Per assistant: sessions and the final ratings with intervals (bootstrap inside 1-10).
    chat_rows = re.findall(r'<tr class="chat-row" data-label="([^"]+)">.*?<td class="sessions">(\d+)', dom, re.S)
    assert chat_rows == [("base", "3"), ("collab", "3"), ("proactive", "3")]
    outcome = re.findall(r'data-col="human.outcome" data-state="value"><span class="mean">([0-9.]+)</span> '
                         r'<span class="ci">\[([0-9.]+), ([0-9.]+)\]</span><sup class="method"', dom)
    assert len(outcome) == 3
    for mean, lo, hi in outcome:
        assert 1.0 <= float(lo) <= float(mean) <= float(hi) <= 10.0
    # Every person met every assistant once: an assistant's mean outcome is the people's mean (5) plus its effect.
    assert [round(float(mu), 2) for mu, _, _ in outcome] == [5 + EFFECT[a][2] for a in ("base", "collab", "proactive")]
    # People vs the judge, on the same nine conversations.
    assert re.search(r'<tr class="correlation" data-group="all assistants" data-human="human.interaction">'
                     r'\s*<td>all assistants</td><td>human.interaction</td><td>interactivity</td><td>9</td>', dom)
    assert "Spearman" in dom and "blind" in dom
    # The board is the researcher's page (the people never see it): it names the models behind the labels.
    assert "scripted/cb-collab" in dom
    shot = tmp_path / "board.png"
    r = _chromium_run(exe, tmp_path, f"--window-size={WIDTH},1600", f"--screenshot={shot}", page.as_uri())
    assert r.returncode == 0 and shot.exists() and shot.stat().st_size > 5000


def test_board_json_has_the_over_turns_series(board: dict[str, Any]) -> None:
    data = board["json"]["chat"]
    series = {r["label"]: {int(t): c["mean"] for t, c in r["over_turns"].items()} for r in data["rows"]}
    # Recomputed from the records: the mean rating after each turn, per assistant.
    expect: dict[str, dict[int, list[int]]] = {}
    for rec in board["records"]:
        for x in rec.ratings:
            expect.setdefault(rec.assistant, {}).setdefault(x.after_turn, []).append(x.value)
    assert series == {a: {t: sum(v) / len(v) for t, v in ts.items()} for a, ts in expect.items()}
    assert (board["root"] / "board" / "plots" / "chat-doc-chat.png").exists()

"""The HTML leaderboard and the conversation viewer, opened in headless Chromium (Debian's ``chromium``).

If /usr/bin/chromium is missing, the test installs it only when COLLAB_HARNESS_INSTALL_CHROMIUM=1 (apt-get, as
root); otherwise it is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from evaluate_scripts import assistant_reply, judge_reply

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.evaluation import run_evaluation as evaluate
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.report.leaderboard import write_leaderboard
from collab_harness.report.viewer import write_viewer

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900"]


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


def _check_png(path: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    assert path.exists() and path.stat().st_size > 5000, "no screenshot written"
    img = mpimg.imread(str(path))
    assert img.shape[0] >= 800 and img.shape[1] >= 1200
    gray = img[..., :3].mean(axis=2)
    # Not blank: plenty of dark (text, table borders) and light (background) pixels.
    assert (gray < 0.4).mean() > 0.002 and (gray > 0.9).mean() > 0.3 and float(np.std(gray)) > 0.05


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("browser")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLAB_HARNESS_CACHE_DIR", str(root / "cache"))
    a = register_script("br-assistant", assistant_reply)
    j = register_script("br-judge", judge_reply)
    try:
        host = build_plugin_manager(strict=False, block=[])
        runs = []
        for task in ("math-chat", "doc-chat"):
            d = root / task
            evaluate(make_config({"task": task, "limit": 3, "assistant": a, "judge": j, "max_exchanges": 2}),
                     host, d)
            runs.append(d)
        files = write_leaderboard(runs, root / "board", command="(test)")
        viewer = write_viewer(runs[0], root / "viewer.html")
        yield files.html, viewer
    finally:
        unregister_script("br-assistant")
        unregister_script("br-judge")
        mp.undo()


def test_leaderboard_in_headless_chromium(pages: tuple[Path, Path], tmp_path: Path) -> None:
    exe = _chromium()
    html, _ = pages
    dom = _run(exe, tmp_path, "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="leaderboard"' in dom.stdout and dom.stdout.count('<tr class="row">') == 1
    assert "scripted/br-assistant" in dom.stdout and "math-chat" in dom.stdout and "doc-chat" in dom.stdout
    shot = tmp_path / "board.png"
    r = _run(exe, tmp_path, f"--screenshot={shot}", html.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    _check_png(shot)


def test_viewer_in_headless_chromium(pages: tuple[Path, Path], tmp_path: Path) -> None:
    exe = _chromium()
    _, viewer = pages
    dom = _run(exe, tmp_path, "--dump-dom", viewer.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="sample') == 3
    # The filter script ran in the browser: it wrote the count of shown samples.
    assert "3 / 3 shown" in dom.stdout
    shot = tmp_path / "viewer.png"
    r = _run(exe, tmp_path, f"--screenshot={shot}", viewer.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    _check_png(shot)

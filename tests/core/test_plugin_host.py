"""The plugin host: attribution, isolation of broken plugins, duplicates, blocking, strict mode, check_pending."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from collab_harness import (
    ComponentNotFound,
    DuplicateComponent,
    PluginError,
    Score,
    ScoringContext,
    build_plugin_manager,
    hookimpl,
)
from collab_harness.components import Metric, TrainerBackend, TrainResult
from collab_harness.testing import FixedJudge, ScriptedUser, ToyTask


class _WordCount(Metric):
    name: ClassVar[str] = "word-count-test"

    def compute(self, ctx: ScoringContext) -> Score:
        return Score(component=self.name, value=0.0)


class _CopyTrainer(TrainerBackend):
    """Registration double: "trains" by copying the data file (no model involved)."""

    name: ClassVar[str] = "copy-trainer-test"

    def train(self, *, data: str, model: str, out: Path) -> TrainResult:
        out.mkdir(parents=True, exist_ok=True)
        (out / "data.copy").write_bytes(Path(data).read_bytes())
        return TrainResult(output_dir=out, steps=0)


def _host(*plugins: object, strict: bool = False, warnings: list[str] | None = None):  # type: ignore[no-untyped-def]
    sink = warnings if warnings is not None else []
    host = build_plugin_manager(strict=strict, block=[], load_entry_points=False, warn=sink.append)
    for i, p in enumerate(plugins):
        host.add_plugin(p, name=f"p{i}")
    return host


class ToyPlugin:
    @hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(ToyTask)

    @hookimpl
    def register_judges(self, register):  # type: ignore[no-untyped-def]
        register(FixedJudge)

    @hookimpl
    def register_simulators(self, register):  # type: ignore[no-untyped-def]
        register(ScriptedUser)

    @hookimpl
    def register_metrics(self, register):  # type: ignore[no-untyped-def]
        register(_WordCount)

    @hookimpl
    def register_trainers(self, register):  # type: ignore[no-untyped-def]
        register(_CopyTrainer)


def test_components_are_attributed_to_their_plugin() -> None:
    host = _host(ToyPlugin())
    spec = host.registry.get("task", "toy")
    assert spec.plugin == "p0" and spec.cls is ToyTask
    assert host.registry.get("judge", "fixed-judge").plugin == "p0"
    assert host.plugins[0].components == {
        "task": ["toy"],
        "metric": ["word-count-test"],
        "judge": ["fixed-judge"],
        "simulator": ["scripted-user"],
        "trainer": ["copy-trainer-test"],
    }


def test_duplicate_name_is_an_error_naming_both_plugins() -> None:
    warnings: list[str] = []
    host = _host(ToyPlugin(), ToyPlugin(), warnings=warnings)
    assert [p.name for p in host.plugins] == ["p0"]
    assert "'p0'" in warnings[0] and "'p1'" in warnings[0] and "registered twice" in warnings[0]
    with pytest.raises(DuplicateComponent, match=r"p0.*p1"):
        _host(ToyPlugin(), ToyPlugin(), strict=True)


def test_broken_registration_leaves_nothing_behind() -> None:
    class Broken:
        @hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(ToyTask)
            raise RuntimeError("boom in register")

    warnings: list[str] = []
    host = _host(Broken(), warnings=warnings)
    assert host.registry.names("task") == []
    assert host.plugins == [] and "boom in register" in str(host.load_errors[0])
    assert len(warnings) == 1 and "\n" not in warnings[0]


def test_invalid_component_class_rejected() -> None:
    class NotAComponent:
        name = "nope"

    class Bad:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            register(NotAComponent)

    host = _host(Bad())
    assert "not a subclass" in host.load_errors[0].error
    with pytest.raises(PluginError, match="not a subclass"):
        _host(Bad(), strict=True)


def test_misspelled_hook_fails_at_startup() -> None:
    class Typo:
        @hookimpl
        def register_taks(self, register):  # type: ignore[no-untyped-def]
            pass

    host = _host(Typo())
    assert host.plugins == [] and "register_taks" in host.load_errors[0].error
    with pytest.raises(PluginError, match="register_taks"):
        _host(Typo(), strict=True)


def test_unknown_name_suggests_and_lists() -> None:
    host = _host(ToyPlugin())
    with pytest.raises(ComponentNotFound) as e:
        host.registry.get("task", "tyo")
    assert "did you mean 'toy'" in str(e.value) and "Available: toy" in str(e.value)


def test_unknown_name_shows_load_errors_of_failed_plugins() -> None:
    class Broken:
        @hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            raise ImportError("needs the frobnicate extra")

    host = _host(ToyPlugin(), Broken())
    with pytest.raises(ComponentNotFound, match="frobnicate"):
        host.registry.get("task", "frob-task")


def test_block_by_name() -> None:
    host = build_plugin_manager(strict=False, block=["p0"], load_entry_points=False)
    assert host.add_plugin(ToyPlugin(), name="p0") is None
    assert host.registry.names("task") == []


def test_remove_plugin_unregisters_components() -> None:
    host = _host(ToyPlugin())
    host.remove_plugin("p0")
    assert host.registry.names("task") == [] and host.pm.get_plugin("p0") is None


def test_create_validates_options() -> None:
    host = _host(ToyPlugin())
    assert host.registry.create("judge", "fixed-judge", {"value": 0.25}).options.value == 0.25  # type: ignore[attr-defined]
    from collab_harness import ConfigError

    with pytest.raises(ConfigError, match="fixed-judge"):
        host.registry.create("judge", "fixed-judge", {"valeu": 0.25})


def test_builtins_come_through_the_entry_point_group() -> None:
    host = build_plugin_manager(strict=False, block=[])
    builtin = [p for p in host.plugins if p.builtin]
    assert builtin, "built-in plugins must be registered through the collab_harness entry-point group"
    assert all(p.distribution == "collab-harness" for p in builtin)


def test_env_strict_and_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_HARNESS_STRICT_PLUGINS", "1")
    monkeypatch.setenv("COLLAB_HARNESS_BLOCK_PLUGINS", "a, b")
    host = build_plugin_manager(load_entry_points=False)
    assert host.strict is True and host.blocked == ["a", "b"]


def test_builtin_plugin_modules_import_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom collab_harness import build_plugin_manager\n"
        "h = build_plugin_manager()\n"
        "bad = [m for m in ('torch', 'transformers', 'trl', 'litellm') if m in sys.modules]\n"
        "print(bad)\nassert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

"""``pass_rate``: the extracted code passes the example's unittest suite in the sandbox (all or nothing)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Metric, ScoringContext
from collab_harness.types import Score

__all__ = ["PassRate", "PassRateOptions"]


class PassRateOptions(ComponentOptions):
    timeout_s: float = Field(10.0, gt=0, description="wall-clock seconds for the whole test run")
    memory_mb: int = Field(1024, ge=64, description="address-space limit of the child")
    max_processes: int = Field(32, ge=1, description="processes the code may run at once")
    max_file_size_mb: int = Field(64, ge=1, description="largest file the code may write")
    network: bool = Field(False, description="allow network access (never by default)")


class PassRate(Metric):
    """1.0 iff every test of the example's suite passes, else 0.0; failures, timeouts and crashes all score 0
    with the reason in ``details``. A missing artefact or test suite is a failed score, not a 0."""

    name: ClassVar[str] = "pass_rate"
    description: ClassVar[str] = "extracted code passes the task's unittest suite in a sandbox (all-or-nothing)"
    Options: ClassVar[type[ComponentOptions]] = PassRateOptions
    needs_artefact: ClassVar[bool] = True

    def compute(self, ctx: ScoringContext) -> Score:
        from collab_harness_plugins.metrics.sandbox import SandboxLimits, run_tests
        from collab_harness_plugins.tasks.code_chat import extract_code, with_code_prompt

        ex = ctx.example
        tests = ex.metadata.get("test")
        if not tests:
            return Score.failed(self.name, f"example {ex.id!r} has no unittest suite in metadata['test']")
        code = ctx.artefact
        source = "artefact"
        if code is None and ctx.task is not None:
            code, source = ctx.task.extract_rule(ex, ctx.conversation), "task rule"
        if code is None:
            replies = ctx.conversation.by_role("assistant")
            if not replies:
                return Score.failed(self.name, f"example {ex.id!r}: no code to run (no assistant message)")
            code, source = extract_code(replies[-1].content), "last assistant message"
        code = with_code_prompt(extract_code(code), str(ex.metadata.get("code_prompt", "")))
        opts: Any = self.options
        limits = SandboxLimits(
            timeout_s=opts.timeout_s,
            memory_mb=opts.memory_mb,
            max_processes=opts.max_processes,
            max_file_size_mb=opts.max_file_size_mb,
            network=opts.network,
        )
        try:
            res = run_tests(code, str(tests), limits)
        except OSError as e:  # the sandbox itself could not start: not the code's fault
            return Score.failed(self.name, f"example {ex.id!r}: sandbox failed to start: {e}")
        return Score(
            component=self.name,
            value=1.0 if res.passed else 0.0,
            values={"tests_passed": float(res.tests_passed), "tests_total": float(res.tests_total)},
            details={
                "status": res.status,
                "reason": res.reason,
                "failures": list(res.messages),
                "code_source": source,
                "duration_s": round(res.duration_s, 3),
                "isolation": res.isolation,
                "network_isolated": bool(res.isolation.get("network_isolated", False)),
            },
        )


@hookimpl
def register_metrics(register: Any) -> None:
    register(PassRate)

"""``pass_rate``: the extracted code passes the example's unittest suite in the sandbox (all or nothing).

Code is taken as it comes: an extracted artefact (``ctx.artefact``) or the task's extraction rule already *is*
code and runs as is; only a raw assistant message goes through fence extraction. A missing library that the
example's tests or reference need is the environment's failure (a failed score with ``failure="environment"``),
not the code's; a module that only the candidate imports and that does not exist is the candidate's fault (0).
Code that reaches for the verdict scores 0 with a reason starting ``tampered:`` (:mod:`.sandbox`).

The test run is a verdict of the scoring executor (:func:`collab_harness.executors.run_scoring`): a thread of the
local ``sandbox`` pool by default, a Ray worker with ``--executor ray`` (:func:`sandbox_verdict` runs there,
sandbox and all). A verdict retried after its worker died says so in ``details["scoring_retries"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pydantic import Field

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Metric, ScoringContext, ValueKind
from collab_harness.types import Example, Score

if TYPE_CHECKING:
    from .sandbox import SandboxLimits

__all__ = ["PassRate", "PassRateOptions", "VerdictJob", "environment_failure", "sandbox_verdict"]


class PassRateOptions(ComponentOptions):
    timeout_s: float = Field(10.0, gt=0, description="wall-clock seconds for the whole test run")
    memory_mb: int = Field(1024, ge=64, description="address-space limit of the child")
    max_processes: int = Field(32, ge=1, description="processes the code may run at once")
    max_file_size_mb: int = Field(64, ge=1, description="largest file the code may write")
    max_disk_mb: int = Field(256, ge=1, description="everything the code may write to its directory, in total")
    network: bool = Field(False, description="allow network access (never by default)")


def environment_failure(example: Example, status: str, missing: str | None, by_solution: bool = True) -> str | None:
    """The module whose absence explains a run, when it is the environment's fault: the runner could not import
    what the tests import (``status == "environment"``), or the code failed on a module this environment lacks and
    that the example's tests or reference need, or that a library or the tests asked for (``by_solution`` False:
    pandas wanting openpyxl). None when the candidate is to blame: it imported, itself, a module nobody needs."""
    from collab_harness_plugins.tasks.code_env import module_available, required_modules, top_level

    if status == "environment":
        return top_level(missing) if missing else "?"
    if not missing or status not in {"error", "fail"}:
        return None
    top = top_level(missing)
    if module_available(top):
        return None
    if top in required_modules(example) or not by_solution:
        return top
    return None


class PassRate(Metric):
    """1.0 iff every test of the example's suite passes, else 0.0; failures, timeouts, crashes and tampering all
    score 0 with the reason in ``details``. A missing artefact or test suite, or a library the task needs that the
    environment lacks, is a failed score, not a 0."""

    name: ClassVar[str] = "pass_rate"
    description: ClassVar[str] = "extracted code passes the task's unittest suite in a sandbox (all-or-nothing)"
    Options: ClassVar[type[ComponentOptions]] = PassRateOptions
    needs_artefact: ClassVar[bool] = True
    value_kind: ClassVar[ValueKind | None] = "proportion"
    #: Test runs go to the named "sandbox" executor, apart from cheap metrics.
    executor: ClassVar[str] = "sandbox"

    def compute(self, ctx: ScoringContext) -> Score:
        """The verdict, here and now (blocking). Runs use :meth:`score`, which sends the sandbox run to the scoring
        executor (a local pool, or a Ray worker with ``--executor ray``)."""
        job = self._job(ctx)
        return job if isinstance(job, Score) else sandbox_verdict(*job)

    async def score(self, ctx: ScoringContext) -> Score:
        from collab_harness import executors

        job = self._job(ctx)  # cheap: picks the code; the test run is what goes to the executor
        if isinstance(job, Score):
            return self.check_range(job)
        try:
            res = await executors.run_scoring(self.executor, sandbox_verdict, *job)
        except executors.ScoringWorkerLost as e:
            return Score.failed(self.name, f"example {ctx.example.id!r}: {e}", failure="executor",
                                scoring_retries=e.attempts, scoring_retry_reasons=e.reasons)
        score = res.value
        if res.retries:  # a worker died under this verdict: say so beside it
            score = score.model_copy(update={"details": {**score.details, **res.details()}})
        return self.check_range(score)

    def _job(self, ctx: ScoringContext) -> VerdictJob | Score:
        """What the sandbox must run for ``ctx`` (a failed score when there is nothing to run)."""
        from collab_harness_plugins.metrics.sandbox import SandboxLimits
        from collab_harness_plugins.tasks.code_chat import extract_code, with_code_prompt

        ex = ctx.example
        tests = ex.metadata.get("test")
        if not tests:
            return Score.failed(self.name, f"example {ex.id!r} has no unittest suite in metadata['test']")
        # Extraction happens once, upstream: an artefact or the task's rule is code already and is not re-read
        # for fences (a docstring showing a fenced example would be cut down to it).
        code = ctx.artefact
        source = "artefact"
        if code is None and ctx.task is not None:
            code, source = ctx.task.extract_rule(ex, ctx.conversation), "task rule"
        if code is None:
            replies = ctx.conversation.by_role("assistant")
            if not replies:
                return Score.failed(self.name, f"example {ex.id!r}: no code to run (no assistant message)")
            code, source = extract_code(replies[-1].content), "last assistant message"
        code = with_code_prompt(code, str(ex.metadata.get("code_prompt", "")))
        opts: Any = self.options
        limits = SandboxLimits(
            timeout_s=opts.timeout_s,
            memory_mb=opts.memory_mb,
            max_processes=opts.max_processes,
            max_file_size_mb=opts.max_file_size_mb,
            disk_mb=opts.max_disk_mb,
            network=opts.network,
        )
        entry = str(ex.metadata.get("entry_point") or "task_func")
        return VerdictJob(ex, code, str(tests), limits, entry, source, self.name)


class VerdictJob(NamedTuple):
    """The arguments of :func:`sandbox_verdict`: everything a worker needs, all picklable."""

    example: Example
    code: str
    tests: str
    limits: SandboxLimits
    entry_point: str
    code_source: str
    component: str = "pass_rate"


def sandbox_verdict(example: Example, code: str, tests: str, limits: SandboxLimits, entry_point: str,
                    code_source: str, component: str = "pass_rate") -> Score:
    """Run ``tests`` against ``code`` in the sandbox and turn the result into a score. Runs where the sandbox runs:
    a thread of the local ``sandbox`` pool, or a Ray worker; whether a missing module is the environment's fault
    is decided there too, by the environment the code ran in."""
    from collab_harness_plugins.metrics.sandbox import run_tests

    try:
        res = run_tests(code, tests, limits, entry_point=entry_point)
    except OSError as e:  # the sandbox itself could not start: not the code's fault
        return Score.failed(component, f"example {example.id!r}: sandbox failed to start: {e}", failure="sandbox")
    missing = environment_failure(example, res.status, res.missing_module, res.missing_by_solution)
    if missing is not None:
        why = f"missing module {missing}" if res.status != "environment" or "No module" in res.reason else (
            res.reason.removeprefix("environment: "))
        return Score.failed(
            component, f"environment: {why}", failure="environment", module=missing, status=res.status,
            sandbox_reason=res.reason, code_source=code_source,
        )
    details: dict[str, Any] = {
        "status": res.status,
        "reason": res.reason,
        "failures": list(res.messages),
        "code_source": code_source,
        "duration_s": round(res.duration_s, 3),
        "isolation": res.isolation,
        "network_isolated": bool(res.isolation.get("network_isolated", False)),
    }
    if res.tampered:
        details["tampered"] = list(res.tampered)
    if res.missing_module:
        details["missing_module"] = res.missing_module
    return Score(
        component=component,
        value=1.0 if res.passed else 0.0,
        values={"tests_passed": float(res.tests_passed), "tests_total": float(res.tests_total)},
        details=details,
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register(PassRate)

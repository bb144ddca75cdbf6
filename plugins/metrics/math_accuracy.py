"""``math_accuracy``: 1.0 iff the extracted final answer is mathematically equivalent to the reference.

Equivalence is math-verify's (``parse`` + ``verify``). math-verify bounds its own time with ``signal.alarm``, which
only works on the main thread, while metrics run in worker threads (``asyncio.to_thread``). So every check runs in a
small pool of spawned worker processes with math-verify's own timeouts disabled; the caller waits at most
``timeout_s`` and kills (and later replaces) a worker that overruns, so one pathological expression can neither hang
a run nor poison later checks. A timeout or a dead checker is a failed score, never a 0.

Which comparison applies depends on the reference (:func:`classify_answer`), because math-verify reads any letters as
symbols: "No" would parse as ``N*o`` and equal "On", and "0 is the only possible value" as ``0*E*a*...`` = 0:

- a *text* reference (words only: no digit, no math notation; ``\\text{}`` wrappers and ``$`` ignored), e.g.
  "No", "\\text{even}", "Monday": equal iff the normalised texts are equal (case, punctuation, the articles a/an/the
  and spacing ignored). math-verify is not consulted.
- a *sentence* reference (math plus prose words), e.g. "0 is the only possible value": its math part ("0"; several
  parts are joined as a list) is the reference; an answer that is itself a sentence is reduced the same way.
- any other reference (*math*): math-verify on the answer as given, or on its math part when the answer is a
  sentence ("1 is the only possible value" -> "1"; "5 inches" -> "5").
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import Field

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Metric, ScoringContext, ValueKind
from collab_harness.types import Score

__all__ = [
    "AnswerForm",
    "CheckError",
    "CheckResult",
    "CheckTimeout",
    "MathAccuracy",
    "MathAccuracyOptions",
    "check_equivalent",
    "classify_answer",
    "register_metrics",
    "shutdown_pool",
]

#: Time a fresh worker may take to start and import math-verify/sympy (not counted against a check's timeout).
_STARTUP_TIMEOUT_S = 120.0
_MODULE = "collab_harness_plugins.metrics.math_accuracy"


class CheckError(RuntimeError):
    """The checker itself failed (crashed, could not start): the answer was not judged."""


class CheckTimeout(CheckError):
    """One check overran its time budget; its worker was killed."""


class CheckResult(NamedTuple):
    equal: bool
    gold_parsed: str
    pred_parsed: str
    seconds: float
    #: "math" (math-verify on the strings as given), "text" (normalised text of a text reference), "math of
    #: sentence" (math-verify on the math part of a sentence reference or answer).
    mode: str = "math"


# ------------------------------------------------------------------------------------------ answer forms

AnswerKind = Literal["text", "sentence", "math"]


class AnswerForm(NamedTuple):
    """How an answer string is compared: ``kind`` and what is compared (``core``): the normalised text for
    ``text``, the math part for ``sentence``, the string itself for ``math``."""

    kind: AnswerKind
    core: str


_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|textsf|texttt|textnormal|mbox|mathrm)\s*\{([^{}]*)\}")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}")
_DELIMITER = re.compile(r"(?<!\\)\$|\\[()\[\]]|\\[,;:! ]|~")
_WORDS_ONLY = re.compile(r"[A-Za-z\s,.;:!?'\u2019()\-]+")
_TWO_LETTERS = re.compile(r"[A-Za-z]{2,}")
#: A run of letters standing alone: not part of a LaTeX command (\\frac), of a product such as 2xy, or a function
#: name applied to an argument (sqrt(2)).
_WORD = re.compile(r"(?<![\\A-Za-z0-9])[A-Za-z]{2,}(?![A-Za-z0-9(])")
#: Short words that are prose; longer runs (4+ letters) are prose anyway. Short letter runs not listed here (xy, abc,
#: sin, lcm) are read as math.
_SHORT_PROSE = frozenset({
    "is", "are", "was", "the", "an", "of", "to", "in", "on", "at", "by", "for", "all", "any", "no", "yes", "not",
    "be", "it", "its", "as", "if", "so", "we", "has", "can", "one", "two", "way", "ways",
})
#: Joiners: alone they do not make a sentence (math-verify reads "3 or 4" and "x = 3 and x = 4" as sets itself).
_JOINERS = frozenset({"or", "and"})
_ARTICLES = frozenset({"a", "an", "the"})


def _plain(answer: str) -> str:
    """``answer`` without text wrappers (kept: their content), matrix environment names, math delimiters and
    LaTeX spacing."""
    s = answer
    for _ in range(3):  # nested wrappers (\\textbf{\\text{No}}) unwrap from the inside out
        s2 = _TEXT_WRAPPER.sub(r" \1 ", s)
        if s2 == s:
            break
        s = s2
    s = _ENVIRONMENT.sub(" ", s)
    return " ".join(_DELIMITER.sub(" ", s).split())


def _normalise_text(plain: str) -> str:
    words = re.sub(r"[^a-z0-9]+", " ", plain.lower()).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def classify_answer(answer: str) -> AnswerForm:
    """Classify an answer (or reference) as ``text``, ``sentence`` or ``math`` (see the module docstring)."""
    plain = _plain(answer)
    if _WORDS_ONLY.fullmatch(plain) and _TWO_LETTERS.search(plain):
        return AnswerForm("text", _normalise_text(plain))
    words = [m for m in _WORD.finditer(plain) if len(m.group(0)) >= 4 or m.group(0).lower() in _SHORT_PROSE]
    if not words:
        return AnswerForm("math", answer)
    # The math part: what lies between prose words (and joiners), trimmed of sentence punctuation.
    pieces = re.split(
        r"(?<![\\A-Za-z0-9])(?:[A-Za-z]{4,}|" + "|".join(sorted(_SHORT_PROSE | _JOINERS)) + r")(?![A-Za-z0-9(])",
        plain,
        flags=re.IGNORECASE,
    )
    parts = [p.strip(" ,.;:!?=") for p in pieces]
    # A piece starting with ^ or _ is the exponent or index of a removed word (a unit: "6 units^2").
    return AnswerForm("sentence", ", ".join(p for p in parts if p and p[0] not in "^_"))


# ------------------------------------------------------------------------------------- worker-process side


def _wrap(answer: str) -> str:
    """Make a bare answer parseable as LaTeX: math-verify extracts boxed content with the highest priority."""
    a = answer.strip()
    if "\\boxed" in a or "\\fbox" in a:
        return a
    for lo, hi in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if a.startswith(lo) and a.endswith(hi) and len(a) > len(lo) + len(hi):
            a = a[len(lo) : -len(hi)].strip()
            break
    return f"$\\boxed{{{a}}}$"


def _parse(text: str) -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    parsed = parse(_wrap(text), extraction_config=[LatexExtractionConfig()], parsing_timeout=None)
    if not parsed:
        # Plain-text answers ("0.5", "x = 3 or 4") that are not valid LaTeX.
        parsed = parse(
            text,
            extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
            parsing_timeout=None,
        )
    return list(parsed)


def _check(gold: str, pred: str, float_rounding: int, numeric_precision: int, strict: bool) -> tuple[bool, str, str]:
    from math_verify import verify

    g = _parse(gold)
    p = _parse(pred)
    if not g or not p:
        return False, repr(g), repr(p)
    ok = verify(g, p, float_rounding=float_rounding, numeric_precision=numeric_precision, strict=strict,
                timeout_seconds=None)
    return bool(ok), repr(g), repr(p)


def _worker_main() -> None:
    """Entry point of a checker process (``python -m collab_harness_plugins.metrics.math_accuracy``): JSON lines
    in on stdin, JSON lines out on the original stdout; import once, signal readiness, answer until EOF."""
    import json
    import logging
    import signal
    import sys

    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # stray prints from sympy & co. must not corrupt the protocol stream
    logging.disable(logging.WARNING)  # math-verify warns that its timeout is disabled: we bound time ourselves
    import math_verify  # noqa: F401  (warm the import before reporting ready)

    out.write(json.dumps(["ready", None]) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            gold, pred, rounding, precision, strict, budget = json.loads(line)
            # Backstop for an orphaned worker (parent gone, check stuck): SIGALRM's default action ends the
            # process. The parent normally kills an overrunning worker long before this fires.
            signal.alarm(int(budget) + 30)
            reply = ["ok", list(_check(gold, pred, rounding, precision, strict))]
        except Exception as e:  # report, don't die: the worker stays usable
            reply = ["error", f"{type(e).__name__}: {e}"]
        finally:
            signal.alarm(0)
        out.write(json.dumps(reply) + "\n")
        out.flush()


# ------------------------------------------------------------------------------------------- caller side


class _Worker:
    """One checker subprocess. A plain subprocess (not multiprocessing): spawn would re-import the caller's main
    script, and fork is unsafe in a multi-threaded parent."""

    def __init__(self) -> None:
        import subprocess
        import sys

        # The child must import this module the way the parent did, even from a source tree or a custom path.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", _MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env=env,
        )
        self._buf = b""
        try:
            status, _ = self._read(_STARTUP_TIMEOUT_S)
        except CheckTimeout as e:
            self.kill()
            raise CheckError(f"math-verify worker did not start within {_STARTUP_TIMEOUT_S:.0f}s") from e
        except CheckError:
            self.kill()
            raise CheckError("math-verify worker died while starting (is math-verify installed?)") from None
        if status != "ready":
            self.kill()
            raise CheckError(f"math-verify worker sent {status!r} instead of ready")

    def _read(self, timeout: float) -> tuple[str, Any]:
        import json
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckTimeout(f"math-verify check exceeded {timeout:g}s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise CheckError(f"math-verify worker died (exit code {self.proc.poll()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        status, value = json.loads(line)
        return str(status), value

    def call(self, payload: tuple[Any, ...], timeout: float) -> tuple[bool, str, str]:
        import json

        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps([*payload, timeout]) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:
            raise CheckError(f"math-verify worker is gone (exit code {self.proc.poll()})") from e
        status, value = self._read(timeout)
        if status != "ok":
            raise CheckError(f"math-verify raised {value}")
        equal, g, p = value
        return bool(equal), str(g), str(p)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except Exception:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the worker's loop ends
            self.proc.wait(2)
        except Exception:
            pass
        self.kill()


class _Pool:
    """At most ``size`` checker processes, created lazily, shared by all threads; a broken worker is dropped and
    a fresh one takes its place on the next check."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[_Worker] = []
        self._live = 0
        self._cond = threading.Condition()
        self._closed = False

    def _acquire(self) -> _Worker:
        with self._cond:
            while not self._idle and self._live >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._live += 1
        try:
            return _Worker()
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            raise

    def _release(self, w: _Worker, healthy: bool) -> None:
        if not healthy or not w.alive() or self._closed:
            w.kill()
            with self._cond:
                self._live -= 1
                self._cond.notify()
            return
        with self._cond:
            self._idle.append(w)
            self._cond.notify()

    def run(self, payload: tuple[Any, ...], timeout: float) -> tuple[bool, str, str]:
        w = self._acquire()
        healthy = False
        try:
            out = w.call(payload, timeout)
            healthy = True
            return out
        except CheckTimeout:
            raise
        except CheckError:
            healthy = w.alive()  # an exception inside math-verify leaves the worker usable
            raise
        finally:
            self._release(w, healthy)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
        for w in idle:
            w.close()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._closed:
            size = int(os.environ.get("COLLAB_HARNESS_MATH_WORKERS", "0")) or max(1, min(4, os.cpu_count() or 1))
            _pool = _Pool(size)
        return _pool


def shutdown_pool() -> None:
    """Stop the checker processes (also run at interpreter exit)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


atexit.register(shutdown_pool)


def check_equivalent(
    reference: str,
    answer: str,
    *,
    timeout_s: float = 5.0,
    float_rounding: int = 6,
    numeric_precision: int = 15,
    strict: bool = True,
) -> CheckResult:
    """Whether ``answer`` is equivalent to ``reference``: text comparison for a text reference, math-verify (in a
    worker process) otherwise, on the math part of sentences (rules in the module docstring).

    Thread-safe. Raises :class:`CheckTimeout` when a check overruns ``timeout_s`` and :class:`CheckError` when the
    checker fails; a wrong or unparseable answer is simply ``equal=False``.
    """
    t0 = time.perf_counter()
    gold = classify_answer(reference)
    pred = classify_answer(answer)
    if gold.kind == "text":
        equal = pred.kind == "text" and pred.core == gold.core
        return CheckResult(equal, f"text: {gold.core}", f"text: {pred.core}", time.perf_counter() - t0, "text")
    # A sentence is compared by its math part only: its prose must never reach math-verify as a product of letters.
    g = gold.core if gold.kind == "sentence" else reference
    p = pred.core if pred.kind == "sentence" else answer
    if not g or not p:  # a sentence with no math in it: only the same sentence matches
        same = _normalise_text(_plain(reference)) == _normalise_text(_plain(answer))
        return CheckResult(same, f"text: {reference}", f"text: {answer}", time.perf_counter() - t0, "text")
    mode = "math of sentence" if "sentence" in (gold.kind, pred.kind) else "math"
    equal, gp, pp = _get_pool().run((g, p, float_rounding, numeric_precision, strict), timeout_s)
    return CheckResult(equal, gp, pp, time.perf_counter() - t0, mode)


# -------------------------------------------------------------------------------------------------- metric


class MathAccuracyOptions(ComponentOptions):
    timeout_s: float = Field(5.0, gt=0, description="Seconds one equivalence check may take before it fails.")
    float_rounding: int = Field(6, ge=0, description="Decimal places floats are rounded to before comparing.")
    numeric_precision: int = Field(15, ge=1, description="Significant digits for numeric comparison.")
    strict: bool = Field(True, description="math-verify strict mode (variables matter; sets differ from tuples).")


class MathAccuracy(Metric):
    """1.0 iff the final answer is mathematically equivalent to the reference answer (math-verify)."""

    name: ClassVar[str] = "math_accuracy"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = "Final answer equivalent to the reference (math-verify, time-bounded subprocess)."
    Options: ClassVar[type[ComponentOptions]] = MathAccuracyOptions
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    value_kind: ClassVar[ValueKind] = "proportion"
    higher_is_better: ClassVar[bool] = True
    needs_artefact: ClassVar[bool] = True

    def _find_answer(self, ctx: ScoringContext) -> tuple[str | None, str]:
        from collab_harness_plugins.tasks.math_chat import conversation_final_answer, extract_final_answer

        if ctx.artefact is not None and ctx.artefact.strip():
            art = ctx.artefact.strip()
            # An extractor may return a whole sentence; reduce it to its stated final answer when it has one.
            return (extract_final_answer(art) or art), "artefact"
        if ctx.task is not None:
            ruled = ctx.task.extract_rule(ctx.example, ctx.conversation)
            if ruled is not None and ruled.strip():
                return ruled.strip(), "task rule"
        # No task at hand: the same rule math-chat applies (last assistant message stating a final answer).
        stated = conversation_final_answer(ctx.conversation)
        return (stated, "conversation") if stated is not None else (None, "none")

    def compute(self, ctx: ScoringContext) -> Score:
        opts: Any = self.options
        reference = ctx.example.reference.strip()
        if not reference:
            return Score.failed(self.name, f"example {ctx.example.id!r} has no reference answer",
                                sample=ctx.example.id)
        answer, source = self._find_answer(ctx)
        if answer is None:
            # The assistant never stated an answer: a genuine miss, not a checker failure.
            return Score(component=self.name, value=0.0,
                         details={"reason": "no answer found", "reference": reference})
        try:
            res = check_equivalent(reference, answer, timeout_s=opts.timeout_s, float_rounding=opts.float_rounding,
                                   numeric_precision=opts.numeric_precision, strict=opts.strict)
        except CheckError as e:
            return Score.failed(self.name, f"sample {ctx.example.id!r}: {e}", sample=ctx.example.id,
                                answer=answer[:500], reference=reference)
        return Score(
            component=self.name,
            value=1.0 if res.equal else 0.0,
            details={
                "answer": answer[:500],
                "answer_source": source,
                "reference": reference,
                "parsed_answer": res.pred_parsed[:500],
                "parsed_reference": res.gold_parsed[:500],
                "comparison": res.mode,
                "check_seconds": round(res.seconds, 4),
            },
        )


@hookimpl
def register_metrics(register: Any) -> None:
    register(MathAccuracy)


if __name__ == "__main__":
    _worker_main()

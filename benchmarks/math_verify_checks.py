"""Cost of a math_accuracy check: math-verify in-process (main thread, its own signal timeouts) vs our worker pool
(subprocess per worker, safe from threads, time-bounded by the caller), measured side by side in one run.

Also re-verifies the shipped math-chat sample: every reference parses and matches itself, no reference matches its
neighbour, and each reference equals an answer recomputed independently here (brute force or sympy). Then the
answer rules of issue 12: prose references judged as intended by check_equivalent vs math-verify alone, and stale
boxes (an earlier \\boxed{} followed by a later final-answer statement) read as the later answer.
Run: .venv/bin/python benchmarks/math_verify_checks.py [--rounds N]
"""

from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ThreadPoolExecutor


def independent_answers() -> dict[int, str]:
    """Sample index -> the answer recomputed from scratch (brute force or sympy), as LaTeX."""
    import itertools
    import math
    from fractions import Fraction as F

    import sympy as sp

    x, k, n = sp.symbols("x k n", real=True)
    combos = itertools.combinations

    def frac(q: F) -> str:
        return f"\\frac{{{q.numerator}}}{{{q.denominator}}}" if q.denominator != 1 else str(q.numerator)

    tex = sp.latex
    return {
        0: str((3 * 20**2 + 5 * 20) - (3 * 19**2 + 5 * 19)),
        1: tex(sp.solveset(k**2 - 36 < 0, k, sp.S.Reals)),
        2: tex(sp.solveset(sp.sqrt(x + 7) - (x - 5), x, sp.S.Reals)),
        3: tex(sp.solve(sp.Eq(2**x * 4 ** (x + 1), 8**5), x)[0]),
        4: tex(sp.radsimp(6 / (sp.sqrt(5) - sp.sqrt(2)))),
        5: tex(sp.cancel((x**2 - 9) / (x**2 + x - 6))),
        6: tex(sp.solveset(sp.Abs(2 * x - 5) - (x + 1), x, sp.S.Reals)),
        7: str(sum(1 for m in range(1, 1000) if m % 6 and m % 10)),
        8: frac(F(sum(1 for a in range(1, 7) for b in range(1, 7) if a * b % 6 == 0), 36)),
        9: str(len(set(itertools.permutations("BALLOON")))),
        10: frac(F(sum(1 for c in combos(range(11), 4) if sum(i < 6 for i in c) >= 2), math.comb(11, 4))),
        11: frac(F(sum(1 for c in combos(range(1, 11), 3) if sum(c) % 2 == 0), math.comb(10, 3))),
        12: str(sum(1 for a in range(1, 13) for b in range(1, 13) if 12 - a - b >= 1)),
        13: tex((20 + 21 - sp.sqrt(20**2 + 21**2)) / 2),
        14: tex(6 * sp.sqrt(3) / 4 * 4**2),
        15: tex(2 * sp.pi * sp.sqrt(12**2 + 5**2)),
        16: frac(F(abs(1 * (5 - 11) + 7 * (11 - 2) + 4 * (2 - 5)), 2)),
        17: tex(sp.Rational(13 * 14 * 15) / (4 * sp.sqrt(21 * 8 * 7 * 6))),
        18: str(pow(3, 2024, 7)),
        19: str(sum(d for d in range(1, 361) if 360 % d == 0)),
        20: str(next(m for m in range(1, 200) if (m % 3, m % 5, m % 7) == (2, 3, 4))),
        21: frac(F(36, 99) + F(5, 9)),
        22: str(sum(1 for m in range(1, 101) if math.gcd(m, 100) == 1)),
        23: str(pow(7, 7**7, 10)),
        24: tex(sp.Matrix([[2, -1, 3], [0, 4, 1], [5, 2, -2]]).det()),
        25: tex(sp.cos(sp.pi * 75 / 180)),
        26: tex(sp.solveset(2 * sp.sin(x) ** 2 - 1 - sp.cos(x), x, sp.Interval.Ropen(0, 2 * sp.pi))),
        27: tex((sp.Matrix([3, 4]).dot(sp.Matrix([1, 2])) / 5) * sp.Matrix([1, 2])),
        28: tex(sp.Tuple(sp.sqrt(4 + 12), sp.atan2(2 * sp.sqrt(3), -2))),
        29: tex(sp.nsimplify(sum(1 / r for r in sp.Poly([1, -5, 2, 7], x).nroots()))),
        30: tex(sp.minimum(x + 4 / x**2, x, sp.Interval.open(0, sp.oo))),
        31: tex(sp.solveset((x - 3) / (x + 2) <= 0, x, sp.S.Reals)),
        32: ", ".join(tex(r) for r in sorted(sp.solve(x**4 - 5 * x**2 + 4, x))),
        33: tex(sp.rem(sp.expand((x - 1) * (x + 2) * (x**2 + 7) + 2 * x + 3), (x - 1) * (x + 2), x)),
        34: tex(sp.summation(n / 3**n, (n, 1, sp.oo))),
        35: tex(sp.solveset(4 - sp.sqrt(x - 1) >= 0, x, sp.Interval(1, sp.oo))),
        36: str(5 * 18 - 4 * 16),
        37: tex(sp.Rational(12, 10) * sp.Rational(75, 100) * 100),
        38: str(math.lcm(84, 120)),
        39: frac(F(1, 3) / F(5, 3)),
    }


#: (reference, answer, intended verdict): words compared as text, sentences by their math part.
PROSE_CASES = [
    ("No", "No", True), ("No", "no.", True), ("No", "On", False), ("Yes", "Sey", False), ("None", "one N", False),
    ("Yes", "No", False), ("\\text{even}", "Even", True), ("the empty set", "Empty set", True),
    ("0 is the only possible value", "0", True), ("0 is the only possible value", "1", False),
    ("0 is the only possible value", "5 is the only possible value times 0", False),
    ("0 is the only possible value", "The only possible value is 0.", True),
    ("1 is the only possible value", "1", True), ("1", "1 is the only possible value", True),
    ("12", "There are 12 ways", True), ("4", "The minimum value is $4$.", True),
]

#: (assistant messages, the answer that must be read).
STALE_BOX_CASES = [
    (["So \\boxed{239}. Wait, I miscounted: the final answer is 240."], "240"),
    (["First try: $\\boxed{239}$\n\n**Final Answer:** 240"], "240"),
    (["It is \\boxed{239}.", "I dropped a term; the final answer is 240.", "You're welcome!"], "240"),
    (["\\boxed{239}", "Sorry, the answer is 240."], "240"),
    (["The final answer is 239. Rechecking the last step: \\boxed{240}"], "240"),
    (["We get \\boxed{240} (the answer is 239 only if n is odd)."], "240"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    from collab_harness_plugins.metrics.math_accuracy import _wrap, check_equivalent, shutdown_pool
    from collab_harness_plugins.tasks.math_chat import MathChat
    from math_verify import parse, verify

    task = MathChat(source="sample")
    refs = [e.reference for s in ("train", "test") for e in task.load(s)]
    pairs = [(r, r) for r in refs] + [(r, refs[(i + 1) % len(refs)]) for i, r in enumerate(refs)]

    # Sample integrity.
    bad = [r for r in refs if not check_equivalent(r, r).equal]
    clash = [(a, b) for a, b in pairs[len(refs):] if check_equivalent(a, b).equal]
    ids = [e.id for s in ("train", "test") for e in task.load(s)]
    indep = independent_answers()
    by_index = {int(i.rsplit("-", 1)[1]): r for i, r in zip(ids, refs, strict=True)}
    wrong = [(i, by_index[i], a) for i, a in sorted(indep.items()) if not check_equivalent(by_index[i], a).equal]
    print(f"sample: {len(refs)} references, {len(bad)} not self-equivalent, {len(clash)} neighbour clashes, "
          f"{len(indep) - len(wrong)}/{len(indep)} confirmed by independent computation")
    for w in wrong:
        print("  MISMATCH", w)

    # Issue 12: prose references, and stale boxes.
    from collab_harness_plugins.metrics.math_accuracy import _check
    from collab_harness_plugins.tasks.math_chat import conversation_final_answer

    from collab_harness.types import Conversation, Message

    ok_new = sum(check_equivalent(g, a).equal == want for g, a, want in PROSE_CASES)
    ok_raw = sum(_check(g, a, 6, 15, True)[0] == want for g, a, want in PROSE_CASES)
    print(f"prose references: {ok_new}/{len(PROSE_CASES)} judged as intended "
          f"(math-verify alone: {ok_raw}/{len(PROSE_CASES)})")
    stale_ok = 0
    for msgs, expected in STALE_BOX_CASES:
        turns = [m for text in msgs for m in (Message(role="user", content="..."), Message(role="assistant",
                                                                                        content=text))]
        got = conversation_final_answer(Conversation.of(*turns))
        stale_ok += got == expected
        if got != expected:
            print("  STALE BOX", msgs, "->", got)
    print(f"stale boxes: {stale_ok}/{len(STALE_BOX_CASES)} read the later final answer")

    def inproc(p: tuple[str, str]) -> bool:
        return bool(verify(parse(_wrap(p[0])), parse(_wrap(p[1]))))

    # Warm both sides (imports, parse caches, worker start-up) outside the timing.
    for p in pairs:
        inproc(p)
        check_equivalent(*p)
    n = len(pairs) * args.rounds
    t0 = time.perf_counter()
    want = [inproc(p) for _ in range(args.rounds) for p in pairs]
    t_in = time.perf_counter() - t0

    t0 = time.perf_counter()
    got = [check_equivalent(*p).equal for _ in range(args.rounds) for p in pairs]
    t_pool = time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as ex:
        got_thr = list(ex.map(lambda p: check_equivalent(*p).equal, pairs * args.rounds))
    t_thr = time.perf_counter() - t0
    shutdown_pool()

    assert got == want == got_thr, "pool and in-process disagree"
    print(f"{n} checks  in-process main thread: {t_in / n * 1e3:7.2f} ms/check")
    print(f"{n} checks  worker pool, 1 thread:  {t_pool / n * 1e3:7.2f} ms/check  ({t_pool / t_in:.2f}x in-process)")
    print(f"{n} checks  worker pool, 4 threads: {t_thr / n * 1e3:7.2f} ms/check  ({t_thr / t_in:.2f}x in-process)")
    print(f"math_verify_pool_overhead_ratio: {t_pool / t_in:.2f}")


if __name__ == "__main__":
    main()

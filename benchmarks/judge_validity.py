"""Valid-verdict rate of the embedded judge, without and with constrained decoding.

The real ``interactivity`` judge (``model = local/smollm2``) scores ~10 small conversations through a real
:class:`~collab_harness.models.client.Client` (fresh response cache, so nothing is served from earlier runs): once with
the local provider ignoring JSON Schemas (what the embedded judge did before), once enforcing them with xgrammar.
``structured`` puts the verdict's schema on every request (``GenerationParams.json_schema``); the script counts the
requests that reached the provider carrying one, so a missing schema shows instead of passing silently. All
conversations of a pass are scored concurrently (the provider batches them). A verdict is valid when the judge
returned a score (within its bounded attempts); the last line is the rate with constrained decoding.

    .venv/bin/python benchmarks/judge_validity.py [--limit 10] [--max-tokens 512] [--attempts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collab_harness import build_plugin_manager
from collab_harness.components import ScoringContext
from collab_harness.models._provider import ProviderReply, ProviderRequest
from collab_harness.models.client import Client
from collab_harness.models.local import LocalProvider
from collab_harness.types import Conversation, Example, Score

MODEL = "local/smollm2"

#: (user request, assistant reply, optional user follow-up, optional assistant reply): short, varied dialogues, some
#: collaborative (clarifying questions), some passive, so the judge has something to tell apart.
DIALOGUES: list[tuple[str, ...]] = [
    ("Write me a blog post about remote work.",
     "Happy to! Who is the audience (managers or employees), and roughly how long should it be?",
     "Employees, about 400 words.",
     "Great. Should it focus on productivity tips, or on staying connected with the team?"),
    ("Write me a blog post about remote work.",
     "Remote work is great. Many people work from home now. It saves commuting time. The end."),
    ("Help me plan a birthday party.",
     "Sure. How many guests, what budget, and is it for a child or an adult?",
     "Ten adults, 200 dollars.",
     "Then a home dinner with a shared menu fits well. Any dietary restrictions among the guests?"),
    ("Help me plan a birthday party.", "Get a cake and some balloons."),
    ("Write a cover letter for a data analyst job.",
     "Which company is it, and which of your projects best shows your SQL and dashboard skills?"),
    ("Write a cover letter for a data analyst job.",
     "Dear Hiring Manager, I am writing to apply for the data analyst position. I like data. Sincerely, Applicant."),
    ("Summarise the causes of the French Revolution for my class.",
     "What grade is the class, and do you want a one-paragraph summary or a list of causes with short notes?",
     "Grade 9, a list please.",
     "Here is a list: 1. fiscal crisis, 2. inequality of the estates, 3. Enlightenment ideas. Want examples for each?"),
    ("Summarise the causes of the French Revolution for my class.",
     "The French Revolution happened in 1789. There were many causes."),
    ("Write a short poem for my grandmother.",
     "What is she like, and is there a memory or a place you would like the poem to mention?",
     "She loves her garden.",
     "Lovely. Would you like it rhyming, and should it be cheerful or tender?"),
    ("Write a short poem for my grandmother.", "Roses are red, violets are blue, grandma is nice."),
    ("Draft an email asking my landlord to fix the heating.",
     "How long has the heating been broken, and have you contacted them about it before?"),
    ("Draft an email asking my landlord to fix the heating.", "Tell him the heating is broken."),
]


def conversations(limit: int) -> list[tuple[Example, Conversation]]:
    out = []
    for i, turns in enumerate(DIALOGUES[:limit]):
        roles = ["user", "assistant"] * 2
        conv = Conversation.of(*[{"role": roles[j], "content": text} for j, text in enumerate(turns)])
        out.append((Example(id=f"judge-{i}", task="doc-chat", prompt=turns[0]), conv))
    return out


class CountingLocalProvider(LocalProvider):
    """The real local provider, counting the requests that arrive with a JSON Schema."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests = 0
        self.with_schema = 0

    async def generate(self, request: ProviderRequest) -> ProviderReply:
        self.requests += 1
        self.with_schema += request.params.json_schema is not None
        return await super().generate(request)


async def one_pass(enforce: bool, args: argparse.Namespace) -> tuple[list[Score], CountingLocalProvider, float]:
    judge: Any = build_plugin_manager().registry.create(
        "judge", "interactivity", {"model": MODEL, "max_tokens": args.max_tokens, "max_attempts": args.attempts})
    with tempfile.TemporaryDirectory(prefix="judge-validity-") as cache_dir:
        async with Client(cache_dir=cache_dir) as client:
            # Until Client passes provider options through, put the provider in place of the one it would make.
            provider = CountingLocalProvider(enforce_schema=enforce)
            client._providers["local"] = provider
            t0 = time.perf_counter()
            scores = await asyncio.gather(*(
                judge.score(ScoringContext(example=ex, conversation=conv, client=client, seed=i))
                for i, (ex, conv) in enumerate(conversations(args.limit))))
            return list(scores), provider, time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=10, help=f"conversations to judge (max {len(DIALOGUES)})")
    ap.add_argument("--max-tokens", type=int, default=512, help="judge option max_tokens (its default: 512)")
    ap.add_argument("--attempts", type=int, default=3, help="judge option max_attempts (its default: 3)")
    args = ap.parse_args()
    rates = {}
    for enforce in (False, True):
        label = "constrained" if enforce else "unconstrained"
        scores, provider, dt = await one_pass(enforce, args)
        valid = [s for s in scores if s.value is not None]
        attempts = [s.details.get("attempts") for s in valid]
        values = [round(s.value, 2) for s in valid if s.value is not None]
        rates[enforce] = len(valid) / len(scores)
        print(f"{label}: {len(valid)}/{len(scores)} valid verdicts in {dt:.1f} s; "
              f"{provider.requests} model calls, {provider.with_schema} carried the JSON Schema; "
              f"attempts of valid verdicts: {attempts}; values: {values}")
        for s in scores:
            if s.value is None:
                print(f"  failed: {(s.error or '')[:200]!r}")
    print(f"judge_valid_rate_unconstrained: {rates[False]:.2f}")
    print(f"judge_valid_rate: {rates[True]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())

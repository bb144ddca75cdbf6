"""The local provider on the real embedded model (short generations): batching, per-row seeded sampling,
schema-constrained replies; conversion and resolution. Fast tests on a tiny model: ``test_local_provider.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from collab_harness.models.client import Client
from collab_harness.models.local import get_tokenizer, resolve_local
from collab_harness.models.protocol import GenerationParams


@pytest.mark.realmodel
@pytest.mark.slow
async def test_smollm2_generates_offline_and_batches(tmp_path: Path) -> None:
    # The converted model lives in the default cache dir (COLLAB_HARNESS_CACHE_DIR), so CI converts it once.
    async with Client(cache_dir=tmp_path) as c:
        params = GenerationParams(max_tokens=12)
        question = [{"role": "user", "content": "What is the capital of France?"}]
        other = [{"role": "user", "content": "Say hello."}]
        short = GenerationParams(max_tokens=3)
        a, b, s = await asyncio.gather(
            c.complete("local/smollm2", question, params=params, component="t"),
            c.complete("local/smollm2", other, params=params, component="t"),
            c.complete("local/smollm2", question, params=short, component="t"),
        )
        batcher = await c._provider("local/smollm2").batcher("local/smollm2")  # type: ignore[attr-defined]
        assert batcher.batch_sizes == [3]  # the three concurrent requests ran as one batch
        assert "Paris" in a.text
        assert a.text != b.text  # each request got its own completion back
        assert 0 < a.usage.completion_tokens <= 12 and a.usage.prompt_tokens > 5
        assert s.usage.completion_tokens <= 3 and a.text.startswith(s.text.strip()[:4])  # own max_tokens honoured
        again = await c.complete("local/smollm2", question, params=params, component="t")
        assert again.cached and again.text == a.text
    tok = get_tokenizer("local/smollm2")
    assert len(tok.encode("hello world", add_special_tokens=False)) >= 2


def test_resolve_local_rejects_unknown_path(tmp_path: Path) -> None:
    from collab_harness.models._provider import ProviderError

    with pytest.raises(ProviderError, match="not an embedded alias"):
        resolve_local(f"local/{tmp_path}/nothing")
    with pytest.raises(ValueError):
        get_tokenizer("openai/gpt-4o-mini")


@pytest.mark.realmodel
@pytest.mark.slow
async def test_smollm2_seeded_sampling_is_per_row(tmp_path: Path) -> None:
    # Sampled requests with different seeds share one batch, and a row's text depends on its own seed only.
    from collab_harness.models._provider import ProviderRequest
    from collab_harness.models.local import LocalProvider

    def req(i: int, seed: int) -> ProviderRequest:
        msgs = [{"role": "user", "content": f"Write one sentence about {['a cat', 'the sea', 'a city'][i % 3]}."}]
        return ProviderRequest("local/smollm2", msgs, GenerationParams(temperature=0.8, max_tokens=10, seed=seed))

    provider = LocalProvider()
    alone = await provider.generate(req(0, 42))
    batch = await asyncio.gather(*(provider.generate(req(i, 42 if i == 0 else 1000 + i)) for i in range(9)))
    other = await provider.generate(req(0, 43))
    sizes = (await provider.batcher("local/smollm2")).batch_sizes
    await provider.aclose()
    assert sizes[1] == 9
    assert batch[0].text == alone.text
    assert other.text != alone.text


class _Verdict(BaseModel):
    rationale: str
    score: float = Field(ge=0.0, le=1.0)


@pytest.mark.realmodel
@pytest.mark.slow
async def test_smollm2_structured_reply_is_schema_valid_first_time(tmp_path: Path) -> None:
    # structured() puts the schema on the request; the local provider enforces it (xgrammar), greedy, short budget.
    msgs = [{"role": "user", "content": "Rate from 0 to 1 how polite this is: 'Give me the salt.'"}]
    async with Client(cache_dir=tmp_path) as c:
        result = await c.structured("local/smollm2", msgs, _Verdict, params=GenerationParams(max_tokens=48),
                                    component="t", max_attempts=1)
    assert result.ok, result.error
    assert result.raw is not None and _Verdict.model_validate_json(result.raw) == result.value

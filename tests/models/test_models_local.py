"""The local provider: batching on the real embedded model (short), conversion and resolution."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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

"""The local provider on a tiny in-memory model (fast): per-row seeded sampling in shared batches, schema-constrained
rows, live-model updates, weight fingerprints and thread settings.

The model is a randomly initialised 2-layer Llama with a byte-level BPE tokenizer trained here (no files, no hub):
its next-token distribution is close to uniform, so different seeds give different texts and any leak of one row's
randomness or mask into another shows.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from collab_harness.models._provider import ProviderError, ProviderReply, ProviderRequest
from collab_harness.models._sampling import row_generator, sample_token
from collab_harness.models.client import Client
from collab_harness.models.local import (
    LiveModel,
    LocalProvider,
    get_tokenizer,
    model_fingerprint,
    register_live_model,
    unregister_live_model,
)
from collab_harness.models.protocol import GenerationParams

CORPUS = [
    "user: hello there, how are you today?",
    "assistant: I am fine, thanks for asking. What would you like to write?",
    '{"ok": true, "label": "red", "score": 0.5}',
    "user: please write a short story about a cat and a lighthouse.",
    "assistant: Sure! Who is the story for, and how long should it be?",
]


def tiny_tokenizer() -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bt = ByteLevelBPETokenizer()
    bt.train_from_iterator(CORPUS * 4, vocab_size=320, min_frequency=1, special_tokens=["<eos>"],
                           show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bt._tokenizer, eos_token="<eos>", pad_token="<eos>")


def tiny_model(tok: Any, seed: int = 0) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng():  # the weights come from a fixed seed without touching the global generator
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model.eval()


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


@pytest.fixture
def live(tok: Any) -> Iterator[LiveModel]:
    handle = register_live_model(f"tiny-{uuid.uuid4().hex[:8]}", tiny_model(tok), tok)
    yield handle
    unregister_live_model(handle.name)


def req(model: str, i: int, *, seed: int | None = None, temperature: float = 0.9, max_tokens: int = 16,
        schema: Any = None, extra: tuple[tuple[str, Any], ...] = ()) -> ProviderRequest:
    params = GenerationParams(temperature=temperature, max_tokens=max_tokens, seed=seed,
                              extra=(("min_new_tokens", 4), *extra))
    if schema is not None:
        params = params.with_schema(schema)
    msgs = [{"role": "user", "content": f"{CORPUS[i % len(CORPUS)]} ({i})"}]
    return ProviderRequest(model=model, messages=msgs, params=params)


async def gen_all(provider: LocalProvider, requests: list[ProviderRequest]) -> list[ProviderReply]:
    return list(await asyncio.gather(*(provider.generate(r) for r in requests)))


# ------------------------------------------------------------------------------------------------- sampling


def test_sample_token_follows_the_distribution_and_its_cutoffs() -> None:
    logits = torch.log(torch.tensor([0.25, 0.75, 1e-9, 1e-9]))
    g = row_generator(1)
    draws = [sample_token(logits, temperature=1.0, generator=g) for _ in range(2000)]
    share = draws.count(1) / len(draws)
    assert 0.70 < share < 0.80 and set(draws) <= {0, 1}
    assert {sample_token(logits, temperature=1.0, top_k=1, generator=g) for _ in range(50)} == {1}
    assert {sample_token(logits, temperature=1.0, top_p=0.5, generator=g) for _ in range(50)} == {1}
    # Same seed, same draws; the sample index separates repeated samples sharing a seed.
    def stream(gen: torch.Generator) -> list[int]:
        return [sample_token(logits, temperature=1.0, generator=gen) for _ in range(20)]

    assert stream(row_generator(5)) == stream(row_generator(5)) != stream(row_generator(5, 1))


async def test_seeded_rows_reproduce_alone_or_in_any_batch(live: LiveModel) -> None:
    m = live.model_string
    provider = LocalProvider()
    alone = await provider.generate(req(m, 0, seed=7))
    greedy_alone = await provider.generate(req(m, 1, temperature=0.0))
    others = [req(m, i, seed=100 + i, max_tokens=8 + i) for i in range(2, 9)]
    batched = await gen_all(provider, [req(m, 0, seed=7), req(m, 1, temperature=0.0), *others])
    b = await provider.batcher(m)
    assert b.batch_sizes[-1] == 9  # differently seeded (and greedy) requests ran as one batch
    assert alone.text and batched[0].text == alone.text
    assert batched[1].text == greedy_alone.text  # greedy stays exact next to sampled rows
    other_seed = await provider.generate(req(m, 0, seed=8))
    assert other_seed.text != alone.text
    unseeded = await gen_all(provider, [req(m, 0), req(m, 0)])
    assert unseeded[0].text != unseeded[1].text  # no seed: an unseeded generator per row
    # A different batch composition (other prompts, other seeds, other order) still gives the same row.
    shuffled = await gen_all(provider, [*reversed(others), req(m, 3, seed=1), req(m, 0, seed=7)])
    assert shuffled[-1].text == alone.text
    await provider.aclose()


async def test_extras_that_generate_applies_split_batches(live: LiveModel) -> None:
    m = live.model_string
    provider = LocalProvider()
    await gen_all(provider, [req(m, 0, seed=1), req(m, 1, seed=2, extra=(("top_k", 5),)),
                             req(m, 2, seed=3, extra=(("repetition_penalty", 1.3),))])
    b = await provider.batcher(m)
    assert sorted(b.batch_sizes) == [1, 2]  # top_k is per row; repetition_penalty is batch-wide in generate
    await provider.aclose()


# ---------------------------------------------------------------------------------------------- constraints


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool
    label: Literal["red", "green", "blue"]
    count: int


async def test_schema_rows_parse_and_share_a_batch_with_free_rows(live: LiveModel) -> None:
    m = live.model_string
    provider = LocalProvider()
    free_alone = await provider.generate(req(m, 1, seed=11, max_tokens=96))
    rows = [req(m, 0, temperature=0.0, max_tokens=96, schema=Verdict), req(m, 1, seed=11, max_tokens=96),
            req(m, 2, seed=3, max_tokens=96, schema=Verdict), req(m, 3, seed=4, max_tokens=96, schema=Verdict)]
    out = await gen_all(provider, rows)
    assert (await provider.batcher(m)).batch_sizes[-1] == 4
    for reply in (out[0], out[2], out[3]):
        Verdict.model_validate_json(reply.text)  # a random model, yet valid JSON of the schema
        assert reply.finish_reason == "stop"
    assert out[1].text == free_alone.text  # the free row saw no grammar mask and kept its own draws
    with pytest.raises(ValueError):
        json.loads(out[1].text)
    # Without enforcement the schema travels but is ignored: the random model produces no JSON.
    loose = LocalProvider(enforce_schema=False)
    raw = await loose.generate(req(m, 0, temperature=0.0, max_tokens=96, schema=Verdict))
    with pytest.raises(ValueError):
        Verdict.model_validate_json(raw.text)
    await provider.aclose()
    await loose.aclose()


# ---------------------------------------------------------------------------------------------- live models


async def test_live_update_is_visible_to_the_next_call_and_never_served_stale(live: LiveModel, tmp_path: Path) -> None:
    m = live.model_string
    question = [{"role": "user", "content": "hello there, how are you today?"}]
    params = GenerationParams(max_tokens=12, extra=(("min_new_tokens", 12),))
    fp0 = model_fingerprint(m)
    async with Client(cache_dir=tmp_path) as c:
        before = await c.complete(m, question, params=params)
        assert (await c.complete(m, question, params=params)).cached
        with live.updating() as model, torch.no_grad():  # an "optimizer step": change the weights in place
            model.lm_head.weight.mul_(-1.0)  # the greedy choice becomes the least likely token
        fp1 = model_fingerprint(m)
        after = await c.complete(m, question, params=params)
        assert fp1 != fp0 and live.version == 1
        assert not after.cached and after.text != before.text
        # Swapping in another model object (a new checkpoint) works the same way.
        live.update(model=tiny_model(live.tokenizer, seed=1))
        swapped = await c.complete(m, question, params=params)
        assert not swapped.cached and swapped.text not in (before.text, after.text)
        assert model_fingerprint(m) not in (fp0, fp1)
    assert get_tokenizer(m) is live.tokenizer


async def test_updating_waits_for_the_running_batch(live: LiveModel) -> None:
    forwards: list[float] = []
    hook = live.model.register_forward_hook(lambda *_: forwards.append(time.monotonic()))
    provider = LocalProvider()
    try:
        task = asyncio.ensure_future(provider.generate(req(live.model_string, 0, seed=1, max_tokens=64,
                                                           extra=(("min_new_tokens", 64),))))
        for _ in range(500):  # wait until the batch holds the model
            await asyncio.sleep(0.01)
            if forwards:
                break
        entered = await asyncio.to_thread(_enter_updating, live)
        reply = await task
    finally:
        hook.remove()
        await provider.aclose()
    assert reply.usage.completion_tokens == 64 and len(forwards) >= 64
    assert entered > max(forwards)  # the update got the model only after the batch's last forward pass


def _enter_updating(live: LiveModel) -> float:
    with live.updating():
        return time.monotonic()


async def test_unknown_live_model_and_duplicate_registration(tok: Any) -> None:
    provider = LocalProvider()
    with pytest.raises(ProviderError, match="no live model named"):
        await provider.generate(req("local/live:nobody-here", 0))
    handle = register_live_model("dup-test", tiny_model(tok), tok)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_live_model("dup-test", tiny_model(tok), tok)
        fp = handle.fingerprint
        assert register_live_model("dup-test", tiny_model(tok, seed=2), tok, replace=True) is handle
        assert handle.fingerprint != fp
    finally:
        unregister_live_model("dup-test")
    with pytest.raises(ProviderError):
        model_fingerprint("local/live:dup-test")


# ------------------------------------------------------------------------------------- fingerprints, threads


async def test_directory_fingerprint_follows_the_weights(tok: Any, tmp_path: Path) -> None:
    path = tmp_path / "ckpt"
    tiny_model(tok).save_pretrained(path)
    tok.save_pretrained(path)
    fp0 = model_fingerprint(f"local/{path}")
    assert fp0 == model_fingerprint(f"local/{path}")  # stable while nothing changes
    tiny_model(tok, seed=3).save_pretrained(path)  # a new checkpoint written over the old one
    fp1 = model_fingerprint(f"local/{path}")
    assert fp1 != fp0
    provider = LocalProvider()
    reply = await provider.generate(req(f"local/{path}", 0, temperature=0.0))
    assert reply.usage.completion_tokens > 0
    assert model_fingerprint(f"local/{path}") == fp1  # once loaded: the weights actually served
    await provider.aclose()


@pytest.mark.parametrize("threads", [None, 1])
async def test_no_process_wide_thread_setting(live: LiveModel, threads: int | None) -> None:
    before = torch.get_num_threads()
    seen: list[int] = []
    hook = live.model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        provider = LocalProvider(threads=threads)
        await provider.generate(req(live.model_string, 0, seed=1, max_tokens=4))
        await provider.aclose()
    finally:
        hook.remove()
    assert torch.get_num_threads() == before
    assert seen and (threads is None or set(seen) == {threads})

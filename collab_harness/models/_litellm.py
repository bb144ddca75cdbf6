"""The litellm provider: any litellm model string, one attempt per call, exceptions classified.

litellm is imported on first use (it is slow to import and, without ``LITELLM_LOCAL_MODEL_COST_MAP``, fetches a
price list from the network at import: we default that to the bundled copy). Provider keys come from the
environment only; ``api_base`` is passed through but never cached or logged.
"""

from __future__ import annotations

import os
from typing import Any

from ._provider import ProviderError, ProviderReply, ProviderRequest
from .protocol import Usage

__all__ = ["LiteLLMProvider", "classify_exception", "import_litellm"]


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


class LiteLLMProvider:
    def __init__(self, *, api_base: str | None = None, timeout_s: float | None = None) -> None:
        self._api_base = api_base
        self._timeout_s = timeout_s

    async def generate(self, request: ProviderRequest) -> ProviderReply:
        litellm = import_litellm()
        p = request.params
        kwargs: dict[str, Any] = {
            "model": request.model,
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
        if self._api_base:
            kwargs["api_base"] = self._api_base
        for k, v in p.extra:
            if k == "response_format" and v == "json_object":
                kwargs[k] = {"type": "json_object"}
            else:
                kwargs[k] = v
        try:
            resp = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise ProviderError(f"{type(exc).__name__}: {exc}", transient=classify_exception(exc)) from exc
        try:
            choice = resp.choices[0]
            text = choice.message.content or ""
            finish = getattr(choice, "finish_reason", None)
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
        return None


def supports_json_mode(model: str) -> bool:
    """Whether litellm knows the model accepts ``response_format`` (JSON mode)."""
    try:
        litellm = import_litellm()
        params = litellm.get_supported_openai_params(model=model) or []
        return "response_format" in params
    except Exception:
        return False

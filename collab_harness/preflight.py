"""Preflight: before the first sample, check that every model a run needs can be reached, without calling it.

A missing API key used to be retried as a transient error (5 attempts, 81 s) for every sample, and the run exited 0.
Now a missing key, a local model that does not exist, or an unknown scripted model is one line naming the role, the
model and what to set, before anything is spent. (Bad credentials are only known from a provider's answer: the
client marks a 401/403 fatal and the engine stops the run at the first one.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import OFFLINE_JUDGE, RunConfig
from .errors import ConfigError, PrerequisiteError

__all__ = ["preflight", "run_models"]


def run_models(config: RunConfig) -> list[tuple[str, str]]:
    """(role, model string) of every model the run calls."""
    out = [("assistant", config.assistant)]
    if config.user_model():
        out.append(("user", str(config.user_model())))
    if config.judge != OFFLINE_JUDGE:
        out.append(("judge", config.judge))
    return out


async def preflight(config: RunConfig, client: Any = None) -> None:
    """Raise a one-line :class:`ConfigError` / :class:`PrerequisiteError` for a model that cannot work."""
    for role, model in run_models(config):
        provider = model.partition("/")[0]
        if provider == "scripted":
            from .models.scripted import _SCRIPTS

            if model.removeprefix("scripted/") not in _SCRIPTS:
                raise ConfigError(f"{role} model {model!r}: no script registered under that name")
        elif provider == "local":
            _check_local(role, model)
        else:
            endpoints = client.endpoints_of(model) if client is not None and hasattr(client, "endpoints_of") else []
            if endpoints:
                continue  # an OpenAI-compatible server: keys are its business (any key is sent when none is set)
            from .models._litellm import missing_keys

            keys = missing_keys(model)
            if keys:
                raise ConfigError(f"{role} model {model!r} needs {' and '.join(keys)} in the environment; set "
                                  f"{'them' if len(keys) > 1 else 'it'} (keys are read from the environment only), "
                                  f"or point the model at a server with --{role}-api-base")


def _check_local(role: str, model: str) -> None:
    from .models.local import EMBEDDED_ALIASES, embedded_gguf

    ref = model.removeprefix("local/")
    if ref in EMBEDDED_ALIASES:
        embedded_gguf(ref)  # PrerequisiteError naming the package when the wheel is missing
        return
    if ref.startswith("live:") or _is_live(model):
        return
    candidates = [Path(ref).expanduser(), Path("/" + ref)]
    if not any(p.exists() for p in candidates):
        raise ConfigError(f"{role} model {model!r}: no such local model (an embedded alias: "
                          f"{', '.join(EMBEDDED_ALIASES)}; a transformers model directory; or a .gguf file)")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise PrerequisiteError(f"{role} model {model!r} runs in-process and needs transformers",
                                install="pip install 'collab-harness[local]'") from None


def _is_live(model: str) -> bool:
    from .models import local

    is_live = getattr(local, "is_live_model", None)
    return bool(is_live(model)) if callable(is_live) else False

"""One scrubbing path for everything the harness writes: secrets never reach a file, a cache row or a log line.

Two kinds of secrets are masked with ``***``:

- the values of secret-looking environment variables (``*_API_KEY``, ``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*`` ...),
  wherever they appear (a provider error that echoes the key, a model that repeats it);
- key-shaped strings whatever their origin: provider key formats (``sk-...``, ``sk-ant-...``, AWS ``AKIA...``,
  GitHub ``ghp_...``, Hugging Face ``hf_...``, Slack ``xox?-...``, Google ``AIza...``), ``Bearer`` tokens, and values
  written as ``api_key=...`` / ``"api_key": "..."``;
- in mappings, the value under a credential-named key (``api_key``, ``token``, ``password`` ...).

Writers call :func:`scrub` (or a :class:`SecretScrubber`); the model client scrubs every reply before it is cached or
returned, error messages are scrubbed where they are built, and :func:`install_log_filter` masks log records.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SecretScrubber", "install_log_filter", "scrub", "scrub_text"]

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.I)
#: Secret-named variables that hold locations or switches, not credentials (masking them would mangle output).
_NOT_SECRET_NAME = re.compile(r"(_PATH|_FILE|_DIR|_URL|_HOME|_HOST|_REGION|TOKENIZERS_PARALLELISM)$", re.I)
#: Option / field names whose value is a credential (whole words: "tokenizer" or "max_tokens" are not).
_SECRET_OPTION = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|token|access[_-]?token|auth[_-]?token|secret|secret[_-]?key|password|passwd|"
    r"authorization|aws_secret_access_key|aws_session_token)$",
    re.I,
)
#: Key-shaped strings (documented formats of the common providers, plus bearer tokens and key=value pairs).
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-(?:ant-|proj-|or-)?[A-Za-z0-9_-]{16,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r")"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{12,}")
_KEY_VALUE = re.compile(
    r"""(?ix)
    (\b(?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|secret[_-]?key|password)\b["']?\s*[:=]\s*["']?)
    ([^\s"',}]{6,})
    """
)


class SecretScrubber:
    """Masks secret values (from ``environ``, default the process environment at construction) and key-shaped
    strings in strings, mappings and sequences."""

    def __init__(self, environ: Mapping[str, str] | None = None, *, min_len: int = 6) -> None:
        env = os.environ if environ is None else environ
        vals = {
            v for k, v in env.items()
            if _SECRET_NAME.search(k) and not _NOT_SECRET_NAME.search(k) and len(v) >= min_len and v.strip()
            and v.lower() not in {"true", "false", "none", "null"}
        }
        # Longest first so that a secret containing another is replaced whole.
        self._values = sorted(vals, key=len, reverse=True)

    def text(self, s: str) -> str:
        for v in self._values:
            if v in s:
                s = s.replace(v, "***")
        if any(c in s for c in "skAgGhHxXbBpP"):  # cheap pre-check before the regexes
            s = _KEY_SHAPES.sub("***", s)
            s = _BEARER.sub(r"\1***", s)
            s = _KEY_VALUE.sub(r"\1***", s)
        return s

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {
                k: ("***" if isinstance(v, str) and v and _SECRET_OPTION.search(str(k)) else self(v))
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj


_default: SecretScrubber | None = None
_default_env: tuple[tuple[str, str], ...] | None = None


def _current() -> SecretScrubber:
    """A scrubber for the current environment (rebuilt when the environment's secrets change)."""
    global _default, _default_env
    key = tuple(sorted((k, v) for k, v in os.environ.items() if _SECRET_NAME.search(k)))
    if _default is None or key != _default_env:
        _default, _default_env = SecretScrubber(), key
    return _default


def scrub(obj: Any) -> Any:
    """``obj`` with every secret masked (strings, mappings, sequences; other values unchanged)."""
    return _current()(obj)


def scrub_text(s: str) -> str:
    return _current().text(s)


class _LogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        clean = scrub_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_FILTER = _LogFilter()


def install_log_filter(*loggers: str) -> None:
    """Mask secrets in the records of the named loggers (default: the harness's and litellm's) and in every
    handler of the root logger."""
    for name in loggers or ("collab_harness", "LiteLLM", "litellm", "httpx"):
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
    for h in logging.getLogger().handlers:
        if _FILTER not in h.filters:
            h.addFilter(_FILTER)

"""token_amount: assistant/user tokens and exchanges over the forward part, with a recorded tokenizer."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from collab_harness_plugins.metrics.token_amount import TokenAmount, get_tokenizer

from collab_harness.components import ScoringContext
from collab_harness.testing import MetricContract
from collab_harness.types import Conversation, Example, Score


class TestTokenAmountContract(MetricContract):
    @pytest.fixture
    def component(self) -> TokenAmount:
        return TokenAmount()


EX = Example(id="tok-0", task="math-chat", prompt="p", reference="r")


def _cl100k(text: str) -> int:
    import tiktoken

    get_tokenizer("cl100k_base")  # seeds tiktoken's cache offline
    return len(tiktoken.get_encoding("cl100k_base").encode(text))


def _score(conv: Conversation, forward_start: int = 0, **extra: object) -> Score:
    ctx = ScoringContext(example=EX, conversation=conv, forward_start=forward_start, extra=extra)
    return asyncio.run(TokenAmount().score(ctx))


DIALOGUE = Conversation.of(
    ("system", "You are a helpful assistant that never rushes."),
    ("user", "I need help with a geometry problem."),
    ("assistant", "Sure! What does the problem say?"),
    ("user", "A chord of length 24 is 5 away from the center. Circumference?"),
    ("assistant", "The radius is 13, so the circumference is $26\\pi$."),
    ("user", "Thanks! [[TERMINATE CHAT]]"),
)


def test_counts_whole_dialogue_with_cl100k() -> None:
    s = _score(DIALOGUE, parity=True)
    a = [m.content for m in DIALOGUE.messages if m.role == "assistant"]
    u = [m.content for m in DIALOGUE.messages if m.role == "user"]
    want_a = sum(_cl100k(t) for t in a)
    want_u = sum(_cl100k(t) for t in u)
    assert s.ok and s.value == want_a
    assert dict(s.values) == {"assistant_tokens": want_a, "user_tokens": want_u, "exchanges": 2.0,
                              "total_tokens": want_a + want_u}
    assert s.details["tokenizer"] == "cl100k_base" and "tokenizer_note" not in s.details
    assert TokenAmount.higher_is_better is False


def test_forward_part_only() -> None:
    # MR: history ends with a user message; the forward part is the candidate response and its future.
    s = _score(DIALOGUE, forward_start=4, parity=True)
    assert s.values["exchanges"] == 1.0  # the candidate closes the exchange the history opened
    assert s.value == _cl100k(DIALOGUE.messages[4].content)
    assert s.values["user_tokens"] == _cl100k(DIALOGUE.messages[5].content)
    assert s.details["forward_start"] == 4


def test_empty_and_system_only() -> None:
    for conv in (Conversation(), Conversation.of(("system", "long system prompt " * 50))):
        s = _score(conv)
        assert s.ok and s.value == 0.0 and s.values["exchanges"] == 0.0


def test_auto_records_tokenizer_choice() -> None:
    s = _score(DIALOGUE, assistant_model="scripted/echo")
    assert s.details["tokenizer"] == "cl100k_base" and "scripted/echo" in s.details["tokenizer_note"]
    s = _score(DIALOGUE)
    assert "unknown" in s.details["tokenizer_note"]
    s = _score(DIALOGUE, assistant_model="openai/gpt-3.5-turbo")
    assert s.details["tokenizer"] == "litellm:openai/gpt-3.5-turbo"
    # gpt-3.5-turbo's tokenizer is cl100k_base: litellm's count must agree with ours.
    assert s.value == _score(DIALOGUE, parity=True).value


def test_parity_overrides_assistant_tokenizer() -> None:
    s = _score(DIALOGUE, assistant_model="openai/gpt-4o-mini", parity=True)
    assert s.details["tokenizer"] == "cl100k_base"


def test_local_model_tokenizer() -> None:
    model = "local/smollm2"
    s = _score(DIALOGUE, assistant_model=model)
    assert s.ok
    if importlib.util.find_spec("collab_harness.models.local") is None:
        # The embedded provider is not installed: counted with cl100k_base and said so.
        assert s.details["tokenizer"] == "cl100k_base" and model in s.details["tokenizer_note"]
    elif "tokenizer_note" not in s.details:
        from collab_harness.models.local import get_tokenizer as local_tokenizer

        tok = local_tokenizer(model)
        want = sum(len(tok.encode(m.content, add_special_tokens=False)) for m in DIALOGUE.by_role("assistant"))
        assert s.details["tokenizer"] == model and s.value == want


def test_explicit_option() -> None:
    ctx = ScoringContext(example=EX, conversation=DIALOGUE, extra={"assistant_model": "openai/gpt-4o"})
    s = asyncio.run(TokenAmount(tokenizer="cl100k_base").score(ctx))
    assert s.details["tokenizer"] == "cl100k_base"


def test_cl100k_loads_offline_from_an_empty_cache(tmp_path: Path) -> None:
    # A fresh interpreter with an empty tiktoken cache and no network must still get the real cl100k_base.
    code = (
        "import json\n"
        "from collab_harness_plugins.metrics.token_amount import get_tokenizer\n"
        "t = get_tokenizer('cl100k_base')\n"
        "print(json.dumps([t.name, t.note, t.count('hello world')]))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "tk"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    name, note, n = json.loads(out.stdout.strip().splitlines()[-1])
    assert (name, note, n) == ("cl100k_base", None, 2)
    assert (tmp_path / "tk" / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").is_file()


@pytest.mark.realmodel
def test_concurrent_first_use_of_the_local_tokenizer_gets_the_real_one() -> None:
    """Regression: threads racing through the first transformers import used to fall back to cl100k_base, and
    the fallback was cached for the whole process."""
    import subprocess
    import sys

    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from collab_harness_plugins.metrics.token_amount import get_tokenizer\n"
        "with ThreadPoolExecutor(8) as ex:\n"
        "    toks = list(ex.map(lambda _: get_tokenizer('auto', assistant_model='local/smollm2'), range(8)))\n"
        "print(sorted({t.name for t in toks}), [t.note for t in toks if t.note])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "['local/smollm2'] []"

"""SFT trains on assistant tokens only: the collated batch's labels are -100 on every system / user token and the real
ids on every assistant token, for TRL's marker-based mask and for our own mask (which the embedded SmolLM2 needs);
both give the same labels and the same loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from train_helpers import CONVERSATIONS, FAST

from collab_harness.errors import ConfigError

pytest.importorskip("trl")


def _split_text(tok: Any, batch: Any) -> list[tuple[str, str]]:
    """(text of the tokens with a label, text of the real tokens without one) per row of a collated batch."""
    out = []
    for ids, labels, att in zip(batch["input_ids"].tolist(), batch["labels"].tolist(),
                                batch["attention_mask"].tolist(), strict=True):
        assert all(lab in (-100, i) for i, lab in zip(ids, labels, strict=True))  # a label is the id or -100
        kept = [i for i, lab in zip(ids, labels, strict=True) if lab != -100]
        masked = [i for i, lab, a in zip(ids, labels, att, strict=True) if lab == -100 and a]
        out.append((tok.decode(kept), tok.decode(masked)))
    return out


def _batches(session: Any) -> list[dict[str, Any]]:
    return list(session.trainer.get_train_dataloader())


def _expected(conv: list[dict[str, str]], end: str) -> str:
    return "".join(m["content"] + end for m in conv if m["role"] == "assistant")


@pytest.mark.parametrize("loss_mask", ["auto", "own-mask"])
def test_user_and_system_tokens_carry_no_loss(tiny: Path, exports: dict[str, Path], tmp_path: Path,
                                              loss_mask: str) -> None:
    from collab_harness_plugins.trainers.sft import SFTBackend

    session = SFTBackend({**FAST, "loss_mask": loss_mask}).open(data=exports["sft"], model=str(tiny),
                                                                out=tmp_path / "o")
    try:
        assert session.extra["loss_mask"] == ("template-markers" if loss_mask == "auto" else "own-mask")
        tok = session.tokenizer
        seen = set()
        for batch in _batches(session):
            for learned, masked in _split_text(tok, batch):
                # the labels are exactly the assistant turns (and their end-of-turn tokens) ...
                conv = next(c for c in CONVERSATIONS if learned == _expected(c, tok.eos_token))
                seen.add(id(conv))
                # ... and every system and user message lies in the tokens labelled -100
                for m in conv:
                    if m["role"] != "assistant":
                        assert m["content"] in masked
        assert len(seen) == len(CONVERSATIONS)
    finally:
        session.close()


def test_own_mask_equals_trl_marker_mask(tiny: Path) -> None:
    """Our prefix-rendering mask gives exactly the labels TRL derives from the {% generation %} markers."""
    from collab_harness_plugins.trainers.sft import assistant_only_labels
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    for conv in CONVERSATIONS:
        ours = assistant_only_labels(tok, conv)
        ref: Any = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert ours["input_ids"] == list(ref["input_ids"])
        assert ours["labels"] == [i if m else -100 for i, m in zip(ref["input_ids"], ref["assistant_masks"],
                                                                    strict=True)]


def test_non_prefix_preserving_template_is_refused(tiny: Path) -> None:
    from collab_harness_plugins.trainers.sft import assistant_only_labels
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    # Renders the number of messages first: every prefix renders differently from the whole conversation.
    tok.chat_template = ("{{ messages|length }}{% for m in messages %}<|start|>{{ m['role'] }}<|sep|>{{ m['content'] }}"
                         "<|end|>{% endfor %}{% if add_generation_prompt %}<|start|>assistant<|sep|>{% endif %}")
    with pytest.raises(ConfigError, match="not prefix-preserving"):
        assistant_only_labels(tok, CONVERSATIONS[0])


@pytest.mark.realmodel
@pytest.mark.slow
def test_embedded_smollm2_uses_the_own_mask_and_masks_user_turns() -> None:
    """The embedded model's ChatML template has no markers and no TRL training template: our mask applies."""
    from collab_harness_plugins.trainers.sft import assistant_only_labels, loss_mask_strategy
    from transformers import AutoTokenizer

    from collab_harness.models.local import resolve_local

    tok = AutoTokenizer.from_pretrained(resolve_local("local/smollm2"))
    assert loss_mask_strategy(tok) == "own-mask"
    conv = CONVERSATIONS[0]
    enc = assistant_only_labels(tok, conv)
    text = tok.decode([i for i, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab != -100])
    assert text == "".join(f"{m['content']}<|im_end|>\n" for m in conv if m["role"] == "assistant")

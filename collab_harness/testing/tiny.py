"""A tiny random Llama built on the spot (no download): for tests and benchmarks of training and local serving.

:func:`make_tiny_llama` trains a small byte-level BPE tokenizer with ``tokenizers`` on a fixed corpus, gives it a
chat template (with ``{% generation %}`` markers, so TRL's ``assistant_only_loss`` can mask everything but the
assistant's tokens), and saves a randomly initialised ``LlamaForCausalLM`` of a few hundred thousand parameters
next to it. Deterministic for a seed; a few seconds on a CPU. Requires the ``local`` extra (torch, transformers).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "make_tiny_llama"]

#: A Llama-3-like template; ``{% generation %}`` marks the assistant's tokens (TRL's assistant-only loss mask).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|start|>assistant<|sep|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}"
    "<|start|>{{ message['role'] }}<|sep|>{{ message['content'] }}<|end|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant<|sep|>{% endif %}"
)

_CORPUS = [
    "Hello! How can I help you today?", "I need help with an algebra problem.",
    "What is the problem you are working on?", "The answer is 42.", "Could you tell me more about what you need?",
    "Write a short article about the sea and the gulls.", "def task_func(x):\n    return x + 1\n",
    "Thanks, that is exactly what I needed.", "Let me think step by step about this question.",
    "The final answer is \\boxed{7}.", "Sure, here is a draft of the document you asked for.",
    "Which audience is the article for, and how long should it be?",
]


def make_tiny_llama(path: str | Path, *, seed: int = 0, hidden_size: int = 32, layers: int = 2,
                    vocab_size: int = 512) -> Path:
    """Build (or reuse, if ``path`` already holds one) a tiny random Llama with tokenizer and chat template."""
    out = Path(path)
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|bos|>", "<|eos|>", "<|start|>", "<|sep|>", "<|end|>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|end|>",
                                   pad_token="<|pad|>", additional_special_tokens=["<|start|>", "<|sep|>", "<|eos|>"])
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out

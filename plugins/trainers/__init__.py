"""Built-in trainer backends: ``sft``, ``dpo``, ``online-dpo``, ``ppo``, ``grpo`` (one module each, thin adapters over
TRL 1.12), their shared plumbing (``_common``), the MR reward adapters and live-policy callback (``_mr``), and the
shipped ``accelerate`` configs (``accelerate/``). See ``README_train.md``."""

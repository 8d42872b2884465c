"""How the official harness runs a model, where a model runner has to choose: stop strings, precision, context.

Each default is what the leaderboard's run does (lmms-eval 0.7.3 with the reference wrapper, BabyLLaVA-V2 in
its original code); each deviation is a named option, recorded in the run's ``run.json``
(evaluate_metrics/README.md, "How the harness runs a model").

- **Stop strings.** lmms-eval gives every ``generate_until`` task ``until=[fewshot_delimiter]``, ``["\\n\\n"]``,
  unless the task's YAML names its own; the reference wrapper's ``generate_until`` keeps the text before the
  first stop string and the scoring strips it (:func:`cut_at_stop_strings`). Its Memory rounds
  (``generate_until_multi_round``) apply none: each answer is the stripped text.
- **Precision.** The original runs BabyLLaVA-V2 in float16 (flash-attention 2) on a GPU; on a CPU float16 is
  slow and changes a few answers, so ``auto`` means float16 on an accelerator and float32 on a CPU
  (:func:`resolve_dtype`).
- **Context.** The original model code cuts every input sequence to the tokenizer's ``model_max_length``
  (8192), keeping its start: ``model_max_length`` does the same, ``never`` keeps the whole prompt
  (:func:`context_limit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# lmms-eval's `TaskConfig.fewshot_delimiter`, the `until` of every generation task that does not name its own.
STOP_STRINGS: tuple[str, ...] = ("\n\n",)
STOP_STRING_CHOICES = {"harness": STOP_STRINGS, "none": ()}

DTYPES = {
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
AUTO_DTYPE = "auto"
# The precision of the official run on an accelerator (BabyLLaVA-V2's original evaluation).
OFFICIAL_ACCELERATOR_DTYPE = torch.float16

TRUNCATE_AT_MODEL_MAX_LENGTH = "model_max_length"
NEVER_TRUNCATE = "never"
TRUNCATION_MODES = (TRUNCATE_AT_MODEL_MAX_LENGTH, NEVER_TRUNCATE)
# `--quick`: a look at whether a model runs at all, not a score: few items, short answers (an untrained model
# otherwise writes the reference wrapper's 1024 tokens per answer).
QUICK_LIMIT = 5
QUICK_MAX_NEW_TOKENS = 16

# transformers' `model_max_length` of a tokenizer that names no limit is int(1e30): no limit at all.
_NO_LIMIT = 10**9


def cut_at_stop_strings(text: str, stop_strings: Sequence[str], strip: bool = True) -> str:
    """``text`` before the first occurrence of each stop string in turn, then stripped: the reference
    wrapper's ``output.split(stop)[0]`` for each stop, followed by the scoring's strip (``strip=False``:
    as an OpenAI endpoint answers, unstripped).

    >>> cut_at_stop_strings(" B\\n\\nA", STOP_STRINGS)
    'B'
    >>> cut_at_stop_strings("\\n\\nleft", STOP_STRINGS)
    ''
    >>> cut_at_stop_strings(" left\\n\\nright ", ())
    'left\\n\\nright'
    """
    for stop in stop_strings:
        text = text.split(stop)[0]
    return text.strip() if strip else text


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """The dtype that ``name`` means on ``device``: ``auto`` is float16 on an accelerator, float32 on a CPU.

    >>> resolve_dtype("auto", "cpu"), resolve_dtype("auto", "cuda:0"), resolve_dtype("bf16", "cpu")
    (torch.float32, torch.float16, torch.bfloat16)
    """
    if name == AUTO_DTYPE:
        return torch.float32 if torch.device(device).type == "cpu" else OFFICIAL_ACCELERATOR_DTYPE
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join([AUTO_DTYPE, *DTYPES])}")
    return DTYPES[name]


def context_limit(tokenizer, truncation: str) -> int | None:
    """The most prompt tokens the model is given: the tokenizer's ``model_max_length`` under
    ``model_max_length`` (None where the tokenizer names no limit), None under ``never``."""
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {', '.join(TRUNCATION_MODES)}, got {truncation!r}")
    limit = getattr(tokenizer, "model_max_length", None)
    if truncation == NEVER_TRUNCATE or not isinstance(limit, int) or limit >= _NO_LIMIT:
        return None
    return limit

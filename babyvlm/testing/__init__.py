"""Test helpers: tiny random models of the image-text-to-text families, built offline in a second or two.

Only tests, benchmarks and demos import this package; the library itself never does.
"""

from .models import TINY_FAMILIES, answer_token_ids, save_tiny_model, train_tokenizer

__all__ = ["TINY_FAMILIES", "answer_token_ids", "save_tiny_model", "train_tokenizer"]

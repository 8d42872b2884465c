"""Deprecated: the synthetic DevCV folders and tiny models for tests moved to :mod:`babyvlm.testing.devcv`.

Test helpers live in ``babyvlm.testing``, which the library itself never imports.
"""

import warnings

from babyvlm.testing.devcv import (
    assert_lmms_eval_scores_equal,
    save_tiny_llava,
    synthetic_items,
    write_devcv_folder,
)

warnings.warn(
    "babyvlm.evaluate_metrics.testing is deprecated; import babyvlm.testing.devcv", DeprecationWarning, stacklevel=2
)

__all__ = ["assert_lmms_eval_scores_equal", "save_tiny_llava", "synthetic_items", "write_devcv_folder"]

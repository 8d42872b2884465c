"""Deprecated: the tiny BabyLLaVA-V2 models moved to :mod:`babyvlm.testing.babyllava`.

Test helpers live in ``babyvlm.testing``, which the library itself never imports.
"""

import warnings

from babyvlm.testing.babyllava import SAMPLE_UTTERANCES, build_tiny_babyllava, tiny_config

warnings.warn("babyvlm.tiny is deprecated; import babyvlm.testing.babyllava", DeprecationWarning, stacklevel=2)

__all__ = ["SAMPLE_UTTERANCES", "build_tiny_babyllava", "tiny_config"]

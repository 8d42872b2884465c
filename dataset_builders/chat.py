"""Deprecated: the chat schema moved to :mod:`babyvlm.chat`, shared by the builders and the evaluation."""

import warnings

from babyvlm.chat import *  # noqa: F403
from babyvlm.chat import __all__  # noqa: F401

warnings.warn("babyvlm.dataset_builders.chat is deprecated; import babyvlm.chat", DeprecationWarning, stacklevel=2)

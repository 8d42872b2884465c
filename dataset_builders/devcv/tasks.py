"""Deprecated: the DevCV task table moved to :mod:`babyvlm.evaluate_metrics.devcv.tasks`.

It lives beside the DevCV metric so the ``evaluate`` module folder is self-contained; the builders,
the generators, the runner and the lmms-eval plugin import it from there.
"""

import warnings

from babyvlm.evaluate_metrics.devcv.tasks import TASK_FAMILIES, TASKS, DevCVTask, canonical_task

warnings.warn(
    "babyvlm.dataset_builders.devcv.tasks is deprecated; import babyvlm.evaluate_metrics.devcv.tasks",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["TASKS", "TASK_FAMILIES", "DevCVTask", "canonical_task"]

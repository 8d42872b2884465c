"""Load a checkpoint for use (evaluation, submission, serving, exploring) only when it holds every tensor.

``from_pretrained`` initialises any tensor the checkpoint lacks (a folder without ``lm_head.weight`` gets a random
head) and only logs it: such a model answers at chance and the run exits 0. A model loaded to be *used* must have
every tensor, of its shape: :func:`load_complete` makes a missing or misshapen tensor an error naming them.
(Training from a parent may still initialise new parts, such as a connector; the recipes report those.)
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)
SHOWN = 5


class IncompleteCheckpointError(ValueError):
    """The checkpoint lacks tensors of the model, or holds them in another shape."""


def _counted(names: list) -> str:
    return f"{len(names)} tensor{'' if len(names) == 1 else 's'}"


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def load_complete(auto_class, path, **kwargs):
    """``auto_class.from_pretrained(path, **kwargs)``, refusing a checkpoint with missing or misshapen tensors
    (:class:`IncompleteCheckpointError` naming them); tensors the model does not use are named in a warning."""
    model, info = auto_class.from_pretrained(path, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
    problems = []
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        problems.append(f"{_counted(missing)} missing ({_listed(missing)})")
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        shown = [
            f"{entry[0]} {tuple(entry[1])} instead of {tuple(entry[2])}" if isinstance(entry, tuple) else str(entry)
            for entry in mismatched
        ]
        problems.append(f"{_counted(mismatched)} of the wrong shape ({_listed(shown)})")
    if problems:
        raise IncompleteCheckpointError(
            f"{path}: the checkpoint does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        logger.warning("%s: %d tensors the model does not use (%s)", path, len(unexpected), _listed(unexpected))
    return model

"""The grounding probes of a pretrained checkpoint in one call: what the demo runs after stage 2."""

from __future__ import annotations

import logging
from pathlib import Path

from ..data import MissingTaskError
from .matching import PROBE as MATCHING
from .matching import load_pairs, utterance_frame_matching
from .scoring import HEADER, ProbeResult, plain_chat, write_report, write_result
from .vocabulary import PICTURE_VOCABULARY, load_items, zero_shot_picture_vocabulary

logger = logging.getLogger(__name__)


def pretraining_probes(
    model: str | Path, pairs: str | Path, devcv: str | Path, output_dir: str | Path, *, seed: int = 0
) -> dict[str, dict]:
    """Utterance-frame matching on the held-out (``validation``) pairs of the image-utterance corpus ``pairs``
    and zero-shot Picture Vocabulary on the ``test`` items of the DevCV folder ``devcv``, each written to
    ``<output_dir>/probes/``; returns the results by probe name. A probe its data cannot feed (no held-out pairs of
    two recordings, no Picture Vocabulary items) is reported as skipped, with the reason, and written as such."""
    chat = plain_chat(model)
    probes = {
        MATCHING: lambda: utterance_frame_matching(chat, load_pairs(pairs, "validation"), seed=seed),
        PICTURE_VOCABULARY: lambda: zero_shot_picture_vocabulary(
            chat, load_items(devcv, "picture_vocabulary", "test"), seed=seed
        ),
    }
    results = {}
    for name, probe in probes.items():
        try:
            result = probe()
        except (MissingTaskError, ValueError) as error:
            logger.warning("%s: skipped: %s", name, error)
            results[name] = {"probe": name, "skipped": str(error)}
            write_report(output_dir, name, results[name])
            continue
        write_result(output_dir, result, model=str(model), seed=seed)
        results[name] = result.to_dict()
    return results


def probe_table(results: dict[str, dict]) -> str:
    """The results as the lines ``babyvlm probe`` prints (a skipped probe with its reason)."""
    lines = [HEADER]
    for name, entry in results.items():
        if "skipped" in entry:
            lines.append(f"{name:<34}skipped: {entry['skipped']}")
            continue
        # Results written before probes recorded their interval and outcomes lack those fields: their defaults.
        fields = {key: entry[key] for key in ProbeResult.__dataclass_fields__ if key in entry}
        lines.append(ProbeResult(**fields).line())
    return "\n".join(lines)

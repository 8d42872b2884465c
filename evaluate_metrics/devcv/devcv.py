"""DevCV Toolbox metrics as an ``evaluate`` module: ``evaluate.load("evaluate_metrics/devcv", "<task>")``.

The configuration name is a DevCV task (canonical name, harness key such as ``baby_pv``, or released
file key such as ``vdr-binary``). The folder is self-contained like ``evaluate``'s own metric folders:
the task table (``tasks.py``), the parsers (``parsing.py``) and the scoring rules (``scores.py``,
``items.py``) sit beside this script and import only each other and the standard library, so a copy
of the folder loads anywhere with ``evaluate.load(<folder>)``. The evaluation runner and the
lmms-eval plugin import the same plain functions from ``babyvlm.evaluate_metrics.devcv`` and so
score items exactly like this module.
"""

import datasets
import evaluate

# evaluate copies only the helpers this script imports itself (it does not follow their imports), hence
# every helper of the folder is imported here; `parsing` only for items.py. evaluate reads a comment on an
# import line as the file's URL, so the unused import is allowed file-wide:
# ruff: noqa: F401
from .items import score_item
from .parsing import parse_answer
from .scores import mean_scores
from .tasks import DIALOGUE, GENERATE, LOGLIKELIHOOD, canonical_task

_DESCRIPTION = """\
Scores model answers on one DevCV Toolbox task (BabyVLM-V2) with the official rules (the authors'
scoring helpers, which the leaderboard uses): the first standalone letter A-D; the first digit run or
number word zero..ten; for VDR the whole answer (case-insensitive, surrounding whitespace stripped)
against the gold direction or its adjacent set. An answer that holds no valid answer counts as wrong.
Memory items are scored per dialogue, Looking While Listening from 2x2 loss matrices. Lenient
parsing is reported beside, as separately named extra metrics (`*_lenient`).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: the model's generated answers (one string per item); for `memory`, one list of
        per-round answers per item; for `looking_while_listening`, one 2x2 loss matrix per item
        (`losses[image i][phrase j]`, phrase j describes image j).
    references: the gold answers (one string per item; for `memory`, one list per item). Not used
        for `looking_while_listening`.
    labels: `memory` only: per item, per round, the object label of each option in option order.
Returns:
    The task's official metrics, e.g. `{"acc": ...}`, `{"acc_exact": ..., "acc_adjacent": ...}`,
    `{"acc_learning": ..., "acc_testing_raw": ..., "acc_testing_adjusted": ...}` or
    `{"text_score": ..., "image_score": ..., "group_score": ...}`, then the task's extra metrics
    (`acc_lenient` for counting, `acc_exact_lenient` and `acc_adjacent_lenient` for VDR), plus
    `unparsable`: the number of answers that held no valid answer for the official parser.
Examples:
    >>> pv = evaluate.load("evaluate_metrics/devcv", "baby_pv")
    >>> pv.compute(predictions=["A", "the second image (b)", "i like dogs"], references=["A", "B", "C"])
    {'acc': 0.6666666666666666, 'unparsable': 1}
"""

_CITATION = """\
@inproceedings{wang2026babyvlmv2,
  title     = {BabyVLM-V2: Toward Developmentally Grounded Pretraining and Benchmarking of Vision Foundation Models},
  booktitle = {CVPR},
  year      = {2026},
  note      = {arXiv:2512.10932}
}
"""

_TEXT = datasets.Value("string")
_FEATURES_BY_PROTOCOL = {
    GENERATE: datasets.Features({"predictions": _TEXT, "references": _TEXT}),
    DIALOGUE: datasets.Features(
        {
            "predictions": datasets.List(_TEXT),
            "references": datasets.List(_TEXT),
            "labels": datasets.List(datasets.List(_TEXT)),
        }
    ),
    LOGLIKELIHOOD: datasets.Features({"predictions": datasets.List(datasets.List(datasets.Value("float64")))}),
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DevCV(evaluate.Metric):
    def _info(self):
        features = _FEATURES_BY_PROTOCOL[canonical_task(self.config_name).protocol]
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            reference_urls=["https://arxiv.org/abs/2512.10932"],
        )

    def _compute(self, predictions, references=None, labels=None):
        task = canonical_task(self.config_name)
        references = references if references is not None else [None] * len(predictions)
        labels = labels if labels is not None else [()] * len(predictions)
        items = [
            score_item(task, prediction, reference, item_labels)
            for prediction, reference, item_labels in zip(predictions, references, labels)
        ]
        extras = mean_scores([item.extra_scores for item in items])
        official = mean_scores([item.scores for item in items])
        return {**official, **extras, "unparsable": sum(item.unparsable for item in items)}

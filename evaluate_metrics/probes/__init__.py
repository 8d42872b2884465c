"""Zero-shot grounding probes: does a checkpoint use what it sees, before any task training?

A named extra beside the official DevCV tasks (``evaluate_metrics/README.md``, "Grounding probes"; the experiments
are in ``docs/grounding.md``). Each probe is one function and one sub-verb of ``babyvlm probe``
(:mod:`babyvlm.commands.probe`):

- :func:`~.matching.utterance_frame_matching` (``match``): is a held-out utterance more likely with its own frame
  than with a frame of another recording? Two-alternative forced choice.
- :func:`~.vocabulary.zero_shot_picture_vocabulary` and :func:`~.vocabulary.zero_shot_looking_while_listening`
  (``vocabulary``): the option images of DevCV items ranked by the likelihood of the word or phrase.
- :func:`~.linear.linear_probe` (``linear``): logistic regression on frozen vision features (category, colour,
  count, position of the toy world's annotations), the checkpoint's vision tower against a randomly initialised one
  of the same shape.

The likelihood probes score text in the model's plain format (:func:`.scoring.plain_chat`): BabyLLaVA-V2's
``baby_plain`` (``<image>{text}<eos>``, what stages 1-2 train on), other families a user turn holding only the
images and the text as the answer. Every result carries its accuracy, chance, n and a one-sided exact binomial
p-value of beating chance, and is written as JSON into the output folder beside the DevCV scores.
"""

from .linear import linear_probe
from .matching import utterance_frame_matching
from .scoring import ProbeResult, plain_chat
from .vocabulary import zero_shot_looking_while_listening, zero_shot_picture_vocabulary

__all__ = [
    "ProbeResult",
    "linear_probe",
    "plain_chat",
    "utterance_frame_matching",
    "zero_shot_looking_while_listening",
    "zero_shot_picture_vocabulary",
]

"""lmms-eval plugin: run the DevCV tasks with the released lmms-eval (0.7.x) on any image-text-to-text model.

1. ``python -m babyvlm.evaluate_metrics.lmms_eval_plugin --data DEVCV_DIR --output TASK_DIR`` writes the
   task folder (:mod:`.task_folder`).
2. ``lmms-eval --model babyvlm --model_args pretrained=MODEL_DIR --include_path TASK_DIR --tasks devcv``.

The model is registered through the ``lmms_eval.models`` entry point, whose payload is :func:`manifests`.
"""

MODEL_ID = "babyvlm"


def manifests():
    """lmms-eval model manifests (imported lazily: lmms-eval is an optional dependency)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [
        ModelManifest(
            model_id=MODEL_ID,
            simple_class_path="babyvlm.evaluate_metrics.lmms_eval_plugin.model.BabyVLM",
            aliases=("babyllava_v2",),
        )
    ]

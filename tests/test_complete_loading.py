"""A checkpoint loaded for use holds every tensor of its model, in its shape: otherwise an error naming them (no
randomly initialised head answering at chance)."""

import shutil

import pytest
import torch
from babyvlm.evaluate_metrics import runner
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText

from babyvlm.complete_loading import IncompleteCheckpointError, load_complete
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder


@pytest.fixture
def damaged(tiny_model_dir, tmp_path):
    """A copy of the tiny model without `lm_head.weight` and with one tensor a row too long."""
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    del weights["lm_head.weight"]
    name = "model.language_model.layers.0.mlp.down_proj.weight"
    weights[name] = torch.zeros(weights[name].shape[0] + 1, weights[name].shape[1])
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    return model


def test_a_complete_checkpoint_loads(tiny_model_dir):
    assert load_complete(AutoModelForImageTextToText, tiny_model_dir).lm_head.weight.isfinite().all()


def test_missing_and_misshapen_tensors_are_named(damaged):
    with pytest.raises(IncompleteCheckpointError) as refused:
        load_complete(AutoModelForImageTextToText, damaged)
    assert str(refused.value) == (
        f"{damaged}: the checkpoint does not fit BabyLlavaV2ForConditionalGeneration: 1 tensor missing "
        "(lm_head.weight); 1 tensor of the wrong shape (model.language_model.layers.0.mlp.down_proj.weight "
        "(65, 128) instead of (64, 128))"
    )


def test_evaluating_a_model_without_its_head_is_one_line_naming_the_tensor(damaged, tmp_path, capsys):
    data = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 1)})
    assert runner.main(["--model", str(damaged), "--data", str(data), "--output", str(tmp_path / "eval")]) == 1
    error = capsys.readouterr().err.splitlines()[-1]  # after the progress bars
    assert error.startswith(f"babyvlm eval: error: {damaged}: the checkpoint does not fit ") and (
        "1 tensor missing (lm_head.weight)" in error
    ), error

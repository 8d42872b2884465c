"""Training fails safely: a diverged run stops naming the step and the batch, nothing non-finite is saved, the
final folder appears only complete, resumption uses complete checkpoints only, and a second training into the
same folders is refused."""

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from test_locking import HOLDER
from test_sft_any_vlm import chat_rows, run_in_process, write_chat

from babyvlm import locking
from babyvlm.locking import OutputLockedError
from babyvlm.training.safeguards import NonFiniteTrainingError, last_complete_checkpoint, save_final_model


def test_a_diverging_run_stops_at_the_first_non_finite_step_naming_its_items(tiny_model_dir, tmp_path):
    data = write_chat(tmp_path / "chat", chat_rows(8))
    output = tmp_path / "out"
    with pytest.raises(NonFiniteTrainingError) as stopped:
        run_in_process(
            tiny_model_dir,
            data,
            output,
            learning_rate=1e9,
            max_steps=4,
            per_device_train_batch_size=4,
            save_strategy="steps",
            save_steps=1,
        )
    # Adam's first step at lr 1e9 moves every weight by ~1e9: the second step's loss is not finite.
    expected = r"step 2: the loss is (nan|inf) \(batch items (chat/q\d, ){3}chat/q\d\); stopped"
    assert re.match(expected, str(stopped.value)), stopped.value
    assert not output.exists()
    for checkpoint in (tmp_path / "out-checkpoints").glob("checkpoint-*"):  # whatever was saved is finite
        assert all(torch.isfinite(tensor).all() for tensor in load_file(checkpoint / "model.safetensors").values())


def test_only_complete_checkpoints_are_resumed_and_incomplete_ones_removed(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


class SavingTrainer:
    """The part of a Trainer that `save_final_model` uses: one process that writes a config."""

    accelerator = SimpleNamespace(wait_for_everyone=lambda: None)

    def is_world_process_zero(self):
        return True

    def save_model(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "config.json").write_text("{}")


def test_the_final_folder_appears_only_once_it_holds_everything(tmp_path):
    output = tmp_path / "model"

    def interrupted(folder):
        raise KeyboardInterrupt  # killed while writing the tokenizer

    with pytest.raises(KeyboardInterrupt):
        save_final_model(SavingTrainer(), output, interrupted)
    assert list(tmp_path.iterdir()) == []  # no config without a tokenizer under the final name

    save_final_model(SavingTrainer(), output, lambda folder: (folder / "tokenizer.json").write_text("{}"))
    assert sorted(path.name for path in output.iterdir()) == ["config.json", "tokenizer.json"]


@pytest.mark.parametrize("locked", ["out", "out-checkpoints"])
def test_a_second_training_into_a_locked_folder_is_refused_naming_the_holder(locked, tiny_model_dir, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / locked), locking.__file__], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=rf"{tmp_path / locked} is being written by pid {holder.pid} "):
            run_in_process(tiny_model_dir, tmp_path / "no-data-needed", tmp_path / "out")
    finally:
        holder.kill()
        holder.wait()

"""`babyvlm train assemble`: two stage-0 folders joined into a BabyLLaVA-V2 folder that is written whole (staged, then
renamed into place) and loads through the Auto classes."""

import pytest
import torch
from babyvlm.processing import train_tokenizer
from transformers import AutoModelForImageTextToText, Dinov2Model, LlamaForCausalLM

from babyvlm.testing.babyllava import SAMPLE_UTTERANCES, tiny_config
from babyvlm.training import assemble as assemble_module


@pytest.fixture
def stage0_folders(tmp_path):
    tokenizer = train_tokenizer(SAMPLE_UTTERANCES * 4, vocab_size=64, min_frequency=1)
    towers = tiny_config(len(tokenizer), tokenizer.image_token_id)  # the stage-0 models of a tiny BabyLLaVA-V2
    LlamaForCausalLM(towers.text_config).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    Dinov2Model(towers.vision_config).save_pretrained(tmp_path / "vision")
    return tmp_path / "vision", tmp_path / "lm"


def test_assembled_folder_is_written_whole_and_replaced_on_a_rerun(stage0_folders, tmp_path):
    vision, language_model = stage0_folders
    output = tmp_path / "assembled"
    output.mkdir()
    (output / "stale.bin").write_bytes(b"from an earlier run")
    assemble_module.main(["--vision", str(vision), "--language-model", str(language_model), "--output", str(output)])
    names = {path.name for path in output.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= names and "stale.bin" not in names
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no staging folder left
    model = AutoModelForImageTextToText.from_pretrained(output)
    torch.testing.assert_close(
        model.model.vision_tower.state_dict()["embeddings.cls_token"],
        Dinov2Model.from_pretrained(vision).state_dict()["embeddings.cls_token"],
    )


def test_assembled_exposure_combines_both_parts_lineages(stage0_folders, tmp_path):
    import json

    from babyvlm.training.exposure import exposure_document, write_exposure

    vision, language_model = stage0_folders
    stage = {"stage": "lm", "curriculum": "shuffled", "epochs": 1.0, "steps": 3, "video_hours": 0.5, "frames": 0}
    stage |= {"utterances": 7, "words": 20, "images": 0, "age_months_range": [6, 9], "corpora": []}
    write_exposure(language_model, exposure_document([stage]))
    output = tmp_path / "assembled"
    assemble_module.main(["--vision", str(vision), "--language-model", str(language_model), "--output", str(output)])
    document = json.loads((output / "exposure.json").read_text())
    assert document["words"] == 20 and document["stages"] == [stage] and document["age_months_range"] == [6, 9]
    assert "## Exposure" in (output / "README.md").read_text()

"""The training recipes end to end on tiny models: every stage, DDP on two CPU processes, resume after a kill."""

import json
import subprocess
import sys
from pathlib import Path

import datasets
import PIL.Image
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, Dinov2Config, Dinov2Model, GenerationConfig

from babyvlm.chat import IMAGES_FEATURE, MESSAGES_FEATURE
from babyvlm.testing.babyllava import SAMPLE_UTTERANCES, build_tiny_babyllava
from babyvlm.testing.launch import cpu_launch, kill_once_written, offline_cpu_env
from babyvlm.training import sft

REPO = Path(__file__).resolve().parents[1]
SFT = str(REPO / "recipes" / "sft.py")
TINY = REPO / "recipes" / "babyllava_v2" / "tiny"
ENV = offline_cpu_env()
COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe-data")
    datasets.Dataset.from_dict({"text": SAMPLE_UTTERANCES * 10}).to_parquet(root / "utterances" / "train.parquet")
    rows = [
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "text": None}, {"type": "text", "text": " what colour?"}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": name}]},
            ],
            "images": [PIL.Image.new("RGB", (40, 30), COLOURS[name])],
        }
        for index in range(24)
        for name in [list(COLOURS)[index % 3]]
    ]
    features = datasets.Features({"messages": MESSAGES_FEATURE, "images": IMAGES_FEATURE})
    datasets.Dataset.from_list(rows, features=features).to_parquet(root / "chat" / "train.parquet")
    vision = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        layerscale_value=1e-5,
    )
    Dinov2Model(vision).save_pretrained(root / "vision")
    build_tiny_babyllava(root / "tiny-vlm")
    return root


def launch(config, *overrides, num_processes=1):
    command = [
        *cpu_launch(num_processes),
        SFT,
        "--config",
        str(TINY / config),
        *overrides,
    ]
    result = subprocess.run(command, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def weights(directory):
    return load_file(Path(directory) / "model.safetensors")


def assert_model_repository(
    directory: Path, stage: str, library_name: str = "transformers", pipeline_tag: str = "image-text-to-text"
) -> ModelCard:
    """The folder holds what a Hub model repository holds (no checkpoints, no pickles) and a Hub-ready card."""
    names = {path.name for path in directory.iterdir()}
    assert not [name for name in names if name.startswith("checkpoint-") or name.endswith((".bin", ".pt", ".pkl"))]
    assert "README.md" in names and ("config.json" in names or "adapter_config.json" in names), names
    card = ModelCard.load(directory / "README.md")
    metadata = card.data.to_dict()
    assert metadata["license"] and metadata["pipeline_tag"] == pipeline_tag, metadata
    assert metadata["library_name"] == library_name and f"stage-{stage}" in metadata["tags"]
    assert "base_model" not in metadata or not Path(metadata["base_model"]).exists()  # never a local path
    assert f"stage `{stage}`" in card.text
    return card


@pytest.fixture(scope="module")
def stages(data, tmp_path_factory):
    """The four stages chained through `accelerate launch`, stage 2 (pretrain) on two CPU processes (DDP): one run,
    whose stages and whose DDP the two tests below check."""
    root = tmp_path_factory.mktemp("stages")
    steps = ["--max_steps", "3", "--logging_steps", "1", "--per_device_train_batch_size", "4"]
    ddp_steps = [*steps[:-1], "2"]  # 2 samples per process
    lm, align, pretrain, instruct = (root / name for name in ("lm", "align", "pretrain", "instruct"))
    launch(
        "stage0_lm.yaml",
        "--datasets",
        str(data / "utterances"),
        "--output_dir",
        str(lm),
        "--tokenizer_vocab_size",
        "300",
        "--tokenizer_min_frequency",
        "1",
        "--tokenizer_extra_texts",
        "USER:",
        "ASSISTANT:",
        "--max_length",
        "64",
        *steps,
    )
    launch(
        "stage1_align.yaml",
        "--vision_model_path",
        str(data / "vision"),
        "--language_model_path",
        str(lm),
        "--datasets",
        str(data / "chat"),
        "--output_dir",
        str(align),
        *steps,
    )
    launch(
        "stage2_pretrain.yaml",
        "--model_name_or_path",
        str(align),
        "--datasets",
        str(data / "chat"),
        "--output_dir",
        str(pretrain),
        *ddp_steps,
        num_processes=2,
    )
    launch(
        "stage3_instruct.yaml",
        "--model_name_or_path",
        str(pretrain),
        "--datasets",
        f"{data / 'chat'}@train*1",
        f"{data / 'chat'}*1",
        "--output_dir",
        str(instruct),
        *steps,
    )
    return {"lm": lm, "align": align, "pretrain": pretrain, "instruct": instruct}


@pytest.mark.slow
def test_every_stage_runs_through_accelerate_launch(data, stages):
    lm, align, pretrain, instruct = stages.values()
    # the chat template's role markers, learnt by the BPE beside the utterances, cost two tokens each
    assert AutoTokenizer.from_pretrained(lm).tokenize(" USER: ASSISTANT:") == ["Ġuser", ":", "Ġassistant", ":"]
    for stage, directory in stages.items():
        assert_model_repository(
            directory, stage, pipeline_tag="text-generation" if stage == "lm" else "image-text-to-text"
        )
        # checkpoints live beside the model, not in it
        assert (directory.with_name(f"{directory.name}-checkpoints") / "checkpoint-3").is_dir()
        # the Trainer trains with use_cache=False; the saved checkpoint generates with the KV cache again
        assert AutoConfig.from_pretrained(directory).get_text_config().use_cache, directory
        assert GenerationConfig.from_pretrained(directory).use_cache, directory
    assert json.loads((lm / "config.json").read_text())["model_type"] == "llama"

    vision = load_file(data / "vision" / "model.safetensors")
    lm_weights, align_weights, pretrain_weights, instruct_weights = (
        weights(lm),
        weights(align),
        weights(pretrain),
        weights(instruct),
    )
    # stage 1 trains the connector only: the assembled ViT and LM come through unchanged
    for name, tensor in vision.items():
        assert torch.equal(align_weights[f"model.vision_tower.{name}"], tensor)
    assert torch.equal(
        align_weights["model.language_model.layers.0.mlp.up_proj.weight"],
        lm_weights["model.layers.0.mlp.up_proj.weight"],
    )
    # stage 2 freezes the ViT and trains the LM; stage 3 trains the ViT as well
    tower = "model.vision_tower.encoder.layer.0.attention.attention.query.weight"
    assert torch.equal(pretrain_weights[tower], align_weights[tower])
    assert not torch.equal(
        pretrain_weights["model.language_model.layers.0.mlp.up_proj.weight"],
        align_weights["model.language_model.layers.0.mlp.up_proj.weight"],
    )
    assert not torch.equal(instruct_weights[tower], pretrain_weights[tower])


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(stages):
    pretrain = stages["pretrain"]
    state = json.loads((pretrain.with_name("pretrain-checkpoints") / "checkpoint-3" / "trainer_state.json").read_text())
    # 3 steps x 2 processes x 2 samples = 12 of the 24 samples: half an epoch only if both ranks trained
    assert state["epoch"] == pytest.approx(0.5)
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in state["log_history"] if "loss" in entry)


def train_in_process(*arguments):
    """`recipes/sft.py` with these arguments, run in this process (the same `main`): exit status 0."""
    assert sft.main([str(argument) for argument in arguments]) == 0


@pytest.mark.slow
def test_resume_after_kill_reaches_the_same_weights(data, tmp_path, one_thread):
    arguments = [
        "--config",
        str(TINY / "stage2_pretrain.yaml"),
        "--model_name_or_path",
        str(data / "tiny-vlm"),
        "--datasets",
        str(data / "chat"),
        "--max_steps",
        "24",
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
        "--save_total_limit",
        "10",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "1e-3",
    ]
    # only the killed run needs a process of its own; the others run in this one, on one thread as that one does
    train_in_process(*arguments, "--output_dir", tmp_path / "uninterrupted")

    interrupted = tmp_path / "interrupted"
    marker = tmp_path / "interrupted-checkpoints" / "checkpoint-4" / "trainer_state.json"
    kill_once_written([sys.executable, SFT, *arguments, "--output_dir", str(interrupted)], marker, env=ENV, cwd=REPO)
    assert not (interrupted / "model.safetensors").exists(), "killed too late: the run had already finished"

    train_in_process(*arguments, "--output_dir", interrupted)
    expected, resumed = weights(tmp_path / "uninterrupted"), weights(interrupted)
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=1e-6, msg=name)

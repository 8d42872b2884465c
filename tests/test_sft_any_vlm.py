"""Instruction tuning of any image-text-to-text model with `recipes/sft.py`: LoRA on tiny models of three families
(one through `accelerate launch`), adapters that reload and merge to the same logits and score through
`babyvlm eval`, and the runs that must fail loudly (nothing to learn, a missing dataset, a missing image)."""

import json
import logging
import re
import subprocess
from pathlib import Path

import datasets
import PIL.Image
import pytest
import torch
from babyvlm.evaluate_metrics import runner
from test_recipes import ENV, REPO, SFT, TINY, assert_model_repository
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import ModelConfig, SFTConfig

from babyvlm.chat import IMAGES_FEATURE, MESSAGES_FEATURE
from babyvlm.testing import save_tiny_model
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder
from babyvlm.testing.launch import cpu_launch
from babyvlm.training import sft
from babyvlm.training.collator import NothingToLearnError, VisionChatCollator
from babyvlm.training.data import DatasetPathError
from babyvlm.training.lora import lora_target_modules
from babyvlm.training.model_card import hub_repo_id, render_model_card

LORA_FAMILIES = ["qwen2_5_vl", "idefics3", "llava_onevision"]
# What `accelerate launch` adds is the same for every family: one family goes through it, the others run the same
# `main` in this process.
LAUNCHED_FAMILY = LORA_FAMILIES[0]


@pytest.fixture(scope="module")
def devcv(tmp_path_factory):
    """A DevCV `count` folder with train items, and one with test items."""
    root = tmp_path_factory.mktemp("devcv")
    write_devcv_folder(root / "train", {"count": synthetic_items("count", 16, split="train")}, split="train")
    write_devcv_folder(root / "test", {"count": synthetic_items("count", 6, split="test", seed=1)}, split="test")
    return root


def launch(*arguments):
    command = [*cpu_launch(1), SFT, *arguments]
    return subprocess.run(command, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=600)


def evaluate(model_dir, devcv, output):
    """`babyvlm eval` of the count test items, in this process; 8 new tokens (a count) instead of the official 1,024,
    which a random model spends in full."""
    argv = ["--model", str(model_dir), "--data", str(devcv / "test"), "--output", str(output), "--tasks", "count"]
    argv += ["--batch-size", "3", "--max-new-tokens", "8", "--device", "cpu", "--no-progress"]
    assert runner.main(argv) == 0
    return json.loads((output / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("family", LORA_FAMILIES)
def test_lora_trains_reloads_merges_and_scores_in_every_family(family, devcv, tmp_path, one_thread):
    base = save_tiny_model(family, tmp_path / "base")
    output = tmp_path / "adapter"
    arguments = [
        "--config",
        str(TINY / "stage3_instruct.yaml"),
        "--model_name_or_path",
        str(base),
        "--datasets",
        f"{devcv / 'train'}:count@train",
        "--output_dir",
        str(output),
        "--vlm_packing",
        "false",
        "--use_peft",
        "--lora_r",
        "8",
        "--lora_alpha",
        "16",
        "--merge_adapter",
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "4",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--logging_steps",
        "1",
    ]
    if family == LAUNCHED_FAMILY:
        result = launch(*arguments)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    else:
        assert sft.main(arguments) == 0

    assert (output / "adapter_config.json").is_file() and not (output / "model.safetensors").exists()
    assert_model_repository(output, "instruct", library_name="peft")
    merged = output.with_name("adapter-merged")
    assert_model_repository(merged, "instruct")
    state = json.loads((tmp_path / "adapter-checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))

    # the saved adapter on its base gives the merged model's logits
    from peft import PeftModel

    processor = AutoProcessor.from_pretrained(output)
    rows = datasets.load_dataset(str(devcv / "train"), "count", split="train").select(range(2))
    batch = VisionChatCollator(processor)([{"messages": r["messages"], "images": r["images"]} for r in rows])
    with torch.no_grad():
        adapted = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), output).eval()
        merged_model = AutoModelForImageTextToText.from_pretrained(merged).eval()
        base_model = AutoModelForImageTextToText.from_pretrained(base).eval()
        logits = adapted(**batch).logits
        # merging sums the low-rank product into the weights: equal up to float rounding of large random weights
        torch.testing.assert_close(merged_model(**batch).logits, logits, rtol=1e-3, atol=1e-3)
        assert not torch.allclose(base_model(**batch).logits, logits)  # the adapter changed something

    # babyvlm eval scores the adapter folder and the merged folder alike
    assert evaluate(output, devcv, tmp_path / "eval-adapter") == evaluate(merged, devcv, tmp_path / "eval-merged")


def chat_rows(count: int, long_every: int = 0, image_path: str | None = None) -> list[dict]:
    """Colour questions; every `long_every`-th has a question long enough to lose its answer to a small budget."""
    rows = []
    for index in range(count):
        question = " what colour?" + (" look again" * 40 if long_every and index % long_every == 0 else "")
        rows.append(
            {
                "id": f"q{index}",
                "messages": [
                    {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": question}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
                ],
                "images": [image_path or PIL.Image.new("RGB", (40, 30), (255, 0, 0))],
            }
        )
    return rows


def write_chat(directory: Path, rows: list[dict]) -> Path:
    features = datasets.Features(
        {"id": datasets.Value("string"), "messages": MESSAGES_FEATURE, "images": IMAGES_FEATURE}
    )
    datasets.Dataset.from_list(rows, features=features).to_parquet(directory / "train.parquet")
    return directory


def run_in_process(model_dir, data_dir, output, **overrides):
    args = sft.RecipeArguments(stage="instruct", datasets=[str(data_dir)], **overrides.pop("recipe", {}))
    settings = {
        "output_dir": str(output),
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "gradient_checkpointing": False,
        "logging_steps": 1,
        **overrides,
    }
    return sft.train(args, SFTConfig(**settings), ModelConfig(model_name_or_path=str(model_dir)))


def test_a_budget_that_cuts_every_answer_fails_the_run(tiny_model_dir, tmp_path):
    data = write_chat(tmp_path / "chat", chat_rows(8))
    with pytest.raises(NothingToLearnError, match=r"no sample of this batch .* max_length=10 \(items: chat/q"):
        run_in_process(tiny_model_dir, data, tmp_path / "out", max_length=10)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_an_epoch_with_too_many_unlearnable_samples_fails_naming_them(tiny_model_dir, tmp_path, caplog):
    data = write_chat(tmp_path / "chat", chat_rows(8, long_every=4))  # q0 and q4 lose their answers
    with pytest.raises(
        NothingToLearnError, match=r"25% of the samples had no assistant token .* \(chat/q\d, chat/q\d\)"
    ):
        run_in_process(tiny_model_dir, data, tmp_path / "strict", max_length=64, num_train_epochs=1, max_steps=-1)
    with caplog.at_level(logging.WARNING):
        run_in_process(
            tiny_model_dir,
            data,
            tmp_path / "lenient",
            max_length=64,
            num_train_epochs=1,
            max_steps=-1,
            recipe={"max_unlearnable_fraction": 0.5},
        )
    assert "2 of 8 samples cut to max_length=64" in caplog.text
    assert "2 of 8 samples have no assistant token left to learn" in caplog.text


def test_a_missing_image_is_skipped_and_reported_or_fails_when_strict(tiny_model_dir, tmp_path, caplog):
    image = tmp_path / "frame.png"
    PIL.Image.new("RGB", (40, 30), (0, 0, 255)).save(image)
    data = write_chat(tmp_path / "chat", chat_rows(4) + chat_rows(1, image_path=str(image))[:1])
    image.unlink()  # the files changed after the build
    with caplog.at_level(logging.WARNING):
        run_in_process(tiny_model_dir, data, tmp_path / "skip", max_steps=1)
    assert f"image {image} cannot be read" in caplog.text
    assert "1 samples skipped for an image that cannot be read (chat/q0: " in caplog.text
    with pytest.raises(FileNotFoundError, match=f"item chat/q0: image {image} cannot be read"):
        run_in_process(tiny_model_dir, data, tmp_path / "strict", max_steps=1, recipe={"strict_images": True})


def test_a_dataset_path_that_does_not_exist_is_one_line(tiny_model_dir, tmp_path, capsys):
    missing = tmp_path / "no-such-devcv"
    argv = ["--config", str(TINY / "stage3_instruct.yaml"), "--model_name_or_path", str(tiny_model_dir)]
    assert sft.main([*argv, "--datasets", str(missing), "--output_dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert (
        error.strip().splitlines()[-1]
        == f"babyvlm train sft: error: dataset {missing}: no such folder, and not a Hub dataset (FileNotFoundError)"
    )
    assert "Traceback" not in error
    with pytest.raises(DatasetPathError):
        run_in_process(tiny_model_dir, missing, tmp_path / "out")


def test_quantization_is_refused_without_cuda(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = write_chat(tmp_path / "chat", chat_rows(2))
    args = sft.RecipeArguments(stage="instruct", datasets=[str(data)])
    model_args = ModelConfig(model_name_or_path=str(tiny_model_dir), use_peft=True, load_in_4bit=True)
    with pytest.raises(ValueError, match="QLoRA.*needs a CUDA GPU, and this run has none"):
        sft.train(args, SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none"), model_args)


def test_cards_name_hub_repos_never_local_paths(tmp_path):
    assert hub_repo_id("Qwen/Qwen2.5-VL-7B-Instruct") == "Qwen/Qwen2.5-VL-7B-Instruct"
    snapshot = tmp_path / "hub" / "models--llava-hf--llava-onevision-qwen2-7b-ov-hf" / "snapshots" / "abc"
    assert hub_repo_id(snapshot) == "llava-hf/llava-onevision-qwen2-7b-ov-hf"
    (tmp_path / "outputs" / "stage2").mkdir(parents=True)
    assert hub_repo_id(tmp_path / "outputs" / "stage2") is None
    card = render_model_card(
        "instruct",
        "stage 3",
        [{"path": "babyvlm/devcv", "name": "count"}, str(tmp_path / "local-devcv")],
        "Qwen/Qwen2.5-VL-7B-Instruct",
        {"learning_rate": 1e-4},
        license="apache-2.0",
        library_name="peft",
    )
    (tmp_path / "README.md").write_text(card)
    from huggingface_hub import ModelCard

    metadata = ModelCard.load(tmp_path / "README.md").data.to_dict()
    assert metadata["base_model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and metadata["datasets"] == ["babyvlm/devcv"]
    assert metadata["library_name"] == "peft" and metadata["license"] == "apache-2.0"


def test_lora_targets_the_language_model_unless_the_vision_tower_trains(tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(save_tiny_model("qwen2_5_vl", tmp_path / "qwen"))

    names = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    frozen_tower = [n for n in names if re.fullmatch(lora_target_modules(model, train_vision=False), n)]
    with_tower = [n for n in names if re.fullmatch(lora_target_modules(model, train_vision=True), n)]
    assert frozen_tower and not [n for n in frozen_tower if ".visual." in n or n.startswith("lm_head")]
    assert [n for n in with_tower if ".visual." in n] and "lm_head" not in with_tower


@pytest.mark.parametrize("config", sorted(str(path) for path in REPO.glob("recipes/*/devcv_instruct_lora*.yaml")))
def test_the_vlm_recipes_parse_with_every_key_known(config, tmp_path):
    # bf16 needs a GPU: parse the YAML as it would run there, with only that switched off
    args, training_args, model_args = sft.parse_args(
        ["--config", config, "--bf16", "false", "--output_dir", str(tmp_path)]
    )
    assert args.stage == "instruct" and model_args.use_peft and model_args.lora_r == 64
    assert not args.vlm_packing and hub_repo_id(model_args.model_name_or_path) == model_args.model_name_or_path

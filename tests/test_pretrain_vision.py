"""Stage 0 vision end to end on a tiny ViT: `accelerate launch recipes/pretrain_vision.py` on CPU, accelerate's
checkpoint naming and rotation, resume after a kill (an interrupted save ignored), a clean exported model folder,
the exported teacher inside BabyLLaVA-V2, and learning on a fixed batch."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
import torch
from accelerate import Accelerator
from babyvlm.modeling import BabyLlavaV2ForConditionalGeneration
from filelock import FileLock
from safetensors.torch import load_file
from transformers import AutoConfig, Dinov2Model

from babyvlm.testing.babyllava import tiny_config
from babyvlm.testing.launch import cpu_launch, kill_once_written, offline_cpu_env
from babyvlm.training.dino_data import MultiCropAugmentation, collate_crops

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "pretrain_vision.py"
TINY_YAML = REPO / "recipes" / "babyllava_v2" / "tiny" / "stage0_vision.yaml"
# One thread everywhere: the resumed run must repeat the reference run's arithmetic bit for bit.
ENV = offline_cpu_env()
SHORT_RUN = [
    "--max_steps",
    "4",
    "--save_steps",
    "2",
    "--save_total_limit",
    "3",
    "--logging_steps",
    "1",
    "--per_device_train_batch_size",
    "4",
    "--warmup_steps",
    "1",
]


def shapes_image(seed: int) -> PIL.Image.Image:
    """A frame-like image: a plain background with three coloured rectangles."""
    rng = np.random.default_rng(seed)
    image = PIL.Image.new("RGB", (48, 40), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = PIL.ImageDraw.Draw(image)
    for _ in range(3):
        left, top = (int(v) for v in rng.integers(0, 30, 2))
        width, height = (int(v) for v in rng.integers(5, 18, 2))
        draw.rectangle([left, top, left + width, top + height], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for index in range(12):
        shapes_image(index).save(folder / f"frame_{index:02d}.png")
    return folder


def recipe_command(frames: Path, output_dir: Path) -> list[str]:
    return [
        str(RECIPE),
        "--config",
        str(TINY_YAML),
        "--dataset_name",
        str(frames),
        "--output_dir",
        str(output_dir),
        *SHORT_RUN,
    ]


def checkpoints_of(output_dir: Path) -> Path:
    """Where the recipe's accelerate checkpoints of `output_dir` live (the default `checkpoints_dir`)."""
    return Path(f"{output_dir}-checkpoints") / "checkpoints"


# What a model repository holds, and what the run saw and how its collapse monitor judged it; nothing else.
MODEL_FOLDER = {"config.json", "model.safetensors", "README.md", "exposure.json", "collapse.json"}


def logged_steps(stdout: str) -> list[dict]:
    return [json.loads(line) for line in re.findall(r'\{"step".*?\}', stdout)]


@pytest.fixture(scope="module")
def reference_run(frames, tmp_path_factory) -> tuple[Path, str]:
    """An uninterrupted 4-step run through `accelerate launch` on CPU, logging to TensorBoard (the resumed run of
    test_resume_after_kill_... does not log, and must reach the same weights), made once per test session: pytest-xdist
    workers share it through a locked folder of the session instead of each training its own."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above the workers' own
    output_dir, log = shared / "stage0-vision-reference", shared / "stage0-vision-reference.log"
    with FileLock(f"{log}.lock"):
        if not log.is_file():
            result = subprocess.run(
                cpu_launch(1) + recipe_command(frames, output_dir) + ["--report_to", "tensorboard"],
                env=ENV,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
            log.write_text(result.stdout + result.stderr)
    return output_dir, log.read_text()


@pytest.mark.slow
def test_accelerate_launch_logs_finite_losses_and_collapse_monitors(reference_run):
    output_dir, output = reference_run
    logs = logged_steps(output)
    assert [entry["step"] for entry in logs] == [1, 2, 3, 4]
    monitors = ("loss", "dino_loss", "ibot_loss", "koleo_loss", "teacher_entropy", "teacher_marginal_entropy")
    for entry in logs:
        assert all(np.isfinite(entry[key]) for key in monitors), entry
        assert 0 <= entry["teacher_entropy"] <= np.log(64) + 1e-4  # 64 prototypes in the tiny YAML
    assert logs[0]["teacher_temperature"] == pytest.approx(0.04) and logs[0]["teacher_momentum"] == pytest.approx(0.992)
    saved = sorted(checkpoints_of(output_dir).iterdir())
    assert [path.name for path in saved] == ["checkpoint_0", "checkpoint_1"]  # accelerate's automatic naming
    assert [json.loads((path / "trainer_state.json").read_text())["global_step"] for path in saved] == [2, 4]
    assert {path.name for path in output_dir.iterdir()} == MODEL_FOLDER  # no checkpoints, logs or pickles
    assert list(Path(f"{output_dir}-checkpoints").glob("stage0_vision/events.out.tfevents.*"))  # logs go there
    assert not list(output_dir.parent.glob(f".{output_dir.name}.tmp-*"))  # no staging folder left


@pytest.mark.slow
def test_exported_teacher_is_the_vision_tower_of_babyllava(reference_run):
    output_dir, _ = reference_run
    teacher = Dinov2Model.from_pretrained(output_dir).eval()
    vision_config = AutoConfig.from_pretrained(output_dir)
    assert vision_config.model_type == "dinov2" and vision_config.drop_path_rate == 0.0
    card = (output_dir / "README.md").read_text()
    assert "stage `vision`" in card and "on 12 images" in card and "split train, column image" in card
    assert "| teacher_momentum | 0.992 |" in card

    config = tiny_config(vocab_size=64, image_token_id=63, vision_config=vision_config.to_dict())
    model = BabyLlavaV2ForConditionalGeneration(config).eval()
    model.model.vision_tower.load_state_dict(teacher.state_dict())
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = torch.stack(model.model.get_image_features(pixel_values=pixels).pooler_output)
        expected = model.model.multi_modal_projector(teacher(pixels).last_hidden_state)
    torch.testing.assert_close(features, expected)

    # The last checkpoint holds the same teacher, next to the student and the centres.
    checkpoint = load_file(checkpoints_of(output_dir) / "checkpoint_1" / "model.safetensors")
    assert all(torch.equal(checkpoint[f"teacher.backbone.{key}"], value) for key, value in teacher.state_dict().items())
    assert {"cls_targets.center", "patch_targets.center"} <= checkpoint.keys()


@pytest.mark.slow
def test_resume_after_kill_skips_an_interrupted_save_and_reaches_the_same_weights(frames, reference_run, tmp_path):
    reference_dir, _ = reference_run
    output_dir = tmp_path / "killed"
    checkpoints = checkpoints_of(output_dir)
    command = [sys.executable, *recipe_command(frames, output_dir)]
    first = checkpoints / "checkpoint_0" / "trainer_state.json"
    kill_once_written(command, first, env=ENV, cwd=REPO, timeout=240)
    assert json.loads(first.read_text())["global_step"] == 2
    # A tiny step is faster than the polling: make whatever the run wrote after step 2 look like a kill during the
    # second save (accelerate's folder there, no state file yet) and drop the export.
    interrupted = checkpoints / "checkpoint_1"
    if interrupted.is_dir():
        (interrupted / "trainer_state.json").unlink(missing_ok=True)
    else:
        interrupted.mkdir()
        (interrupted / "model.safetensors").write_bytes(
            (checkpoints / "checkpoint_0" / "model.safetensors").read_bytes()[:100]
        )
    shutil.rmtree(output_dir, ignore_errors=True)

    result = subprocess.run(command, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert f"removing {interrupted}: a save that did not finish" in result.stdout
    assert f"resumed from {checkpoints / 'checkpoint_0'} at step 2" in result.stdout
    assert [entry["step"] for entry in logged_steps(result.stdout + result.stderr)] == [3, 4]
    assert json.loads((interrupted / "trainer_state.json").read_text())["global_step"] == 4
    for resumed_file, reference_file in (
        (interrupted / "model.safetensors", checkpoints_of(reference_dir) / "checkpoint_1" / "model.safetensors"),
        (output_dir / "model.safetensors", reference_dir / "model.safetensors"),
    ):
        resumed, uninterrupted = load_file(resumed_file), load_file(reference_file)
        assert resumed.keys() == uninterrupted.keys()
        assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed), resumed_file
    for name in ("exposure.json", "collapse.json"):  # what it saw and how its monitor judged it, continued exactly
        assert json.loads((output_dir / name).read_text()) == json.loads((reference_dir / name).read_text()), name


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(frames, tmp_path):
    output_dir = tmp_path / "model"
    command = recipe_command(frames, output_dir) + [
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--centering",
        "sinkhorn_knopp",
    ]
    result = subprocess.run(
        cpu_launch(2) + command,
        env=ENV,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    logs = logged_steps(result.stdout + result.stderr)
    assert [entry["step"] for entry in logs] == [1, 2]  # the main process alone logs
    assert all(np.isfinite(entry["loss"]) for entry in logs)
    checkpoint = checkpoints_of(output_dir) / "checkpoint_0"
    assert {"random_states_0.pkl", "random_states_1.pkl", "optimizer.bin", "trainer_state.json"} <= {
        p.name for p in checkpoint.iterdir()
    }
    assert {path.name for path in output_dir.iterdir()} == MODEL_FOLDER
    assert "global batch 4 (2 process(es))" in (output_dir / "README.md").read_text()


@pytest.fixture(scope="module")
def recipe():
    """The recipe's body, which recipes/pretrain_vision.py launches."""
    from babyvlm.training import pretrain_vision

    return pretrain_vision


@pytest.mark.parametrize("centering", ["centering", "sinkhorn_knopp"])
@pytest.mark.slow
def test_loss_decreases_on_a_fixed_batch(recipe, one_thread, tmp_path, centering):
    # Constant schedules, and (with centring) a centre that follows the batch at once: the teacher targets keep their
    # sharpness, so the loss can only fall by the student learning to predict them.
    constant = [
        "--learning_rate",
        "3e-4",
        "--min_learning_rate",
        "3e-4",
        "--warmup_steps",
        "0",
        "--weight_decay_end",
        "0.04",
        "--teacher_temperature_start",
        "0.04",
        "--teacher_temperature",
        "0.04",
        "--teacher_momentum_end",
        "0.992",
        "--freeze_last_layer_steps",
        "0",
        "--drop_path_rate",
        "0",
        "--center_momentum",
        "0",
    ]
    args, dino_config, crop_config = recipe.parse_args(
        [
            "--config",
            str(TINY_YAML),
            "--dataset_name",
            "unused",
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "20",
            "--centering",
            centering,
            *constant,
        ]
    )
    torch.manual_seed(0)
    backbone = recipe.build_backbone(args)
    model = recipe.DinoPretrainingModel(backbone, dino_config).train()
    optimizer = recipe.build_optimizer(model, args)
    augmentation = MultiCropAugmentation(crop_config, backbone.config.patch_size)
    batch = collate_crops([augmentation(shapes_image(index), seed=index) for index in range(8)])
    accelerator = Accelerator()  # the model and the batch stay on the CPU; only backward and clipping go through it
    losses = [
        recipe.training_step(accelerator, model, optimizer, batch, step, args)[0].loss.item() for step in range(20)
    ]
    assert all(np.isfinite(losses))
    # Step 0 uses the zero-initialised centre; from step 1 on the targets are centred.
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[1:6]), losses


def tiny_run(recipe, checkpoints_dir: Path, total_limit: int | None):
    """An Accelerator configured as the recipe configures it, with a one-weight model whose value is the step."""
    project = recipe.ProjectConfiguration(
        project_dir=str(checkpoints_dir), automatic_checkpoint_naming=True, total_limit=total_limit
    )
    accelerator = Accelerator(cpu=True, project_config=project)
    model = torch.nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return (accelerator, *accelerator.prepare(model, optimizer))


def saved_steps(checkpoints_dir: Path) -> dict[str, int]:
    return {
        path.name: json.loads((path / "trainer_state.json").read_text())["global_step"]
        for path in sorted((checkpoints_dir / "checkpoints").iterdir())
    }


def test_checkpoints_are_named_by_accelerate_and_rotated_to_the_total_limit(recipe, tmp_path):
    accelerator, model, _ = tiny_run(recipe, tmp_path, total_limit=2)
    for step in range(1, 5):
        model.weight.data.fill_(step)
        assert recipe.save_checkpoint(accelerator, step) == tmp_path / "checkpoints" / f"checkpoint_{step - 1}"
    assert saved_steps(tmp_path) == {"checkpoint_2": 3, "checkpoint_3": 4}


def test_resume_removes_an_interrupted_save_and_continues_the_numbering(recipe, tmp_path):
    accelerator, model, _ = tiny_run(recipe, tmp_path, total_limit=2)
    for step in (10, 20):
        model.weight.data.fill_(step)
        recipe.save_checkpoint(accelerator, step)
    interrupted = tmp_path / "checkpoints" / "checkpoint_2"  # accelerate's folder of a save killed half-way
    interrupted.mkdir()
    (interrupted / "model.safetensors").write_bytes(b"truncated")

    accelerator, model, _ = tiny_run(recipe, tmp_path, total_limit=2)
    resumed = recipe.resume(accelerator, SimpleNamespace(resume_from_checkpoint=None), tmp_path)
    assert resumed == (20, tmp_path / "checkpoints" / "checkpoint_1")
    assert model.weight.item() == 20 and not interrupted.exists()
    recipe.save_checkpoint(accelerator, 30)  # numbered after the newest complete one; the oldest rotated out
    assert saved_steps(tmp_path) == {"checkpoint_1": 20, "checkpoint_2": 30}


def test_resume_from_an_incomplete_checkpoint_fails(recipe, tmp_path):
    accelerator, _, _ = tiny_run(recipe, tmp_path / "run", total_limit=None)
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="half is not a complete checkpoint"):
        recipe.resume(accelerator, SimpleNamespace(resume_from_checkpoint=str(tmp_path / "half")), tmp_path / "run")


def test_checkpoints_of_the_earlier_layout_in_output_dir_stop_the_run(recipe, tmp_path, capsys):
    (tmp_path / "checkpoint-4").mkdir()
    argv = ["--config", str(TINY_YAML), "--dataset_name", "unused", "--output_dir", str(tmp_path)]
    with pytest.raises(FileExistsError, match="checkpoints now live in .*-checkpoints"):
        recipe.train(*recipe.parse_args(argv))
    assert recipe.main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("babyvlm train vision: error: ") and error.count("\n") == 1

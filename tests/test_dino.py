"""Unit tests of the DINOv2-style objective (babyvlm.training.dino) and its data (babyvlm.training.dino_data)."""

import json
import math
from itertools import pairwise

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from transformers import Dinov2Config, Dinov2Model

from babyvlm.training.collapse import CollapseMonitor, collapse_card_section
from babyvlm.training.dino import (
    DinoConfig,
    DinoHead,
    DinoPretrainingModel,
    TeacherTargets,
    cosine_schedule,
    dino_loss,
    entropy,
    ibot_loss,
    koleo_loss,
    parameter_groups,
    sinkhorn_knopp,
    soft_cross_entropy,
    teacher_monitors,
)
from babyvlm.training.dino_data import (
    MultiCropAugmentation,
    MultiCropConfig,
    MultiCropDataset,
    StreamBatchSampler,
    block_mask,
    collate_crops,
    load_image_dataset,
)

EXPOSURE_NAMES = ("age_months", "child", "video_seconds", "frames", "utterances", "words", "images")
TINY_CROPS = {"global_crops_size": 32, "local_crops_number": 2, "local_crops_size": 16}


def tiny_model(**dino_overrides) -> DinoPretrainingModel:
    torch.manual_seed(0)
    vision = Dinov2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8, drop_path_rate=0.1
    )
    dino = DinoConfig(num_prototypes=32, head_hidden_size=32, head_bottleneck_size=8, **dino_overrides)
    return DinoPretrainingModel(Dinov2Model(vision), dino)


def noise_image(seed: int, size=(40, 36)) -> PIL.Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels)


# --- losses and targets ---------------------------------------------------------------------------------------------


def test_head_scores_are_cosines_independent_of_prototype_scale():
    torch.manual_seed(0)
    head = DinoHead(16, num_prototypes=10, hidden_size=32, bottleneck_size=8, num_layers=3)
    features = torch.randn(5, 16)
    scores = head(features)
    assert scores.shape == (5, 10) and scores.abs().max() <= 1 + 1e-6
    with torch.no_grad():
        head.prototypes.weight.mul_(7.0)
    torch.testing.assert_close(head(features), scores)


def test_koleo_falls_as_points_spread_and_needs_two_points():
    torch.manual_seed(0)
    centre = torch.randn(1, 8)
    clustered = centre + 0.01 * torch.randn(16, 8)
    spread = torch.randn(16, 8)
    assert koleo_loss(spread) < koleo_loss(clustered)
    assert koleo_loss(spread * 5) == pytest.approx(koleo_loss(spread).item())  # scale-free: rows are normalised
    with pytest.raises(ValueError, match="at least 2"):
        koleo_loss(torch.randn(1, 8))


def test_sinkhorn_knopp_rows_are_distributions_and_prototypes_share_the_mass():
    torch.manual_seed(0)
    logits = 0.3 * torch.randn(64, 8)  # cosine-sized scores, as the head gives
    logits[:, 0] += 0.3  # every sample leans to prototype 0
    assignments = sinkhorn_knopp(logits, temperature=0.1, iterations=50)
    torch.testing.assert_close(assignments.sum(dim=1), torch.ones(64))
    torch.testing.assert_close(assignments.sum(dim=0), torch.full((8,), 64 / 8), rtol=0, atol=1e-3)
    plain = F.softmax(logits / 0.1, dim=-1).sum(dim=0)
    assert plain[0] > 2 * plain[1:].mean()  # without balancing, prototype 0 would take most of the mass


def test_centering_removes_a_shared_bias_and_stays_finite_on_huge_logits():
    torch.manual_seed(0)
    targets = TeacherTargets(num_prototypes=8, method="centering", momentum=0.5)
    logits = torch.randn(32, 8)
    logits[:, 3] += 1e4  # one prototype wins for every sample
    first = targets(logits, temperature=0.04)
    assert torch.isfinite(first).all() and first[:, 3].mean() > 0.99
    torch.testing.assert_close(targets.center, 0.5 * logits.mean(dim=0, keepdim=True))
    for _ in range(30):
        centred = targets(logits, temperature=0.04)
    assert centred[:, 3].mean() < 0.5  # the centre absorbed the bias: targets depend on the samples again
    loss = soft_cross_entropy(torch.randn(32, 8), centred, temperature=0.1)
    assert torch.isfinite(loss).all()


def test_centering_ignores_an_empty_batch():
    targets = TeacherTargets(num_prototypes=4, method="centering", momentum=0.9)
    targets(torch.ones(3, 4), temperature=0.1)
    before = targets.center.clone()
    assert targets(torch.empty(0, 4), temperature=0.1).shape == (0, 4)
    torch.testing.assert_close(targets.center, before)


def test_dino_loss_averages_every_pair_of_different_views():
    torch.manual_seed(0)
    student = torch.randn(5, 3, 6)  # 2 global + 3 local crops, batch 3
    teacher = F.softmax(torch.randn(2, 3, 6), dim=-1)
    pairs = [soft_cross_entropy(student[s], teacher[t], 0.1).mean() for t in range(2) for s in range(5) if s != t]
    torch.testing.assert_close(dino_loss(student, teacher, 0.1), torch.stack(pairs).mean())


def test_ibot_loss_weighs_images_equally_whatever_their_masked_count():
    masks = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    teacher = F.one_hot(torch.tensor([0, 1, 1, 1]), 2).float()
    student = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    # Every masked patch costs log(2); image 0 and image 1 each contribute log(2); image 2 has no masks but counts.
    assert ibot_loss(student, teacher, masks, temperature=1.0).item() == pytest.approx(2 * math.log(2) / 3)


def test_entropy_bounds():
    assert entropy(torch.full((4,), 0.25)).item() == pytest.approx(math.log(4))
    assert entropy(torch.tensor([1.0, 0.0, 0.0])).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("warmup", [0, 10])
def test_cosine_schedule_hits_its_endpoints(warmup):
    values = [
        cosine_schedule(step, 100, start=1.0, end=0.1, warmup_steps=warmup, warmup_start=0.5) for step in range(121)
    ]
    assert values[0] == pytest.approx(0.5 if warmup else 1.0)
    assert values[warmup] == pytest.approx(1.0)
    assert values[100] == pytest.approx(0.1) and values[120] == pytest.approx(0.1)
    assert all(a >= b for a, b in pairwise(values[warmup:]))  # monotone after the warm-up
    # momentum 0.992 -> 1 and temperature 0.04 -> 0.07 (warm-up then constant), as the recipe uses them
    assert cosine_schedule(1000, 1000, 0.992, 1.0) == pytest.approx(1.0)
    assert cosine_schedule(0, 1000, 0.07, 0.07, 300, 0.04) == pytest.approx(0.04)
    assert cosine_schedule(300, 1000, 0.07, 0.07, 300, 0.04) == pytest.approx(0.07)


# --- the student/teacher pair ---------------------------------------------------------------------------------------


def crop_batch(batch=4, masked=True):
    torch.manual_seed(1)
    masks = torch.zeros(2, batch, 16, dtype=torch.bool)
    if masked:
        masks[0, :, :5] = True
    return {
        "global_crops": torch.randn(2, batch, 3, 32, 32),
        "local_crops": torch.randn(2, batch, 3, 16, 16),
        "masks": masks,
    }


@pytest.mark.slow
def test_teacher_starts_as_the_student_and_only_the_student_learns():
    model = tiny_model().train()
    assert not model.teacher.training and model.student.training
    assert model.teacher["backbone"].config.drop_path_rate == 0.0
    for (name, s), t in zip(model.student.named_parameters(), model.teacher.parameters(), strict=True):
        assert torch.equal(s, t), name
        assert not t.requires_grad
    output = model(**crop_batch(), teacher_temperature=0.04)
    assert all(torch.isfinite(output[key]) for key in output.keys())
    output.loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student["backbone"].embeddings.mask_token.grad.abs().sum() > 0  # the masked patches reach the student


def test_forward_without_masks_or_local_crops():
    model = tiny_model(centering="sinkhorn_knopp")
    batch = crop_batch(masked=False)
    batch["local_crops"] = batch["local_crops"][:0]
    output = model(**batch, teacher_temperature=0.04)
    assert output.ibot_loss.item() == 0.0 and torch.isfinite(output.loss)


def test_update_teacher_is_an_exponential_moving_average():
    model = tiny_model()
    with torch.no_grad():
        for parameter in model.student.parameters():
            parameter.add_(1.0)
    before = [p.clone() for p in model.teacher.parameters()]
    model.update_teacher(0.75)
    for old, new, student in zip(before, model.teacher.parameters(), model.student.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * student)
    model.update_teacher(0.0)
    assert all(torch.equal(t, s) for t, s in zip(model.teacher.parameters(), model.student.parameters(), strict=True))


def test_parameter_groups_cover_the_student_once_with_dinov2_multipliers():
    model = tiny_model()
    groups = parameter_groups(model, layerwise_decay=0.5, patch_embed_lr_multiplier=0.2)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.student.parameters())

    def group_of(parameter):
        return next(g for g in groups if any(p is parameter for p in g["params"]))

    backbone = model.student["backbone"]  # 2 blocks: depths 0 (embeddings), 1, 2, 3 (final norm and head)
    assert group_of(backbone.embeddings.patch_embeddings.projection.weight)["lr_multiplier"] == pytest.approx(
        0.5**3 * 0.2
    )
    assert group_of(backbone.encoder.layer[1].mlp.fc1.weight)["lr_multiplier"] == pytest.approx(0.5)
    assert group_of(model.student["head"].prototypes.weight)["lr_multiplier"] == 1.0
    assert group_of(backbone.encoder.layer[0].mlp.fc1.weight)["weight_decay_multiplier"] == 1.0
    block = backbone.encoder.layer[0]
    for no_decay in (block.mlp.fc1.bias, backbone.layernorm.weight, block.layer_scale1.lambda1):
        assert group_of(no_decay)["weight_decay_multiplier"] == 0.0


def test_config_validation():
    with pytest.raises(ValueError, match="koleo_loss_weight"):
        DinoConfig(koleo_loss_weight=-1)
    with pytest.raises(ValueError, match="global_crops_number"):
        MultiCropConfig(global_crops_number=1)
    with pytest.raises(ValueError, match="local_crops_scale"):
        MultiCropConfig(local_crops_scale=[0.5, 0.1])
    with pytest.raises(ValueError, match="not a multiple of the ViT patch size 16"):
        MultiCropAugmentation(MultiCropConfig(local_crops_size=100), patch_size=16)


# --- data ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0, 4, 20, 60])
def test_block_mask_masks_at_most_the_target_in_blocks(target):
    torch.manual_seed(target)
    mask = block_mask(grid=10, num_masked=target)
    assert mask.shape == (100,) and mask.dtype == torch.bool
    assert 0.5 * target <= mask.sum() <= target


def test_augmentation_is_a_function_of_the_seed_and_leaves_the_global_generator_alone():
    augmentation = MultiCropAugmentation(MultiCropConfig(**TINY_CROPS, mask_probability=1.0), patch_size=8)
    image = noise_image(0)
    state = torch.get_rng_state()
    first, again, other = augmentation(image, seed=3), augmentation(image, seed=3), augmentation(image, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert first["global_crops"].shape == (2, 3, 32, 32) and first["local_crops"].shape == (2, 3, 16, 16)
    assert first["masks"].shape == (2, 16) and first["masks"].any(dim=1).all()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["global_crops"], other["global_crops"])


def test_stream_visits_every_image_once_per_pass_and_resumes_exactly():
    images = datasets.Dataset.from_dict({"image": [noise_image(i) for i in range(6)]}).cast_column(
        "image", datasets.Image()
    )
    dataset = MultiCropDataset(images, "image", MultiCropAugmentation(MultiCropConfig(**TINY_CROPS), 8), seed=0)
    assert sorted(dataset._row(position) for position in range(6)) == list(range(6))
    assert [dataset._row(p) for p in range(6)] != [dataset._row(p) for p in range(6, 12)]  # reshuffled each pass

    def batches(sampler, count):
        iterator = iter(sampler)
        return [next(iterator) for _ in range(count)]

    rank0, rank1 = batches(StreamBatchSampler(2, 0, 2, 0), 3), batches(StreamBatchSampler(2, 0, 2, 1), 3)
    assert sorted(p for batch in rank0 + rank1 for p in batch) == list(range(12))
    assert batches(StreamBatchSampler(2, start_step=2, num_processes=2, process_index=1), 1) == rank1[2:]

    batch = collate_crops([dataset[p] for p in rank0[2]])
    restarted = collate_crops([dataset[p] for p in batches(StreamBatchSampler(2, 2, 2, 0), 1)[0]])
    assert batch["global_crops"].shape == (2, 2, 3, 32, 32) and batch["masks"].shape == (2, 2, 16)
    assert all(torch.equal(batch[key], restarted[key]) for key in ("global_crops", "local_crops", "masks"))
    assert batch["exposure_records"] == restarted["exposure_records"] == [{}, {}]  # a bare image column


def test_load_image_dataset_reads_folders_and_names_a_missing_column(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        noise_image(index).save(folder / f"{index}.png")
    images, corpus = load_image_dataset(str(folder), None, "train", "image")
    assert corpus["path"] == str(folder) and corpus["fingerprint"]
    assert len(images) == 3 and isinstance(images[0]["image"], PIL.Image.Image)
    with pytest.raises(ValueError, match="no column 'frame'"):
        load_image_dataset(str(folder), None, "train", "frame")

    table = tmp_path / "table"
    paths = [str(path) for path in sorted(folder.iterdir())]
    datasets.Dataset.from_dict({"path": paths, "n": [1, 2, 3]}).to_parquet(table / "train.parquet")
    from_paths, _ = load_image_dataset(str(table), None, "train", "path")
    assert from_paths.column_names[0] == "path" and isinstance(from_paths[0]["path"], PIL.Image.Image)
    assert from_paths.column_names[1:] == [f"exposure_{name}" for name in EXPOSURE_NAMES]
    assert from_paths["exposure_images"] == [1, 1, 1] and from_paths["exposure_frames"] == [0, 0, 0]  # no video


def test_an_undecodable_image_names_its_row():
    images = datasets.Dataset.from_dict({"image": [{"bytes": b"not an image", "path": "broken.jpg"}]})
    images = images.cast_column("image", datasets.Image())
    dataset = MultiCropDataset(images, "image", MultiCropAugmentation(MultiCropConfig(**TINY_CROPS), 8), seed=0)
    with pytest.raises(ValueError, match="row 0 of the image dataset: cannot decode column 'image'"):
        dataset[0]


# --- the collapse monitor -------------------------------------------------------------------------------------------

PROTOTYPES = 32


def synthetic_teacher_windows(kind: str, windows: int, batch: int = 16) -> list[tuple[float, float]]:
    """Window figures of teacher targets made by the recipe's own TeacherTargets (centring, temperature 0.04) and
    reduced by its own ``teacher_monitors``: ``uniform`` (equal logits), ``one_hot_same`` (every image on prototype
    3, no centre yet) or ``healthy`` (each image sharp on a prototype of its own)."""
    torch.manual_seed(0)
    figures = []
    for window in range(windows):
        targets = TeacherTargets(PROTOTYPES, "centering", momentum=0.9)  # a fresh centre: nothing absorbs the bias
        if kind == "uniform":
            logits = torch.zeros(batch, PROTOTYPES)
        elif kind == "one_hot_same":
            logits = torch.full((batch, PROTOTYPES), -1.0)
            logits[:, 3] = 1.0
        else:
            logits = -torch.ones(batch, PROTOTYPES) + 0.01 * torch.randn(batch, PROTOTYPES)
            logits[torch.arange(batch), (torch.arange(batch) + window) % PROTOTYPES] = 1.0
        probs = targets(logits, temperature=0.04)
        figures.append(tuple(float(value) for value in teacher_monitors(probs)))
    return figures


def watch(kind: str, windows: int = 6, **options) -> CollapseMonitor:
    monitor = CollapseMonitor(PROTOTYPES, **{"margin": 0.1, "patience": 3, **options})
    for index, (teacher_entropy, marginal) in enumerate(synthetic_teacher_windows(kind, windows)):
        monitor.update(10 * (index + 1), teacher_entropy, marginal, images=160)
    return monitor


def test_uniform_teacher_targets_are_declared_a_uniform_collapse_after_patience_windows():
    figures = synthetic_teacher_windows("uniform", 1)
    assert figures[0][0] == pytest.approx(math.log(PROTOTYPES))
    verdict = watch("uniform").declared
    assert verdict is not None and verdict.kind == "uniform"
    assert (verdict.step, verdict.windows, verdict.first_step, verdict.images) == (30, 3, 1, 480)
    message = verdict.describe()
    assert message.startswith("uniform collapse at step 30: teacher_entropy 3.466 nats, within 0.1 of log K = 3.466")
    assert "\n" not in message and "n = 480 images" in message


def test_every_image_on_the_same_prototype_is_declared_a_one_prototype_collapse():
    figures = synthetic_teacher_windows("one_hot_same", 1)
    assert figures[0][0] < 0.01 and figures[0][1] < 0.01  # sharp per image, and the same for every image
    verdict = watch("one_hot_same").declared
    assert verdict is not None and verdict.kind == "one_prototype" and verdict.step == 30
    assert verdict.describe().startswith("one-prototype collapse at step 30: teacher_marginal_entropy ")


def test_healthy_teacher_targets_are_never_declared_a_collapse():
    figures = synthetic_teacher_windows("healthy", 1)
    assert figures[0][0] < 0.1 and figures[0][1] > math.log(16) - 0.1  # sharp per image, spread over the batch
    monitor = watch("healthy", windows=20, patience=1)
    assert monitor.declared is None and monitor.windows_judged == 20
    assert monitor.record()["collapse"] is None


def test_windows_before_the_watch_starts_or_broken_runs_of_bad_windows_declare_nothing():
    assert watch("uniform", windows=6, watch_from_step=40).declared is None  # judged: the windows ending at 50, 60
    monitor = CollapseMonitor(PROTOTYPES, margin=0.1, patience=3)
    uniform, healthy = synthetic_teacher_windows("uniform", 1)[0], synthetic_teacher_windows("healthy", 1)[0]
    for step, figures in enumerate([uniform, uniform, healthy, uniform, uniform], start=1):
        assert monitor.update(step, *figures) is None
    verdict = monitor.update(6, *uniform)
    assert verdict is not None and verdict.first_step == 4 and verdict.images is None


def test_a_resumed_monitor_reaches_the_verdict_of_an_uninterrupted_one():
    uniform = synthetic_teacher_windows("uniform", 1)[0]
    monitor = CollapseMonitor(PROTOTYPES, patience=3)
    monitor.update(10, *uniform)
    monitor.update(20, *uniform)
    resumed = CollapseMonitor.from_state_dict(json.loads(json.dumps(monitor.state_dict())))
    assert resumed.update(30, *uniform) == monitor.update(30, *uniform) is not None
    record = resumed.record()
    assert record["format"] == "babyvlm-collapse/1" and record["collapse"]["message"] == resumed.declared.describe()
    section = collapse_card_section(record)
    assert section.startswith("## Collapse monitor") and "**Collapse declared**: uniform collapse at step 30" in section


@pytest.mark.parametrize(
    "options, message",
    [
        ({"margin": 0.0}, "collapse_margin must be in"),
        ({"margin": 2.0}, "collapse_margin must be in"),
        ({"patience": 0}, "collapse_patience must be >= 1"),
    ],
)
def test_a_monitor_that_could_not_tell_healthy_from_collapsed_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        CollapseMonitor(PROTOTYPES, **options)

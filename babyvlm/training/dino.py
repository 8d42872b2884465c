"""DINOv2-style self-distillation of a transformers ``Dinov2Model``: heads, losses, schedules, student/teacher pair.

The objective is DINOv2's (Oquab et al., 2023): a DINO loss between the student's CLS prototypes on every crop and
the EMA teacher's on the *other* global crop, an iBOT loss between the student's prototypes at masked patches and
the teacher's at the same (unmasked) patches, and a KoLeo regulariser that spreads the student's CLS features.
Teacher targets are centred (DINO) or balanced by Sinkhorn-Knopp (SwAV). Every cross-process reduction goes through
``torch.distributed`` when it is initialised (DDP through accelerate), so single-process and DDP runs share one path.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2Model
from transformers.utils import ModelOutput


@dataclass
class DinoConfig:
    """Heads and loss of the self-distillation objective (defaults: DINOv2's ``ssl_default_config``)."""

    num_prototypes: int = field(default=65536, metadata={"help": "Prototypes (output size) of the DINO/iBOT head."})
    head_hidden_size: int = field(default=2048, metadata={"help": "Hidden width of the head's MLP."})
    head_bottleneck_size: int = field(default=256, metadata={"help": "L2-normalised bottleneck before the prototypes."})
    head_layers: int = field(default=3, metadata={"help": "Linear layers in the head's MLP (>= 2)."})
    student_temperature: float = field(default=0.1, metadata={"help": "Softmax temperature of the student."})
    centering: Literal["centering", "sinkhorn_knopp"] = field(
        default="centering",
        metadata={"help": "How teacher targets avoid collapse: an EMA centre (DINO) or Sinkhorn-Knopp balancing."},
    )
    center_momentum: float = field(default=0.9, metadata={"help": "EMA momentum of the teacher centres."})
    dino_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the CLS (DINO) loss."})
    ibot_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the masked-patch (iBOT) loss."})
    koleo_loss_weight: float = field(default=0.1, metadata={"help": "Weight of the KoLeo regulariser."})

    def __post_init__(self):
        if self.head_layers < 2:
            raise ValueError(f"head_layers must be >= 2 (hidden + bottleneck), got {self.head_layers}")
        for name in ("dino_loss_weight", "ibot_loss_weight", "koleo_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.center_momentum < 1:
            raise ValueError(f"center_momentum must be in [0, 1), got {self.center_momentum}")


def _all_reduce(tensor: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """Reduce ``tensor`` in place over processes when running distributed; identity otherwise."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=op)
    return tensor


def _global_mean(rows: torch.Tensor) -> torch.Tensor | None:
    """Mean of the rows of ``rows`` over all processes, or ``None`` when no process has any row."""
    total = _all_reduce(torch.cat([rows.sum(dim=0), rows.new_tensor([rows.shape[0]])]))
    return total[:-1] / total[-1] if total[-1] > 0 else None


class DinoHead(nn.Module):
    """MLP → L2-normalised bottleneck → cosine scores against ``num_prototypes`` unit-norm prototypes.

    The prototypes are normalised on the fly, which is DINO's weight-normalised last layer with its gain fixed at 1
    (``norm_last_layer=True``): scores stay in [-1, 1] so the temperatures alone set the sharpness.
    """

    def __init__(self, in_size: int, num_prototypes: int, hidden_size: int, bottleneck_size: int, num_layers: int):
        super().__init__()
        sizes = [in_size] + [hidden_size] * (num_layers - 1) + [bottleneck_size]
        layers: list[nn.Module] = []
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(fan_in, fan_out))
            if k < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.prototypes = nn.Linear(bottleneck_size, num_prototypes, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        bottleneck = F.normalize(self.mlp(features), dim=-1)
        return F.linear(bottleneck, F.normalize(self.prototypes.weight, dim=-1))


def koleo_loss(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko entropy estimate (Sablayrolles et al., 2019): ``-mean(log(distance to nearest neighbour))``.

    ``features`` is ``(batch, dim)``; rows are L2-normalised first. It falls as the points spread out on the sphere.
    """
    if features.shape[0] < 2:
        raise ValueError(f"KoLeo needs at least 2 samples per process, got {features.shape[0]}")
    points = F.normalize(features.float(), dim=-1, eps=eps)
    with torch.no_grad():
        similarities = points @ points.T
        similarities.fill_diagonal_(-2.0)  # below any cosine: a point is never its own neighbour
        nearest = similarities.argmax(dim=1)
    distances = F.pairwise_distance(points, points[nearest], eps=eps)
    return -torch.log(distances + eps).mean()


@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, temperature: float, iterations: int = 3) -> torch.Tensor:
    """Soft assignments of ``(batch, prototypes)`` logits that use every prototype equally (SwAV, DINOv2).

    Each row of the result sums to 1 (a distribution per sample) and each column to ``batch / prototypes``, with
    ``batch`` counted over all processes.
    """
    logits = logits.float()
    # One shift for all processes keeps exp() finite without changing the assignment.
    shift = _all_reduce(logits.max() if logits.numel() else logits.new_tensor(-math.inf), op=dist.ReduceOp.MAX)
    q = torch.exp((logits - shift) / temperature).T  # (prototypes, batch)
    num_prototypes = q.shape[0]
    num_samples = _all_reduce(q.new_tensor(float(q.shape[1])))
    q /= _all_reduce(q.sum())
    for _ in range(iterations):
        q /= _all_reduce(q.sum(dim=1, keepdim=True)) * num_prototypes
        q /= q.sum(dim=0, keepdim=True) * num_samples
    return (q * num_samples).T


class TeacherTargets(nn.Module):
    """Turns teacher logits into target distributions, by centring + sharpening or by Sinkhorn-Knopp.

    With centring, the centre is an EMA of the mean teacher logits over all processes; subtracting it stops one
    prototype from dominating, and the low teacher temperature stops the targets from going uniform.
    """

    def __init__(self, num_prototypes: int, method: str, momentum: float):
        super().__init__()
        self.method, self.momentum = method, momentum
        self.register_buffer("center", torch.zeros(1, num_prototypes))

    @torch.no_grad()
    def forward(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        if self.method == "sinkhorn_knopp":
            return sinkhorn_knopp(logits, temperature)
        targets = F.softmax((logits.float() - self.center) / temperature, dim=-1)
        batch_center = _global_mean(logits.float())
        if batch_center is not None:  # a batch without masked patches leaves the iBOT centre as it is
            self.center.mul_(self.momentum).add_(batch_center, alpha=1 - self.momentum)
        return targets


def soft_cross_entropy(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``-sum_k p_teacher[k] log softmax(student / temperature)[k]`` over the last dimension."""
    return -(teacher_probs * F.log_softmax(student_logits.float() / temperature, dim=-1)).sum(dim=-1)


def dino_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean cross-entropy over every (teacher global crop, student crop) pair that shows *different* views.

    ``student_logits`` is ``(crops, batch, K)`` with the global crops first; ``teacher_probs`` is
    ``(global_crops, batch, K)``. Pairing a teacher crop with the same student crop is skipped, as in DINO.
    """
    log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    pair_losses = -torch.einsum("tbk,sbk->ts", teacher_probs, log_probs) / student_logits.shape[1]
    same_view = torch.eye(*pair_losses.shape, dtype=torch.bool, device=pair_losses.device)
    return pair_losses[~same_view].mean()


def ibot_loss(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, masks: torch.Tensor, temperature: float
) -> torch.Tensor:
    """iBOT masked-patch loss: cross-entropy at the masked patches, each image weighing the same.

    ``masks`` is ``(images, patches)``; the logits and targets are ``(masks.sum(), K)`` in ``masks``' row-major order.
    Every image's patches share a weight of ``1 / its masked count``, and the sum is divided by all images
    (those without masks included), as in DINOv2.
    """
    per_image = 1.0 / masks.sum(dim=-1).clamp(min=1)
    weights = per_image[:, None].expand_as(masks)[masks]
    return (soft_cross_entropy(student_logits, teacher_probs, temperature) * weights).sum() / masks.shape[0]


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dimension."""
    return -(probs * torch.log(probs.clamp(min=1e-12))).sum(dim=-1)


def teacher_monitors(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The collapse monitors of ``(images, K)`` teacher targets: the mean entropy of one target, and the entropy of
    the mean target over all processes (see :class:`DinoOutput`)."""
    return entropy(probs).mean(), entropy(_global_mean(probs))


def cosine_schedule(
    step: int, total_steps: int, start: float, end: float, warmup_steps: int = 0, warmup_start: float = 0.0
) -> float:
    """Linear warm-up from ``warmup_start`` to ``start`` over ``warmup_steps``, then a cosine from ``start`` to
    ``end`` reached at ``total_steps`` (and held after). ``start == end`` gives a warm-up then a constant."""
    if step < warmup_steps:
        return warmup_start + (start - warmup_start) * step / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class DinoOutput(ModelOutput):
    """Losses of one step (``loss`` is the weighted sum) and the teacher's collapse monitors.

    ``teacher_entropy`` is the mean entropy of one target distribution: near 0 the teacher is one-hot per image,
    near ``log(K)`` it is uniform. ``teacher_marginal_entropy`` is the entropy of the batch-mean target: near 0 every
    image goes to the same prototype (collapse). :class:`babyvlm.training.collapse.CollapseMonitor` watches both.
    """

    loss: torch.Tensor | None = None
    dino_loss: torch.Tensor | None = None
    ibot_loss: torch.Tensor | None = None
    koleo_loss: torch.Tensor | None = None
    teacher_entropy: torch.Tensor | None = None
    teacher_marginal_entropy: torch.Tensor | None = None


class DinoPretrainingModel(nn.Module):
    """A student (``Dinov2Model`` + :class:`DinoHead`) and its EMA teacher, with the DINO + iBOT + KoLeo objective.

    The teacher backbone is a ``Dinov2Model`` of the student's config without stochastic depth, so
    ``model.teacher["backbone"].save_pretrained(...)`` is the deliverable. The iBOT loss shares the DINO head
    (DINOv2's default) but keeps its own centre.
    """

    def __init__(self, student_backbone: Dinov2Model, config: DinoConfig):
        super().__init__()
        self.config = config
        teacher_config = copy.deepcopy(student_backbone.config)
        teacher_config.drop_path_rate = 0.0
        teacher_backbone = Dinov2Model(teacher_config)
        teacher_backbone.load_state_dict(student_backbone.state_dict())
        head_sizes = (config.num_prototypes, config.head_hidden_size, config.head_bottleneck_size, config.head_layers)
        width = student_backbone.config.hidden_size
        self.student = nn.ModuleDict({"backbone": student_backbone, "head": DinoHead(width, *head_sizes)})
        self.teacher = nn.ModuleDict({"backbone": teacher_backbone, "head": DinoHead(width, *head_sizes)})
        self.teacher["head"].load_state_dict(self.student["head"].state_dict())
        self.teacher.requires_grad_(False)
        self.cls_targets = TeacherTargets(config.num_prototypes, config.centering, config.center_momentum)
        self.patch_targets = TeacherTargets(config.num_prototypes, config.centering, config.center_momentum)

    def train(self, mode: bool = True) -> DinoPretrainingModel:
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(
        self, global_crops: torch.Tensor, local_crops: torch.Tensor, masks: torch.Tensor, teacher_temperature: float
    ) -> DinoOutput:
        """One step of the objective.

        Args:
            global_crops: ``(global_crops, batch, 3, H, W)``.
            local_crops: ``(local_crops, batch, 3, h, w)``; ``local_crops`` may be 0.
            masks: ``(global_crops, batch, patches)`` booleans, the student's masked patches of each global crop.
            teacher_temperature: sharpness of the teacher targets (warmed up by the caller).
        """
        num_global, batch = global_crops.shape[:2]
        globals_flat, masks_flat = global_crops.flatten(0, 1), masks.flatten(0, 1)
        teacher_cls_probs, teacher_patch_probs = self._teacher_targets(globals_flat, masks_flat, teacher_temperature)

        student_global = self.student["backbone"](globals_flat, bool_masked_pos=masks_flat).last_hidden_state
        student_cls = [student_global[:, 0]]
        if local_crops.shape[0] > 0:
            student_cls.append(self.student["backbone"](local_crops.flatten(0, 1)).last_hidden_state[:, 0])
        cls_logits = self.student["head"](torch.cat(student_cls))
        patch_logits = self.student["head"](student_global[:, 1:][masks_flat])

        temperature = self.config.student_temperature
        num_prototypes = cls_logits.shape[-1]
        dino = dino_loss(
            cls_logits.view(-1, batch, num_prototypes),
            teacher_cls_probs.view(num_global, batch, num_prototypes),
            temperature,
        )
        ibot = ibot_loss(patch_logits, teacher_patch_probs, masks_flat, temperature)
        config = self.config
        koleo = student_global.new_zeros(())
        if config.koleo_loss_weight > 0:  # DINOv2 sums KoLeo over the global crops, each a batch of its own
            koleo = sum(koleo_loss(crop) for crop in student_global[:, 0].view(num_global, batch, -1))
        loss = config.dino_loss_weight * dino + config.ibot_loss_weight * ibot + config.koleo_loss_weight * koleo
        teacher_entropy, teacher_marginal_entropy = teacher_monitors(teacher_cls_probs)
        return DinoOutput(
            loss=loss,
            dino_loss=dino.detach(),
            ibot_loss=ibot.detach(),
            koleo_loss=koleo.detach(),
            teacher_entropy=teacher_entropy,
            teacher_marginal_entropy=teacher_marginal_entropy,
        )

    @torch.no_grad()
    def _teacher_targets(self, global_crops: torch.Tensor, masks: torch.Tensor, temperature: float):
        hidden = self.teacher["backbone"](global_crops).last_hidden_state
        cls_probs = self.cls_targets(self.teacher["head"](hidden[:, 0]), temperature)
        patch_probs = self.patch_targets(self.teacher["head"](hidden[:, 1:][masks]), temperature)
        return cls_probs, patch_probs

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """``teacher = momentum * teacher + (1 - momentum) * student``, parameter by parameter."""
        teacher, student = list(self.teacher.parameters()), list(self.student.parameters())
        torch._foreach_lerp_(teacher, student, 1.0 - momentum)


def _backbone_layer(name: str, num_layers: int) -> int:
    """Depth of a ``Dinov2Model`` parameter for layer-wise LR decay: 0 for embeddings, i + 1 for block i."""
    if name.startswith("embeddings."):
        return 0
    block = re.match(r"encoder\.layer\.(\d+)\.", name)
    return int(block.group(1)) + 1 if block else num_layers + 1


def parameter_groups(
    model: DinoPretrainingModel, layerwise_decay: float, patch_embed_lr_multiplier: float
) -> list[dict]:
    """AdamW groups of the student with DINOv2's per-parameter multipliers.

    Each group carries ``lr_multiplier`` (layer-wise decay ``decay ** (depth_from_top)``, times
    ``patch_embed_lr_multiplier`` for the patch embedding) and ``weight_decay_multiplier`` (0 for biases, norms,
    LayerScale and other 1-d parameters); the training loop multiplies the scheduled LR and weight decay by them.
    """
    backbone = model.student["backbone"]
    num_layers = backbone.config.num_hidden_layers
    named = [(f"backbone.{n}", p, _backbone_layer(n, num_layers)) for n, p in backbone.named_parameters()]
    named += [(f"head.{n}", p, num_layers + 1) for n, p in model.student["head"].named_parameters()]
    groups: dict[tuple[float, float], dict] = {}
    for name, parameter, depth in named:
        lr_multiplier = layerwise_decay ** (num_layers + 1 - depth)
        if ".patch_embeddings." in name:
            lr_multiplier *= patch_embed_lr_multiplier
        decay_multiplier = 0.0 if parameter.ndim <= 1 or name.endswith(".bias") else 1.0
        group = groups.setdefault(
            (lr_multiplier, decay_multiplier),
            {"params": [], "lr_multiplier": lr_multiplier, "weight_decay_multiplier": decay_multiplier},
        )
        group["params"].append(parameter)
    return list(groups.values())


__all__ = [
    "DinoHead",
    "DinoConfig",
    "DinoOutput",
    "DinoPretrainingModel",
    "TeacherTargets",
    "cosine_schedule",
    "dino_loss",
    "entropy",
    "ibot_loss",
    "koleo_loss",
    "parameter_groups",
    "sinkhorn_knopp",
    "soft_cross_entropy",
    "teacher_monitors",
]

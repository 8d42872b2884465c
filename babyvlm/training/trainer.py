"""SFTTrainer with a separate learning rate for the vision tower (phase 3: ViT at 1e-5, the rest at 5e-5), and
the inference settings a trained checkpoint is saved with."""

from __future__ import annotations

from trl import SFTTrainer

from .stages import is_vision_parameter


class BabyLlavaV2SFTTrainer(SFTTrainer):
    def __init__(self, *args, vision_learning_rate: float | None = None, **kwargs):
        self.vision_learning_rate = vision_learning_rate
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        if self.vision_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        decay_names = set(self.get_decay_parameter_names(model))
        groups = []
        for vision in (False, True):
            for decays in (True, False):
                params = [
                    p
                    for n, p in model.named_parameters()
                    if p.requires_grad and is_vision_parameter(n) == vision and (n in decay_names) == decays
                ]
                if params:
                    group = {"params": params, "weight_decay": self.args.weight_decay if decays else 0.0}
                    if vision:
                        group["lr"] = self.vision_learning_rate  # the scheduler scales each group's own lr
                    groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


def enable_generation_cache(model) -> None:
    """Undo the Trainer's `use_cache=False` before the final save.

    The Trainer writes its training setting into the model config, so a checkpoint saved as is would
    generate without a KV cache (every new token re-encodes the whole prompt: Memory's 15-round dialogues
    ran ~10x slower).
    """
    for config in {id(config): config for config in (model.config, model.config.get_text_config())}.values():
        config.use_cache = True
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = True

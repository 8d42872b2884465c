"""Stage-3 (instruct) training step on a CPU, side by side: what the demo's speed levers give per step.

Same model, same batches of the demo's stage-3 task mix (images per item as in DevCV: count/localize 1, compare 2,
Picture Vocabulary/Left-Right/Spatial Details 4, VDR 5-9), timed interleaved as full training steps (forward,
backward, AdamW step):

- `trained`: everything trained, as stage 3 does (ViT included);
- `vit_frozen`: the ViT frozen (no ViT backward, no ViT optimizer state);
- `vit_cached`: the ViT frozen and its features computed once per distinct image (the step then never runs the ViT:
  the upper bound of a feature cache);
- `compiled` (with `--compile`): everything trained, the model under `torch.compile` (inductor, dynamic shapes);
  its compile time is printed apart.

`--model` takes a stage-2 checkpoint (the demo's `babyvlm-demo/stage2_pretrain`); without it a random model of
the demo's shapes (4-layer width-96 ViT on 64 px in 16 px patches, 4-layer width-256 Llama) is built.
"""

import argparse
import random
import statistics
import time

import PIL.Image
import torch

from babyvlm.testing.babyllava import build_tiny_babyllava
from babyvlm.training.collator import VisionChatCollator

# (images per item, share of the demo's stage-3 items): count, localize, compare x2, PV, Left/Right, VDR binary.
MIX = [(1, 2), (1, 1), (2, 2), (4, 2), (4, 1), (5, 0.2), (7, 0.4), (9, 0.2)]


def make_items(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    shapes, weights = zip(*MIX)
    items = []
    for _ in range(count):
        n_images = rng.choices(shapes, weights)[0]
        content = [{"type": "image", "text": None} for _ in range(n_images)]
        content.append({"type": "text", "text": " which of the following is the same as this? (A) (B) (C)"})
        items.append(
            {
                "messages": [
                    {"role": "user", "content": content},
                    {"role": "assistant", "content": [{"type": "text", "text": rng.choice("ABCD")}]},
                ],
                "images": [
                    PIL.Image.new("RGB", (256, 192), tuple(rng.randrange(256) for _ in range(3)))
                    for _ in range(n_images)
                ],
            }
        )
    return items


def load_model(path: str | None):
    if path:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        import babyvlm  # noqa: F401

        return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)
    return build_tiny_babyllava(
        image_size=64,
        vision_config={"hidden_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4, "patch_size": 16},
        text_config={"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8},
    )


class Variant:
    """One way of running the stage-3 step on its own copy of the model."""

    def __init__(self, name: str, model, freeze_vit: bool, cache: bool = False, compile: bool = False):
        self.name, self.cache = name, cache
        self.model = type(model)(model.config)
        self.model.load_state_dict(model.state_dict())
        self.model.train()
        for parameter in self.model.model.vision_tower.parameters():
            parameter.requires_grad = not freeze_vit
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-5)
        self.features: dict[int, torch.Tensor] = {}
        self.forward = torch.compile(self.model, dynamic=True) if compile else self.model

    @torch.no_grad()
    def vit_output(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the frozen ViT hands the connector (the demo's feature selection: last layer, post-norm)."""
        config = self.model.config
        if config.vision_feature_layer != -1 or not config.vision_feature_use_final_norm:
            raise ValueError("the cached variant implements the last-layer, post-norm feature selection only")
        selected = self.model.model.vision_tower(pixel_values, return_dict=True).last_hidden_state
        return selected[:, 1:] if config.vision_feature_select_strategy == "default" else selected

    def step(self, index: int, batch: dict) -> float:
        start = time.perf_counter()
        if self.cache:
            if index not in self.features:
                self.features[index] = self.vit_output(batch["pixel_values"])
            inputs = {key: value for key, value in batch.items() if key not in ("pixel_values", "input_ids")}
            embeddings = self.model.get_input_embeddings()(batch["input_ids"])
            features = self.model.model.multi_modal_projector(self.features[index])  # the connector still trains
            mask = (batch["input_ids"] == self.model.config.image_token_index).unsqueeze(-1)
            embeddings = embeddings.masked_scatter(mask, features.reshape(-1, embeddings.shape[-1]))
            loss = self.model(inputs_embeds=embeddings, **inputs).loss
        else:
            loss = self.forward(**batch).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="stage-2 checkpoint (default: random model of the demo's shapes)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    args = parser.parse_args()
    model, processor = load_model(args.model)
    collator = VisionChatCollator(processor, chat_template="baby_v1", packing=True)
    items = make_items(args.batch_size * args.batches)
    batches = [collator(items[i : i + args.batch_size]) for i in range(0, len(items), args.batch_size)]
    variants = [
        Variant("trained", model, freeze_vit=False),
        Variant("vit_frozen", model, freeze_vit=True),
        Variant("vit_cached", model, freeze_vit=True, cache=True),
    ]
    if args.compile:
        variants.append(Variant("compiled", model, freeze_vit=False, compile=True))
    for variant in variants:  # warm-up: first-call allocations, compilation, the cache's first pass over the images
        started = time.perf_counter()
        for index, batch in enumerate(batches):
            variant.step(index, batch)
        print(f"{variant.name}: first pass over the {len(batches)} batches {time.perf_counter() - started:.1f} s")
    seconds = {variant.name: [] for variant in variants}
    for _ in range(args.repeats):
        for index, batch in enumerate(batches):  # interleaved: machine noise hits every variant alike
            for variant in variants:
                seconds[variant.name].append(variant.step(index, batch))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    tokens = sum(int(batch["input_ids"].numel()) for batch in batches) / len(batches)
    print(
        f"{len(items)} items, {sum(len(item['images']) for item in items)} images, batch {args.batch_size} "
        f"(~{tokens:.0f} tokens), {torch.get_num_threads()} threads"
    )
    for name, value in median.items():
        print(f"{name:>10}: median step {value * 1e3:.0f} ms ({median['trained'] / value:.2f}x)")
    best = min(median, key=median.get)
    print(f"stage-3 step, {best} vs trained: {median['trained'] / median[best]:.2f}x")


if __name__ == "__main__":
    main()

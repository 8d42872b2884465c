"""Training throughput: our packed multi-image collator vs TRL's default padded VLM collator.

Same tiny BabyLLaVA-V2, same DevCV-like items (1 to 29 images per item, in the task mix of the toolbox), same
batches; forward + backward steps timed side by side, interleaved. Tokens/s counts every real token (image
tokens included, padding excluded). Prints the padding fraction of both and the headline ratio last.
"""

import argparse
import random
import statistics

import PIL.Image
import torch
from timing import forward_backward_seconds
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from babyvlm.testing.babyllava import build_tiny_babyllava
from babyvlm.training.collator import VisionChatCollator

# (images per item, prompt) for a DevCV-like mix: count, PV, Left/Right, Spatial Details, VDR, compare, memory.
ITEM_SHAPES = [
    (1, "How many cups do you see?"),
    (4, "Touch the image of 'ball'."),
    (4, "Which is the same as this?"),
    (4, "Which contains exactly this object?"),
    (5, "Where does the dog leave?"),
    (9, "Where does the cat leave?"),
    (2, "Which image has more cars?"),
    (29, "Touch the new image."),
]


def make_items(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        n_images, prompt = rng.choice(ITEM_SHAPES)
        colour = tuple(rng.randrange(256) for _ in range(3))
        content = [{"type": "image", "text": None} for _ in range(n_images)] + [{"type": "text", "text": f" {prompt}"}]
        items.append(
            {
                "messages": [
                    {"role": "user", "content": content},
                    {"role": "assistant", "content": [{"type": "text", "text": rng.choice("ABCD")}]},
                ],
                "images": [PIL.Image.new("RGB", (40, 30), colour) for _ in range(n_images)],
            }
        )
    return items


def real_tokens(batch, pad_token_id: int) -> int:
    """Tokens of the samples themselves: `<pad>` never occurs inside a sample, only as padding."""
    return int((batch["input_ids"] != pad_token_id).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, processor = build_tiny_babyllava(
        text_config={
            "hidden_size": 256,
            "intermediate_size": 688,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
        },
    )
    model.train()
    ours = VisionChatCollator(processor, packing=True)
    trl = DataCollatorForVisionLanguageModeling(processor=processor)
    items = make_items(args.batch_size * args.batches)
    chunks = [items[i : i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    packed_batches = [ours([dict(x) for x in chunk]) for chunk in chunks]
    padded_batches = [trl([dict(x) for x in chunk]) for chunk in chunks]

    pad = processor.tokenizer.pad_token_id
    tokens = {
        "packed": sum(real_tokens(b, pad) for b in packed_batches),
        "padded": sum(real_tokens(b, pad) for b in padded_batches),
    }
    slots = {
        "packed": sum(b["input_ids"].numel() for b in packed_batches),
        "padded": sum(b["input_ids"].numel() for b in padded_batches),
    }
    forward_backward_seconds(model, packed_batches[0]), forward_backward_seconds(model, padded_batches[0])  # warm-up
    seconds = {"packed": [], "padded": []}
    for _ in range(args.repeats):
        for packed, padded in zip(packed_batches, padded_batches):  # interleaved: machine noise hits both alike
            seconds["packed"].append(forward_backward_seconds(model, packed))
            seconds["padded"].append(forward_backward_seconds(model, padded))
    per_batch = {name: statistics.median(values) for name, values in seconds.items()}
    rate = {name: tokens[name] / (per_batch[name] * len(chunks)) for name in per_batch}
    images = sum(len(item["images"]) for item in items)
    print(
        f"{len(items)} items, {images} images "
        f"({images / len(items):.1f} per item, {processor.image_seq_length} tokens each), "
        f"batch {args.batch_size}, {torch.get_num_threads()} threads"
    )
    for name in ("padded", "packed"):
        print(
            f"{name:>6}: {rate[name]:,.0f} tokens/s, padding fraction {1 - tokens[name] / slots[name]:.1%}, "
            f"median step {per_batch[name] * 1e3:.0f} ms"
        )
    print(f"packed vs padded tokens/s: {rate['packed'] / rate['padded']:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()

"""Full-size BabyLLaVA-V2 stage-2 training step on a GPU: throughput and MFU, packed vs padded.

The 1.30B model (ViT-L/16 frozen, connector + 1.1B Llama trained, bf16, AdamW) on batches shaped like the
stage-2 mixture: image-utterance (1 frame), video-utterance (8 frames) and interleaved (4-8 turns of one frame
each) samples with utterance-length text. Packed rows go through `VisionChatCollator.pack` (rows of
`--row-length` tokens, position ids restarting per sample); the padded baseline right-pads every sample to the
longest one. Model FLOPs per step = 6 * N_lm * T (LM + connector, trained) + 2 * N_vit * T_img (frozen ViT,
forward only) + causal attention (LM: 6 * L * d * sum(l^2) fwd+bwd; ViT: 4 * L * d * 197^2 per image);
recomputation under gradient checkpointing is not counted (MFU convention). Needs CUDA.
"""

import argparse
import random
import statistics
import time

import torch
from babyvlm.modeling import BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration
from timing import exit_unless_gpu

from babyvlm.training.collator import IGNORE_INDEX, TokenizedSample, VisionChatCollator
from babyvlm.training.stages import STAGES, apply_stage_freezing


class _PackingProcessor:
    """The attributes `VisionChatCollator.pack`/`pad` read, without a trained tokenizer."""

    def __init__(self, config):
        self.image_token_id = config.image_token_id
        self.image_seq_length = config.image_seq_length
        self.tokenizer = type("Tokenizer", (), {"pad_token_id": config.text_config.pad_token_id})()


def make_sample(rng: random.Random, config, image_size: int) -> tuple[TokenizedSample, torch.Tensor]:
    kind = rng.choices(["image", "video", "interleaved"], weights=[0.5, 0.3, 0.2])[0]
    turns = {"image": [1], "video": [8], "interleaved": [1] * rng.randint(4, 8)}[kind]
    ids, labels = [2], [IGNORE_INDEX]
    for images in turns:
        prompt = [config.image_token_id] * (images * config.image_seq_length) + [
            rng.randrange(4, 6000) for _ in range(6)
        ]
        answer = [rng.randrange(4, 6000) for _ in range(rng.randint(4, 24))] + [3]
        ids += prompt + answer
        labels += [IGNORE_INDEX] * len(prompt) + answer
    n_images = sum(turns)
    sample = TokenizedSample(f"sample{len(ids)}", torch.tensor(ids), torch.tensor(labels), n_images)
    return sample, torch.randn(n_images, 3, image_size, image_size)


def model_flops(config, batch, n_vit: int, n_lm: int) -> float:
    text, vision = config.text_config, config.vision_config
    position_ids = batch["position_ids"] if "position_ids" in batch else None
    if position_ids is not None:
        starts = (position_ids == 0).nonzero()
        lengths = []
        for row in range(position_ids.shape[0]):
            row_starts = starts[starts[:, 0] == row][:, 1].tolist() + [position_ids.shape[1]]
            lengths += [b - a for a, b in zip(row_starts, row_starts[1:])]
    else:
        lengths = batch["attention_mask"].sum(1).tolist()
    tokens = sum(lengths)
    n_images = batch["pixel_values"].shape[0]
    lm = 6 * n_lm * tokens + 6 * text.num_hidden_layers * text.hidden_size * sum(length * length for length in lengths)
    vit = (
        2 * n_vit * n_images * config.image_seq_length
        + 4 * vision.num_hidden_layers * vision.hidden_size * n_images * config.image_seq_length**2
    )
    return lm + vit


def run(model, optimizer, batches, steps: int) -> list[float]:
    times = []
    for index in range(steps):
        batch = batches[index % len(batches)]
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--row-length", type=int, default=2048, help="packed row budget (0: the whole batch in one row)"
    )
    parser.add_argument("--samples-per-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak of the GPU (H100 SXM: 989)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    exit_unless_gpu()
    device = torch.device("cuda")
    config = BabyLlavaV2Config()
    torch.manual_seed(0)
    with device:
        model = BabyLlavaV2ForConditionalGeneration(config).to(torch.bfloat16)
    model.train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    trainable = apply_stage_freezing(model, STAGES["pretrain"])
    n_vit = sum(p.numel() for p in model.model.vision_tower.parameters())
    n_lm = (
        trainable["language_model"]
        + trainable["connector"]
        - 2 * config.text_config.vocab_size * config.text_config.hidden_size
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)

    rng = random.Random(0)
    processor = _PackingProcessor(config)
    packer = VisionChatCollator(processor, packing=True, row_length=args.row_length or None)
    padder = VisionChatCollator(processor)
    made = [[make_sample(rng, config, 224) for _ in range(args.samples_per_batch)] for _ in range(3)]
    sample_sets = [[sample for sample, _ in batch] for batch in made]
    pixel_sets = [{"pixel_values": torch.cat([pixels for _, pixels in batch])} for batch in made]

    def to_device(batch):
        return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    results = {}
    collators = {
        "packed": packer.pack,
        "padded": lambda samples, pixels: {**padder.pad(samples), **pixels},
    }
    for name, collate in collators.items():
        batches = [to_device(collate(samples, pixels)) for samples, pixels in zip(sample_sets, pixel_sets)]
        for batch in batches:
            batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
        if name == "padded":
            for batch in batches:
                batch["use_cache"] = False
        run(model, optimizer, batches, 2)  # warm-up (allocator, kernels)
        times = run(model, optimizer, batches, args.steps)
        flops = statistics.mean(model_flops(config, b, n_vit, n_lm) for b in batches)
        real_tokens = statistics.mean(sum(len(s.input_ids) for s in samples) for samples in sample_sets)
        slots = statistics.mean(b["input_ids"].numel() for b in batches)
        step = statistics.median(times)
        results[name] = (real_tokens / step, flops / step / 1e12, 1 - real_tokens / slots, step)
        tflops = flops / step / 1e12
        print(
            f"{name:>6}: step {step * 1e3:.0f} ms, {real_tokens / step:,.0f} tokens/s (image tokens included), "
            f"{tflops:.0f} model TFLOP/s, MFU {tflops / args.peak_tflops:.1%} of {args.peak_tflops:.0f}, "
            f"padding {1 - real_tokens / slots:.1%}, peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
        )
        torch.cuda.reset_peak_memory_stats()
    print(
        f"{torch.cuda.get_device_name()}, {args.samples_per_batch} samples/step, "
        f"rows of {args.row_length or 'one batch'}, "
        f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, "
        f"attention {model.config.text_config._attn_implementation}"
    )
    packed, padded = results["packed"], results["padded"]
    print(
        f"stage-2 full size: {packed[0]:,.0f} tokens/s, MFU {packed[1] / args.peak_tflops:.1%} packed; "
        f"packed vs padded tokens/s: {packed[0] / padded[0]:.2f}x"
    )


if __name__ == "__main__":
    main()

"""The main job on the built-in default: build, save, reload and run a small BabyLLaVA-V2.

`babyvlm-demo [--output DIR]` builds a randomly initialised tiny BabyLLaVA-V2 (tokenizer trained on sample
utterances), saves model + processor, reloads them through `AutoModelForImageTextToText` / `AutoProcessor`
and generates an answer about a real photograph shipped with matplotlib. The weights are random, so the
answer is too: the run shows that every part is wired together.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib.cbook
import PIL.Image
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import babyvlm
from babyvlm.tiny import build_tiny_babyllava


def sample_photo() -> PIL.Image.Image:
    """Grace Hopper's portrait, as shipped in matplotlib's sample data."""
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        return PIL.Image.open(handle).convert("RGB")


def run(output: Path, max_new_tokens: int = 12) -> str:
    started = time.perf_counter()
    model, _ = build_tiny_babyllava(output)
    print(f"built a tiny random BabyLLaVA-V2 ({sum(p.numel() for p in model.parameters()):,} parameters) -> {output}")

    model = AutoModelForImageTextToText.from_pretrained(output).eval()
    processor = AutoProcessor.from_pretrained(output)
    print(f"reloaded {type(model).__name__} and {type(processor).__name__} through the transformers Auto classes")

    photo = sample_photo()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What do you see?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[photo], return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    answer = processor.decode(generated[0, inputs.input_ids.shape[1]:], skip_special_tokens=True)
    print(f"prompt: {prompt!r} + a {photo.width}x{photo.height} photo ({processor.image_seq_length} image tokens)")
    print(f"greedy answer from random weights: {answer!r}")
    print(f"done in {time.perf_counter() - started:.1f}s (babyvlm {babyvlm.__version__})")
    return answer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("babyllava-v2-tiny"), help="checkpoint folder to write")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    args = parser.parse_args(argv)
    run(args.output, args.max_new_tokens)


if __name__ == "__main__":
    main()

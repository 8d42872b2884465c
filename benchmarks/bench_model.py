"""BabyLLaVA-V2 vs transformers' LlavaForConditionalGeneration: same shapes, same weights.

Our feature selection is set to Llava's equivalent (last layer, pre-norm, CLS kept: Llava with
`vision_feature_layer=-1, vision_feature_select_strategy="full"`), so both models compute the same function.
Prints max |Δlogits| (fp32, must be <= 1e-5) and the forward+backward step-time ratio ours/Llava (median of
interleaved runs, target <= 1.05). Headline on the last line.
"""

import argparse
import statistics

import torch
from babyvlm.modeling import BabyLlavaV2ForConditionalGeneration
from timing import forward_backward_seconds
from transformers import LlavaConfig, LlavaForConditionalGeneration

from babyvlm.testing.babyllava import tiny_config


def build_pair(vocab_size: int, image_size: int):
    config = tiny_config(
        vocab_size,
        vocab_size - 1,
        image_size=image_size,
        vision_feature_use_final_norm=False,
        vision_config={"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4},
        text_config={
            "hidden_size": 256,
            "intermediate_size": 688,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
        },
    )
    torch.manual_seed(0)
    ours = BabyLlavaV2ForConditionalGeneration(config)
    llava_config = LlavaConfig(
        vision_config=config.vision_config.to_dict(),
        text_config=config.text_config.to_dict(),
        image_token_index=config.image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    llava = LlavaForConditionalGeneration(llava_config)
    llava.load_state_dict(ours.state_dict())
    return ours, llava


def make_batch(model, batch_size: int, text_tokens: int, images_per_row: int, image_size: int):
    generator = torch.Generator().manual_seed(1)
    seq = model.config.image_seq_length
    vocab = model.config.text_config.vocab_size
    rows = []
    for _ in range(batch_size):
        text = torch.randint(4, vocab - 1, (text_tokens,), generator=generator).tolist()
        rows.append(text[:2] + [model.config.image_token_id] * (seq * images_per_row) + text[2:])
    input_ids = torch.tensor(rows)
    pixel_values = torch.randn(batch_size * images_per_row, 3, image_size, image_size, generator=generator)
    return {"input_ids": input_ids, "pixel_values": pixel_values, "labels": input_ids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--images-per-row", type=int, default=2)
    args = parser.parse_args()
    image_size = 64
    ours, llava = build_pair(vocab_size=512, image_size=image_size)
    batch = make_batch(ours, args.batch_size, text_tokens=64, images_per_row=args.images_per_row, image_size=image_size)

    ours.eval(), llava.eval()
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        max_delta = (ours(**inputs).logits - llava(**inputs).logits).abs().max().item()

    ours.train(), llava.train()
    for model in (ours, llava):  # warm-up
        forward_backward_seconds(model, batch)
    ours_times, llava_times = [], []
    for _ in range(args.repeats):  # interleaved so that machine noise hits both alike
        ours_times.append(forward_backward_seconds(ours, batch))
        llava_times.append(forward_backward_seconds(llava, batch))
    ours_median, llava_median = statistics.median(ours_times), statistics.median(llava_times)
    tokens = batch["input_ids"].numel()
    print(
        f"shapes: batch {args.batch_size} x {batch['input_ids'].shape[1]} tokens, "
        f"{batch['pixel_values'].shape[0]} images of {image_size}px, {torch.get_num_threads()} threads"
    )
    print(
        f"BabyLLaVA-V2 step: {ours_median * 1e3:.1f} ms ({tokens / ours_median:,.0f} tokens/s); "
        f"Llava step: {llava_median * 1e3:.1f} ms"
    )
    print(f"max |delta logits| (fp32): {max_delta:.2e} (must be <= 1e-5): {'ok' if max_delta <= 1e-5 else 'FAIL'}")
    ratio = ours_median / llava_median
    print(f"ours vs Llava forward+backward step time: {ratio:.3f}x (target <= 1.05)")


if __name__ == "__main__":
    main()

"""Cost of one stage-3 epoch of two demo configurations, side by side on a CPU.

Each configuration is a finished demo folder (its `stage2_pretrain` checkpoint and `devcv` items) and the stage-3 task
list, a task named n times repeated n times an epoch as in `DemoSize.instruct_tasks`:

    python benchmarks/bench_demo_epoch.py \\
        babyvlm-demo:count,localize,compare_real,compare_synthetic,picture_vocabulary \\
        other-demo:count,localize,compare_real,compare_synthetic,leftright,leftright,vdr_binary

Batches of each mix (shuffled as the trainer shuffles an epoch) are timed interleaved as full training steps
(collation, forward, backward, AdamW step); an epoch costs its number of batches times the mean step. The last line
is the second configuration's epoch over the first's: a demo's stage-3 time scales by it times the ratio of epochs.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import babyvlm  # noqa: F401  (registers the Auto classes)
from babyvlm.training.collator import VisionChatCollator
from babyvlm.training.data import load_mixture


class Configuration:
    def __init__(self, spec: str, batch_size: int, batches: int):
        folder, _, tasks = spec.rpartition(":")
        self.name, folder = spec, Path(folder)
        checkpoint = folder / "stage2_pretrain"
        self.model = AutoModelForImageTextToText.from_pretrained(checkpoint)
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5)
        self.collator = VisionChatCollator(
            AutoProcessor.from_pretrained(checkpoint), chat_template="baby_v1", packing=True
        )
        mixture = load_mixture([f"{folder / 'devcv'}:{task}@train" for task in tasks.split(",")]).shuffle(seed=0)
        self.batches_per_epoch = -(-len(mixture) // batch_size)
        self.batches = [mixture.select(range(i * batch_size, (i + 1) * batch_size)) for i in range(batches + 1)]
        self.seconds: list[float] = []
        self.tokens: list[int] = []

    def step(self, index: int) -> None:
        started = time.perf_counter()
        batch = self.collator(list(self.batches[index]))
        self.model(**batch).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if index:  # the first batch warms up (first-call allocations)
            self.seconds.append(time.perf_counter() - started)
            self.tokens.append(int(batch["input_ids"].numel()))

    @property
    def epoch_seconds(self) -> float:
        return self.batches_per_epoch * statistics.mean(self.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configurations", nargs=2, metavar="FOLDER:TASKS")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per configuration")
    args = parser.parse_args()
    first, second = (Configuration(spec, args.batch_size, args.batches) for spec in args.configurations)
    for index in range(args.batches + 1):  # interleaved: machine noise hits both alike
        first.step(index)
        second.step(index)
    print(f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.batches} timed batches each")
    for configuration in (first, second):
        print(
            f"{configuration.name}: {configuration.batches_per_epoch} batches an epoch, mean step "
            f"{statistics.mean(configuration.seconds) * 1e3:.0f} ms (~{statistics.mean(configuration.tokens):.0f} "
            f"tokens), epoch {configuration.epoch_seconds:.1f} s"
        )
    print(f"stage-3 epoch, second vs first configuration: {second.epoch_seconds / first.epoch_seconds:.2f}x")


if __name__ == "__main__":
    main()

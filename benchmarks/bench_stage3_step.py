"""Cost of the training safeguards in a demo stage-3 step, side by side on a CPU.

    python benchmarks/bench_stage3_step.py babyvlm-demo [--batches 20]

Builds the stage-3 trainer exactly as `babyvlm train sft` does from the tiny YAML (the demo folder's
`stage2_pretrain` checkpoint and DevCV train items of the demo's five tasks), then times full steps (collation,
forward, backward, clipping, AdamW) of the same batches, interleaved, in three configurations:

- as shipped: the finite-loss and gradient-norm checks (`FiniteTrainingMixin`) and the collator's data report
  (item ids, counted per epoch by `BabyVLMSFTTrainer.compute_loss`);
- without the checks: the Trainer's own `training_step` and `_get_grad_norm`;
- without the checks and without the data report (`with_report=False`).

The last line is the shipped step over the step without either: what the safeguards add to stage 3.
"""

import argparse
import statistics
import tempfile
import time
from importlib.resources import as_file
from pathlib import Path

import torch
from trl import SFTTrainer

from babyvlm.commands.demo import DEFAULT, RECIPE_CONFIGS, TINY
from babyvlm.training import sft
from babyvlm.training.safeguards import FiniteTrainingMixin


class Captured(Exception):
    """Stops `sft.train` once its trainer is built."""


def build_trainer(demo: Path, output: Path):
    captured = {}

    class Capturing(sft.BabyVLMSFTTrainer):
        def train(self, *args, **kwargs):
            captured["trainer"] = self
            raise Captured

    datasets = [f"{demo / 'devcv'}:{task}@train" for task in DEFAULT.instruct_tasks]
    with as_file(TINY / RECIPE_CONFIGS["instruct"]) as config:
        parsed = sft.parse_args(
            ["--config", str(config), "--model_name_or_path", str(demo / "stage2_pretrain"), "--datasets", *datasets]
            + ["--output_dir", str(output), "--save_strategy", "no", "--disable_tqdm", "true"]
        )
    shipped, sft.BabyVLMSFTTrainer = sft.BabyVLMSFTTrainer, Capturing
    try:
        sft.train(*parsed)
    except Captured:
        pass
    finally:
        sft.BabyVLMSFTTrainer = shipped
    trainer = captured["trainer"]
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # what the training loop sets before its first step
    return trainer


def step(trainer, examples, checks: bool, report: bool) -> float:
    started = time.perf_counter()
    trainer.data_collator.with_report = report
    batch = trainer.data_collator(examples)
    model = trainer.model
    model.train()
    owner = FiniteTrainingMixin if checks else SFTTrainer
    owner.training_step(trainer, model, batch)
    grad_norm = owner._get_grad_norm(trainer, model, grad_norm=trainer._clip_grad_norm(model))
    float(grad_norm)  # the Trainer logs it as a float either way
    trainer.optimizer.step()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="a finished demo folder (stage2_pretrain, devcv)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per configuration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(args.demo, Path(scratch) / "stage3")
        dataset = trainer.train_dataset.shuffle(seed=0)
        size = trainer.args.per_device_train_batch_size
        configurations = {
            "as shipped": (True, True),
            "without the checks": (False, True),
            "without the checks and the data report": (False, False),
        }
        seconds = {name: [] for name in configurations}
        for index in range(args.batches + 1):  # interleaved, the same batch for each; the first warms up
            examples = list(dataset.select(range(index * size, (index + 1) * size)))
            for name, (checks, report) in configurations.items():
                elapsed = step(trainer, examples, checks, report)
                if index:
                    seconds[name].append(elapsed)
    print(f"{torch.get_num_threads()} threads, batch {size}, {args.batches} timed batches each")
    for name, values in seconds.items():
        mean, median = statistics.mean(values) * 1e3, statistics.median(values) * 1e3
        print(f"{name}: mean step {mean:.0f} ms, median {median:.0f} ms")
    ratio = statistics.mean(seconds["as shipped"]) / statistics.mean(seconds["without the checks and the data report"])
    print(f"stage-3 step, as shipped vs without the safeguards: {ratio:.3f}x")


if __name__ == "__main__":
    main()

"""The main job: train BabyLLaVA-V2 end to end on the toy world and score it on DevCV.

`babyvlm demo [--output babyvlm-demo] [--force] [--smoke]` runs every part of the framework, in order:

    toy world -> SAYCam-format corpora -> stage 0 (tokenizer + LM, ViT self-supervision) -> stage 1 (connector)
    -> stage 2 (joint) -> DevCV items -> stage-2 probes and their trajectory over stage 2's age checkpoints
    -> stage 3 (DevCV instruction tuning) -> DevCV evaluation

Stages 0 (vision) to 2 read their corpora in the child's order (`curriculum: chronological`; stage 0's LM packs its
text, so it has no order), and stage 2 writes age checkpoints (`CHILDS_TIMELINE`), which the trajectory stage scores
with the zero-shot probes (`babyvlm trajectory`), the final stage-2 model last.

It is a thin driver: the data steps call the builders, the training steps call the recipes' training functions
(`babyvlm.training.sft.train`, `babyvlm.training.pretrain_vision.train`, what `recipes/sft.py` and
`recipes/pretrain_vision.py` run) on the arguments the recipes parse from the CPU-sized YAMLs of
`recipes/babyllava_v2/tiny/` (read through the installed package, `babyvlm.recipes`, so it runs from any directory
without a checkout), and the evaluation is `babyvlm eval`'s runner. Finished stages are reused on a second run
(unless `--force` or their settings changed). Everything is written under `--output`: the checkpoint in `model/`, the
leaderboard `results.json` and `summary.json` (per task: score, chance, n, one-sided binomial p-value).

From the command line it runs with `OMP_WAIT_POLICY=PASSIVE` unless the environment sets that variable: torch's
OpenMP threads then sleep instead of spinning while they wait for each other, which is the same on a quiet machine
and much faster when another process holds one of the cores (a spinning thread takes the CPU from the thread it
waits for). OpenMP reads the variable once, when torch loads, and `import babyvlm` loads torch, so the command
starts itself again with the variable set (a few seconds of imports; `babyvlm.command_line`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path

from tqdm.auto import tqdm

from babyvlm.command_line import command_parser, fail, restart_with_passive_omp_wait_policy
from babyvlm.evaluate_metrics.devcv.tasks import DIALOGUE, canonical_task
from babyvlm.evaluate_metrics.probes.matching import PROBE as MATCHING
from babyvlm.evaluate_metrics.probes.report import probe_table
from babyvlm.evaluate_metrics.probes.vocabulary import LOOKING_WHILE_LISTENING, PICTURE_VOCABULARY
from babyvlm.staging import write_text
from babyvlm.training.stages import STAGES

TINY = files("babyvlm.recipes") / "babyllava_v2" / "tiny"  # `recipes/`, installed with the package (YAMLs as data)
SIGNIFICANCE = 0.01
# Memory's primary metric scores learned objects, (rounds + 1) // 3 = 5 per generated 15-round item.
MEMORY_OBJECTS_PER_ITEM = 5
# The CPU-sized YAML of each training stage, by the stage's name (`babyvlm.training.stages`), also its key in
# `DemoSize.recipe_overrides`.
RECIPE_CONFIGS = {name: f"{stage.label}.yaml" for name, stage in STAGES.items()}
AGE_CHECKPOINT_MONTHS = ("9", "15", "21", "27")
"""Stage 2's age checkpoints, 6 months apart inside the 6-32 months the toy world's recordings span
(`AGE_RANGE_MONTHS` of `babyvlm.dataset_builders.toyworld.world`; the few steps of `--smoke` reach the first ones)."""
CHILDS_TIMELINE = {
    "vision": ["--curriculum", "chronological"],
    "align": ["--curriculum", "chronological"],
    "pretrain": ["--curriculum", "chronological", "--save_at_age_months", *AGE_CHECKPOINT_MONTHS],
}
"""The recipe arguments that train a stage along the child's timeline, by the keys of `RECIPE_CONFIGS`."""


@dataclass(frozen=True)
class DemoSize:
    """How much data and training each stage gets."""

    toyworld_scale: str = "demo"
    devcv_items: dict = field(default_factory=lambda: {"train": 200, "validation": 20, "test": 150})
    devcv_split_fractions: dict = field(default_factory=lambda: {"train": 0.6, "validation": 0.0, "test": 0.4})
    """Share of the toy-world recordings behind each DevCV split. The demo world has 18 recordings: 11 train and the
    7 others test (none for validation: the demo selects nothing on it). That gives 130-150 test items to most tasks,
    ~50 to Left/Right and ~110 to VDR binary (with 5 test recordings: ~35 and ~75; the builder's 15 % gives ~60 to
    most tasks): with 150 items a one-sided binomial test tells a 10-point gain over chance at p < 0.01, with 60 it
    needs 15 points."""
    instruct_tasks: tuple = ("count", "localize", "compare_real", "compare_synthetic", "picture_vocabulary")
    """DevCV tasks whose train split stage 3 uses, a task named n times repeated n times an epoch; every task is
    still evaluated. The CPU budget buys 18 epochs of these five; what adding the others cost and gave is in the
    README's "The main job"."""
    recipe_overrides: dict = field(default_factory=dict)
    """Extra command-line overrides per recipe stage (the keys of `RECIPE_CONFIGS`)."""
    trajectory_probes: tuple = (PICTURE_VOCABULARY,)
    """The probes the trajectory stage scores at each stage-2 checkpoint, on every item the stage-2 probes read (the
    DevCV test split; `MATCHING` adds the held-out image-utterance pairs), so with their n. Utterance-frame matching
    is left out by default: over the five stage-2 checkpoints it took 366 s against Picture Vocabulary's 17 s."""


DEFAULT = DemoSize()
# Seconds instead of minutes: the same driver and recipes, a few steps each (tests; not expected to learn).
SMOKE = DemoSize(
    toyworld_scale="small",
    devcv_items={"train": 8, "validation": 2, "test": 4},
    recipe_overrides={name: ["--max_steps", "2"] for name in RECIPE_CONFIGS},
    # the small world has no Picture Vocabulary test items, and its held-out pairs are of one recording
    trajectory_probes=(LOOKING_WHILE_LISTENING,),
)


@dataclass
class Stage:
    name: str
    description: str
    run: Callable[[], None]
    settings: dict


class Demo:
    def __init__(self, output: Path, size: DemoSize, seed: int = 0):
        self.output, self.size, self.seed = output, size, seed
        self.paths = {
            name: output / name
            for name in (
                "toyworld",
                "corpora",
                "devcv",
                "stage0_lm",
                "stage0_vision",
                "stage1_align",
                "stage2_pretrain",
                "probes",
                "trajectory",
                "model",
                "eval",
            )
        }

    # --- data -------------------------------------------------------------------------------------------

    def toyworld(self):
        from babyvlm.dataset_builders.toyworld.generate import generate_toyworld

        generate_toyworld(self.paths["toyworld"], seed=self.seed, scale=self.size.toyworld_scale, overwrite=True)

    def corpora(self):
        from babyvlm.dataset_builders.saycam.build import BuildInputs, build_saycam

        toyworld = self.paths["toyworld"]
        inputs = BuildInputs(
            videos=toyworld / "videos", transcripts=toyworld / "transcripts.csv", children=toyworld / "children.csv"
        )
        build_saycam(inputs, self.paths["corpora"], num_proc=min(2, os.cpu_count() or 1), overwrite=True)

    def devcv(self):
        from babyvlm.dataset_builders.devcv.generators.config import GeneratorConfig
        from babyvlm.dataset_builders.devcv.generators.generate import generate_devcv

        config = GeneratorConfig(
            seed=self.seed, items_per_split=self.size.devcv_items, split_fractions=self.size.devcv_split_fractions
        )
        generate_devcv(self.paths["toyworld"], self.paths["devcv"], config, overwrite=True)

    # --- training: the real recipes ----------------------------------------------------------------------

    def train(self, stage: str, *arguments: str) -> Path:
        """Train `stage` as `babyvlm train sft|vision --config <its tiny YAML> ...` would, in this process: its
        recipe's parsing of the YAML and the overrides, then its training function."""
        from babyvlm.training import pretrain_vision, sft

        recipe = {"sft.py": sft, "pretrain_vision.py": pretrain_vision}[STAGES[stage].script]
        with as_file(TINY / RECIPE_CONFIGS[stage]) as config:
            parsed = recipe.parse_args(
                [
                    "--config",
                    str(config),
                    *arguments,
                    *CHILDS_TIMELINE.get(stage, []),
                    *self.size.recipe_overrides.get(stage, []),
                ]
            )
        sft.configure_logging()
        return recipe.train(*parsed)

    def stage0_lm(self):
        self.train(
            "lm",
            "--datasets",
            str(self.paths["corpora"] / "utterances"),
            "--output_dir",
            str(self.paths["stage0_lm"]),
        )

    def stage0_vision(self):
        self.train(
            "vision",
            "--dataset_name",
            str(self.paths["corpora"] / "frames"),
            "--output_dir",
            str(self.paths["stage0_vision"]),
        )

    def stage1(self):
        self.train(
            "align",
            "--vision_model_path",
            str(self.paths["stage0_vision"]),
            "--language_model_path",
            str(self.paths["stage0_lm"]),
            "--datasets",
            str(self.paths["corpora"] / "image_utterance"),
            "--output_dir",
            str(self.paths["stage1_align"]),
        )

    def stage2(self):
        self.train(
            "pretrain",
            "--model_name_or_path",
            str(self.paths["stage1_align"]),
            "--datasets",
            str(self.paths["corpora"] / "mix"),
            "--output_dir",
            str(self.paths["stage2_pretrain"]),
        )

    def tasks_with_split(self, split: str, wanted=None) -> list[str]:
        """Configs of the generated DevCV folder that have items in `split` (a small toy world lacks some)."""
        from babyvlm.evaluate_metrics.data import MissingTaskError, available_tasks, task_data_files

        present = available_tasks(self.paths["devcv"])
        tasks = []
        for task in wanted or present:
            try:
                task_data_files(self.paths["devcv"], present[task], split)
            except (KeyError, MissingTaskError):
                continue
            tasks.append(present[task])
        if not tasks:
            raise ValueError(f"{self.paths['devcv']} has no {split} items for {wanted or 'any task'}")
        return tasks

    def stage3(self):
        self.train(
            "instruct",
            "--model_name_or_path",
            str(self.paths["stage2_pretrain"]),
            "--datasets",
            *(
                f"{self.paths['devcv']}:{task}@train"
                for task in self.tasks_with_split("train", self.size.instruct_tasks)
            ),
            "--output_dir",
            str(self.paths["model"]),
        )

    # --- evaluation ---------------------------------------------------------------------------------------

    def probes(self):
        """The zero-shot grounding probes of the stage-2 checkpoint, before any DevCV training."""
        from babyvlm.evaluate_metrics.probes.report import pretraining_probes

        pretraining_probes(
            self.paths["stage2_pretrain"],
            self.paths["corpora"] / "image_utterance",
            self.paths["devcv"],
            self.output,
            seed=self.seed,
        )

    def trajectory(self):
        """The zero-shot probes along the child's timeline: stage 2's age checkpoints in age order, then its final
        model (`babyvlm trajectory`), on the items the stage-2 probes read."""
        from babyvlm.evaluate_metrics.trajectory import trajectory

        probes = self.size.trajectory_probes
        trajectory(
            [str(self.paths["stage2_pretrain"])],
            self.paths["devcv"],
            self.paths["trajectory"],
            tasks=[],
            probes=[probe for probe in probes if probe != MATCHING],
            pairs=self.paths["corpora"] / "image_utterance" if MATCHING in probes else None,
            batch_size=16,
            seed=self.seed,
            progress=False,
        )

    def evaluate(self):
        from babyvlm.evaluate_metrics.runner import evaluate_devcv
        from babyvlm.evaluate_metrics.trajectory import TRAJECTORY_FILE

        evaluate_devcv(
            self.paths["model"],
            self.paths["devcv"],
            self.paths["eval"],
            tasks=self.tasks_with_split("test"),
            split="test",
            batch_size=16,
        )
        write_text(self.output / "results.json", (self.paths["eval"] / "results.json").read_text())
        summary = significance_summary(json.loads((self.paths["eval"] / "summary.json").read_text()))
        summary["pretraining_probes"] = {
            path.stem: json.loads(path.read_text()) for path in sorted(self.paths["probes"].glob("*.json"))
        }
        summary["trajectory"] = trajectory_summary(json.loads((self.paths["trajectory"] / TRAJECTORY_FILE).read_text()))
        write_text(self.output / "summary.json", json.dumps(summary, indent=2) + "\n")

    def stages(self) -> list[Stage]:
        """Each stage with the settings it reads itself; what it inherits reaches it through the cascade in `run`."""
        size = self.size

        def stage(name, description, run, recipe: str | None = None, **settings):
            settings["seed"] = self.seed
            if recipe:  # an edited recipe YAML or override makes its stage (and every later one) run again
                settings["recipe"] = hashlib.sha256((TINY / RECIPE_CONFIGS[recipe]).read_bytes()).hexdigest()
                settings["overrides"] = [*CHILDS_TIMELINE.get(recipe, []), *size.recipe_overrides.get(recipe, [])]
            return Stage(name, description, run, settings)

        return [
            stage(
                "toyworld",
                "generate the toy world (videos, transcripts, annotations)",
                self.toyworld,
                scale=size.toyworld_scale,
            ),
            stage("corpora", "build the SAYCam-format pretraining corpora", self.corpora),
            stage("stage0_lm", "stage 0 (lm): tokenizer + language model from scratch", self.stage0_lm, "lm"),
            stage("stage0_vision", "stage 0 (vision): ViT self-supervision (DINO-style)", self.stage0_vision, "vision"),
            stage("stage1_align", "stage 1 (align): connector alignment (baby_plain)", self.stage1, "align"),
            stage("stage2_pretrain", "stage 2 (pretrain): joint pretraining, corpus mix", self.stage2, "pretrain"),
            stage(
                "devcv",
                "generate DevCV items from the toy-world annotations",
                self.devcv,
                items=size.devcv_items,
                split_fractions=size.devcv_split_fractions,
            ),
            stage("probes", "grounding probes of the stage-2 checkpoint (before stage 3)", self.probes),
            stage(
                "trajectory",
                "zero-shot probes along the child's timeline: stage 2's age checkpoints, then its final model",
                self.trajectory,
                probes=list(size.trajectory_probes),
            ),
            stage(
                "model",
                "stage 3 (instruct): instruction tuning on DevCV train items",
                self.stage3,
                "instruct",
                tasks=list(size.instruct_tasks),
            ),
            stage("eval", "evaluate on the DevCV test split", self.evaluate),
        ]

    def run(self, force: bool = False) -> dict:
        self.output.mkdir(parents=True, exist_ok=True)
        markers = self.output / ".stages"
        markers.mkdir(exist_ok=True)
        stages = self.stages()
        timings = {}
        invalidated = force
        for stage in tqdm(stages, desc="babyvlm demo", unit="stage"):
            marker = markers / f"{stage.name}.json"
            settings = json.dumps(stage.settings, sort_keys=True)
            if not invalidated and marker.is_file() and marker.read_text() == settings:
                tqdm.write(f"[{stage.name}] finished earlier, reused ({self.paths[stage.name]})")
                continue
            invalidated = True  # every later stage depends on this one
            # the stage's folder and the recipes' `<folder>-checkpoints` beside it, or a rerun would resume from them
            for folder in (self.paths[stage.name], Path(f"{self.paths[stage.name]}-checkpoints")):
                shutil.rmtree(folder, ignore_errors=True)
            marker.unlink(missing_ok=True)
            tqdm.write(f"[{stage.name}] {stage.description}")
            started = time.perf_counter()
            stage.run()
            timings[stage.name] = time.perf_counter() - started
            marker.write_text(settings)
            tqdm.write(f"[{stage.name}] done in {timings[stage.name]:.0f}s")
        return json.loads((self.output / "summary.json").read_text())


def significance_summary(runner_summary: dict) -> dict:
    """Per task: primary score, chance, n and the runner's one-sided p-value of beating chance (the exact binomial
    test where the score counts right trials); ``partial``: the runner's "partial: N of M items" when it did not
    evaluate every item (None otherwise)."""
    from babyvlm.evaluate_metrics.report import partial_note

    tasks = {}
    for harness_key, entry in runner_summary["tasks"].items():
        metric = entry["primary_metric"]
        score = entry["metrics"][metric]
        trials = entry["n"] * (MEMORY_OBJECTS_PER_ITEM if canonical_task(entry["task"]).protocol == DIALOGUE else 1)
        successes = round(score * trials)
        p_value = entry["p_value"]  # the runner's test against chance (`statistics.chance_p_value`)
        tasks[entry["task"]] = {
            "harness_key": harness_key,
            "metric": metric,
            "score": score,
            "chance": entry["chance"],
            "n": entry["n"],
            "trials": trials,
            "successes": successes,
            "p_value": p_value,
            "ci_low": entry.get("ci_low", score),
            "ci_high": entry.get("ci_high", score),
            "above_chance": p_value < SIGNIFICANCE,
        }
    significant = sorted(name for name, task in tasks.items() if task["above_chance"])
    return {
        "tasks": tasks,
        "overall": runner_summary.get("overall"),
        "significance_level": SIGNIFICANCE,
        "tasks_above_chance": significant,
        "partial": partial_note(runner_summary),
    }


def trajectory_summary(document: dict) -> dict:
    """The trajectory's curve for `summary.json`: per checkpoint its place on the axis and each probe's score,
    interval, n, p-value and chance; each probe's age of acquisition (the rest is in `trajectory/`)."""
    statistics = ("score", "ci_low", "ci_high", "n", "p_value", "chance")
    return {
        "x": document["x"],
        "checkpoints": [
            {
                "name": row["name"],
                "x": row["x"],
                "probes": {probe: {key: entry[key] for key in statistics} for probe, entry in row["probes"].items()},
            }
            for row in document["checkpoints"]
        ],
        "acquisition": {probe: entry[document["x"]] for probe, entry in document["acquisition"].items()},
    }


def trajectory_curve_table(curve: dict) -> str:
    """The curve as a table: a line per checkpoint, its place on the axis, then each probe's score, interval and n."""
    probes = list(dict.fromkeys(probe for row in curve["checkpoints"] for probe in row["probes"]))
    width = max(12, *(len(row["name"]) + 2 for row in curve["checkpoints"]))
    lines = [f"{'checkpoint':<{width}}{curve['x']:>8}" + "".join(f"  {probe:<33}" for probe in probes)]
    for row in curve["checkpoints"]:
        cells = []
        for probe in probes:
            entry = row["probes"].get(probe)
            cells.append(
                f"  {entry['score']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] n={entry['n']:<6}"
                if entry
                else f"  {'-':<33}"
            )
        lines.append(f"{row['name']:<{width}}{row['x']:>8.1f}" + "".join(f"{cell:<35}" for cell in cells).rstrip())
    return "\n".join(lines)


def print_summary(output: Path, summary: dict) -> None:
    if summary.get("pretraining_probes"):
        print("\nstage 2, before any DevCV training (zero-shot grounding probes):")
        print(probe_table(summary["pretraining_probes"]))
    if summary.get("trajectory"):
        print("\nzero-shot probes along the child's timeline: stage 2's age checkpoints, then its final model")
        print(f"({output / 'trajectory'}):")
        print(trajectory_curve_table(summary["trajectory"]))
    if summary.get("partial"):
        print(f"\n{summary['partial']}: not comparable with full runs")
    print(f"\n{'task':<26}{'metric':<22}{'score':>7}{'95% CI':>16}{'chance':>8}{'n':>6}{'p-value':>11}")
    for name, task in sorted(summary["tasks"].items()):
        mark = " *" if task["above_chance"] else ""
        interval = f"[{task['ci_low']:.3f}, {task['ci_high']:.3f}]"
        print(
            f"{name:<26}{task['metric']:<22}{task['score']:>7.3f}{interval:>16}{task['chance']:>8.3f}{task['n']:>6}{task['p_value']:>11.2e}{mark}"
        )
    print(f"* above chance at p < {summary['significance_level']}: {len(summary['tasks_above_chance'])} tasks")
    print(f"\ncheckpoint  {output / 'model'}  (AutoModelForImageTextToText.from_pretrained after `import babyvlm`)")
    print(f"results     {output / 'results.json'} (leaderboard), {output / 'summary.json'} (scores, chance, p-values)")
    print(f"report      {output / 'eval' / 'results.md'}, plots in {output / 'eval'}")


def main(argv: list[str] | None = None) -> int:
    """`babyvlm demo`; `argv` (a list of arguments) runs it in this process as it is, without the restart for
    `OMP_WAIT_POLICY` (the `babyvlm` command restarts before it calls this)."""
    if argv is None:
        restart_with_passive_omp_wait_policy()
    parser = command_parser(
        "demo",
        __doc__.splitlines()[0],
        ["babyvlm demo", "babyvlm demo --smoke --output /tmp/demo-smoke"],
    )
    parser.add_argument("--output", type=Path, default=Path("babyvlm-demo"), help="folder for every artefact")
    parser.add_argument("--force", action="store_true", help="rerun every stage, even finished ones")
    parser.add_argument(
        "--smoke", action="store_true", help="a few steps per stage: checks the wiring in about a minute"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        summary = Demo(args.output, SMOKE if args.smoke else DEFAULT, args.seed).run(force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as error:
        return fail(parser, error)
    print_summary(args.output, summary)
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

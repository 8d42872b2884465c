"""`babyvlm <verb>`: one command whose verbs are the library's `main(argv) -> int` functions, every verb run on tiny
inputs through the dispatcher, and the deprecated `babyvlm-*` console scripts as the same functions."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fixtures_devcv import write_split_layout

from babyvlm import __version__
from babyvlm.commands import cli
from babyvlm.commands.cli import DEPRECATED_ALIASES, VERBS
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder, write_pairs_corpus

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "babyllava_v2" / "tiny"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`babyvlm ARGV` in this process: its exit status, stdout and stderr."""
    try:
        status = cli.main([str(argument) for argument in argv])
    except SystemExit as exit_:  # argparse's --help and usage errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_babyvlm_help_lists_every_verb_with_its_one_line_help(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for name, verb in VERBS.items():
        assert any(line.split() == [*name.split(), *verb.help.split()] for line in out.splitlines()), name
    assert "--version" in out and "babyvlm-eval" in out  # the deprecated aliases are named as such


@pytest.mark.parametrize("group", ["data", "train"])
def test_a_group_lists_its_verbs(capsys, group):
    status, out, _ = run(capsys, group, "--help")
    assert status == 0
    assert {line.split()[1] for line in out.splitlines() if line.startswith(f"  {group} ")} == {
        name.split()[1] for name in VERBS if name.startswith(f"{group} ")
    }


def test_version(capsys):
    assert run(capsys, "--version") == (0, f"babyvlm {__version__}\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["frobnicate"], "unknown command 'frobnicate'"), (["data", "frobnicate"], "unknown command 'frobnicate'")],
)
def test_an_unknown_verb_is_one_line_and_exit_status_2(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and err.count("\n") == 1 and message in err


@pytest.mark.parametrize("name", sorted(VERBS))
def test_every_verb_has_help_named_after_it_with_an_example(capsys, name):
    status, out, _ = run(capsys, *name.split(), "--help")
    assert status == 0
    assert out.startswith(f"usage: babyvlm {name} ")
    examples = out.split("\nexample")[1]
    assert f"babyvlm {name} " in examples


# What the dispatcher imports for its own answers, in a fresh process: nothing of torch or transformers (seconds).
LIGHT_RUN = """
import contextlib, io, sys
from babyvlm.commands.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    for argv in (["--help"], ["--version"], ["data", "--help"], ["train", "--help"]):
        assert main(argv) == 0, argv
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "transformers"))
print(heavy[:5])
"""


def test_the_dispatchers_help_and_version_import_neither_torch_nor_transformers():
    run = subprocess.run([sys.executable, "-c", LIGHT_RUN], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_deprecated_console_scripts_run_the_verbs_functions():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.pop("babyvlm") == "babyvlm.commands.cli:main"
    assert scripts == {alias: VERBS[verb].target for alias, verb in DEPRECATED_ALIASES.items()}
    for verb in VERBS.values():
        assert callable(verb.load())


def test_an_alias_and_its_verb_answer_alike(capsys, tmp_path):
    """An installed console script, as a shell runs it, and the verb: the same one-line failure and exit status."""
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "taken").write_text("")
    alias = subprocess.run(
        [str(Path(sys.executable).with_name("babyvlm-toyworld")), "--output", str(tmp_path / "world")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    verb = run(capsys, "data", "toyworld", "--output", tmp_path / "world")
    assert (alias.returncode, alias.stdout, alias.stderr) == verb
    assert verb[0] == 1 and verb[2].startswith("babyvlm data toyworld: error: ") and verb[2].count("\n") == 1


# --- every verb on tiny inputs, in the order a researcher runs them --------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("babyvlm-verbs")


@pytest.fixture(scope="module")
def toyworld(work):
    assert cli.main(["data", "toyworld", "--output", str(work / "toyworld")]) == 0
    return work / "toyworld"


@pytest.fixture(scope="module")
def generated(work, toyworld):
    argv = ["data", "generate", "--annotations", str(toyworld), "--output", str(work / "devcv"), "--tasks", "count"]
    assert cli.main([*argv, "--train-tasks", "count", "--items-per-task", "4", "--no-audit"]) == 0
    return work / "devcv"


def test_data_saycam_builds_the_corpora(capsys, toyworld, tmp_path):
    status, out, _ = run(
        capsys,
        *("data", "saycam", "--videos", toyworld / "videos", "--transcripts", toyworld / "transcripts.csv"),
        *("--children", toyworld / "children.csv", "--corpora", "utterances", "--output", tmp_path, "--no-progress"),
    )
    assert status == 0 and "utterances" in out
    assert (tmp_path / "utterances" / "README.md").is_file()


def test_data_devcv_and_audit(capsys, tmp_path):
    write_split_layout(tmp_path / "saycam", tasks=("count",), splits=("test",), n=3)
    status, out, _ = run(capsys, "data", "devcv", tmp_path / "saycam", "--output", tmp_path / "devcv", "--quiet")
    assert status == 0 and "wrote" in out
    status, out, _ = run(capsys, "data", "audit", tmp_path / "devcv", "--json", tmp_path / "audit.json")
    assert status == 0 and "count" in out and json.loads((tmp_path / "audit.json").read_text())


def test_train_sft_one_step_in_this_process(capsys, tiny_model_dir, generated, tmp_path):
    status, _, _ = run(
        capsys,
        *("train", "sft", "--config", TINY / "stage3_instruct.yaml", "--model_name_or_path", tiny_model_dir),
        *("--datasets", f"{generated}:count@train", "--output_dir", tmp_path / "model", "--max-steps", "1"),
    )
    assert status == 0 and (tmp_path / "model" / "model.safetensors").is_file()


def test_train_sft_fails_in_one_line(capsys, tiny_model_dir, tmp_path):
    missing = tmp_path / "missing"
    status, _, err = run(
        capsys,
        *("train", "sft", "--config", TINY / "stage3_instruct.yaml", "--model_name_or_path", tiny_model_dir),
        *("--datasets", missing, "--output_dir", tmp_path / "model"),
    )
    assert status == 1 and err.endswith(
        f"babyvlm train sft: error: dataset {missing}: no such folder, and not a Hub dataset (FileNotFoundError)\n"
    )


def test_train_vision_one_step(capsys, tmp_path):
    from PIL import Image

    frames = tmp_path / "frames"  # an image folder: `load_dataset` gives it an `image` column
    frames.mkdir()
    for index in range(4):
        Image.new("RGB", (40, 40), (60 * index, 20, 200)).save(frames / f"{index}.png")
    status, _, _ = run(
        capsys,
        *("train", "vision", "--config", TINY / "stage0_vision.yaml", "--dataset_name", frames),
        *("--output_dir", tmp_path / "vision", "--max_steps", "1", "--per_device_train_batch_size", "2"),
    )
    assert status == 0 and (tmp_path / "vision" / "config.json").is_file()


@pytest.mark.parametrize("norm_flag", [[], ["--projector-input-norm"]])
def test_train_assemble(capsys, tmp_path, norm_flag):
    from babyvlm.processing import train_tokenizer
    from transformers import AutoConfig, Dinov2Model, LlamaForCausalLM

    from babyvlm.testing.babyllava import SAMPLE_UTTERANCES, tiny_config

    tokenizer = train_tokenizer(SAMPLE_UTTERANCES * 4, vocab_size=64, min_frequency=1)
    towers = tiny_config(len(tokenizer), tokenizer.image_token_id)
    LlamaForCausalLM(towers.text_config).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    Dinov2Model(towers.vision_config).save_pretrained(tmp_path / "vision")
    status, out, _ = run(
        capsys,
        "train",
        "assemble",
        "--vision",
        tmp_path / "vision",
        "--language-model",
        tmp_path / "lm",
        "--output",
        tmp_path / "assembled",
        *norm_flag,
    )
    assert status == 0 and "assembled BabyLLaVA-V2" in out
    assert AutoConfig.from_pretrained(tmp_path / "assembled").projector_input_norm is bool(norm_flag)


def test_eval_compare_submit_and_explore(capsys, monkeypatch, tiny_model_dir, generated, work):
    status, out, _ = run(
        capsys,
        *("eval", "--model", tiny_model_dir, "--data", generated, "--output", work / "eval", "--tasks", "count"),
        *("--device", "cpu", "--no-progress"),
    )
    assert status == 0 and "count" in out and (work / "eval" / "results.json").is_file()
    status, out, _ = run(capsys, "compare", f"tiny={work / 'eval'}", "--output", work / "comparison")
    assert status == 0 and (work / "comparison" / "comparison.md").is_file()
    status, out, _ = run(capsys, "submit", "--model", tiny_model_dir, "--name", "tiny", "--output", work / "submission")
    assert status == 0 and (work / "submission" / "submission.json").is_file()

    pytest.importorskip("gradio", reason="`make install` installs the explore extra")
    from babyvlm.commands.explore import app

    launched = []

    class Page:  # the Gradio page, launched without a server
        def queue(self):
            return self

        def launch(self, **options):
            launched.append(options)

    monkeypatch.setattr(app, "build_app", lambda explorer: launched.append(explorer) or Page())
    status, _, _ = run(capsys, "explore", "--data", generated, "--runs", work / "eval", "--port", "0")
    assert status == 0 and launched[0].folder is not None and launched[0].runs and launched[1]["server_port"] == 0


@pytest.fixture(scope="module")
def age_checkpoints(work, tiny_model_dir):
    """Two copies of the tiny BabyLLaVA-V2 as a run's age checkpoints, and a DevCV folder of a few items."""
    for age in (6, 8):
        shutil.copytree(tiny_model_dir, work / "run" / "age_checkpoints" / f"age-{age}mo")
    items = {"picture_vocabulary": synthetic_items("pv", 2), "count": synthetic_items("count", 2)}
    return work / "run", write_devcv_folder(work / "trajectory-devcv", items)


TRAJECTORY = ("--limit", "2", "--max-new-tokens", "2", "--bootstrap", "20", "--device", "cpu", "--no-progress")


def test_trajectory_prints_each_checkpoints_score_interval_and_n(capsys, age_checkpoints, work):
    run_folder, data = age_checkpoints
    pairs = write_pairs_corpus(work / "pairs", 3)
    argv = ("trajectory", run_folder, "--data", data, "--pairs", pairs, "--output", work / "trajectory", *TRAJECTORY)
    status, out, _ = run(capsys, *argv)
    assert status == 0 and (work / "trajectory" / "trajectory.json").is_file()
    titles = ("Picture Vocabulary (baby_pv", "Object Counting (baby_count", "zero-shot Picture Vocabulary")
    for title in (*titles, "utterance-frame matching (utterance_frame_matching"):
        block = out.split(title)[1].split("\n\n")[0].splitlines()
        assert block[1].split() == ["checkpoint", "months", "score", "95%", "CI", "n", "p"]
        assert [line.split()[0] for line in block[2:4]] == ["age-6mo", "age-8mo"]
        assert all(re.search(r"\[\d\.\d{3}, \d\.\d{3}\] +2 ", line) for line in block[2:4])
    assert "were not instruction-tuned" in out


def test_trajectory_instructs_each_checkpoint_once(capsys, age_checkpoints, generated, work):
    run_folder, data = age_checkpoints
    recipe = work / "instruct.yaml"
    recipe.write_text(
        (TINY / "stage3_instruct.yaml").read_text()
        + f"datasets: [{{path: {generated}, name: count, split: train}}]\nmax_steps: 1\nsave_strategy: 'no'\n"
    )
    argv = ("trajectory", run_folder / "age_checkpoints" / "age-6mo", "--data", data, "--output", work / "tuned")
    argv += ("--tasks", "count", "--probes", "none", "--instruct", recipe, *TRAJECTORY)
    status, out, _ = run(capsys, *argv)
    tuned = work / "tuned" / "instructed" / "age-6mo" / "model.safetensors"
    assert status == 0 and tuned.is_file() and "instruction-tuned" not in out
    trained = tuned.stat().st_mtime_ns
    assert run(capsys, *argv)[0] == 0 and tuned.stat().st_mtime_ns == trained  # cached: not tuned again


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--x", "checkpoint", "--aoa-norms", "NORMS"), "compare them on --x months, not checkpoint"),
        (("--aoa-norms", "MISSING"), "cannot be read"),
        (("--instruct", "MISSING"), "no such recipe file"),
        (("--probes", "memory"), "no zero-shot probe 'memory'"),
    ],
)
def test_trajectory_refuses_bad_arguments_in_one_line(capsys, age_checkpoints, tmp_path, options, message):
    run_folder, data = age_checkpoints
    (tmp_path / "norms.csv").write_text("word,aoa_months\nball,14\n")
    paths = {"NORMS": tmp_path / "norms.csv", "MISSING": tmp_path / "missing"}
    options = [paths.get(option, option) for option in options]
    status, out, err = run(capsys, "trajectory", run_folder, "--data", data, "--output", tmp_path / "out", *options)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("babyvlm trajectory: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_convert_and_demo_fail_in_one_line(capsys, tmp_path):
    status, _, err = run(capsys, "convert", "--output", tmp_path / "out")
    assert (
        status == 1
        and err
        == "babyvlm convert: error: nothing to convert: pass a LLaVA checkpoint folder, a vision checkpoint, or both\n"
    )
    (tmp_path / "demo").write_text("a file where the demo's folder goes")
    status, _, err = run(capsys, "demo", "--smoke", "--output", tmp_path / "demo")
    assert status == 1 and err.startswith("babyvlm demo: error: ") and err.count("\n") == 1

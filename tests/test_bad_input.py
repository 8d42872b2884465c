"""Bad input to the builders and the evaluation command gets a clear error or a counted skip.

Each test feeds one kind of bad input a hostile but realistic user would, asserts the message names the item, file
or field, and that nothing half-written is left. (The processor's cases are in `test_processing.py`.)
"""

import errno
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest
import torch
from babyvlm.dataset_builders.devcv.builder import build_devcv
from babyvlm.dataset_builders.devcv.cli import main as build_devcv_main
from babyvlm.dataset_builders.devcv.limits import InputLimits
from fixtures_devcv import noise_image, write_json

from babyvlm.staging import STAGING_OWNER_FILE, staged_folder


def count_item(item_id: str, image: str = "images/a.png", question: str = "How many cups do you see?") -> dict:
    return {
        "id": item_id,
        "image": [image],
        "conversations": [{"from": "human", "value": f"<image> {question}"}, {"from": "gpt", "value": "2"}],
    }


@pytest.fixture
def release(tmp_path):
    """A one-task release (`saycam/test/count`) with one good image; returns the task folder."""
    folder = tmp_path / "saycam" / "test" / "count"
    (folder / "images").mkdir(parents=True)
    noise_image(0).save(folder / "images" / "a.png")
    return folder


def build(release, output, **kwargs):
    return build_devcv([release.parents[1]], output, progress=False, audit=False, **kwargs)


def skips(report) -> dict:
    return {skip.id: (skip.reason, skip.detail) for skip in report.skipped}


# --- DevCV builder -------------------------------------------------------------------------------------------------


def test_symlink_inside_the_data_root_to_a_file_outside_is_skipped_unless_allowed(release, tmp_path):
    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    noise_image(1).save(secret)
    (release / "images" / "link.png").symlink_to(secret)
    (release / "linked_folder").symlink_to(secret.parent, target_is_directory=True)
    write_json(
        release / "data.json",
        [count_item("good"), count_item("link", "images/link.png"), count_item("folder", "linked_folder/secret.png")],
    )
    report = build(release, tmp_path / "devcv")
    assert report.written == 1
    reason, detail = skips(report)["link"]
    assert reason == "path_outside_root"
    assert f"'images/link.png' is a symbolic link to {secret.resolve()}, outside the data root" in detail
    assert "--allow-links-outside-root" in detail
    assert skips(report)["folder"][0] == "path_outside_root"

    allowed = build(release, tmp_path / "devcv-links", limits=InputLimits(allow_links_outside_root=True))
    assert allowed.written == 3 and not allowed.skipped


def test_an_item_whose_gold_answer_the_task_cannot_parse_is_skipped_and_counted(release, tmp_path):
    many = count_item("many")
    many["conversations"][1]["value"] = "many"
    write_json(release / "data.json", [count_item("good"), many])
    report = build(release, tmp_path / "devcv")
    assert report.written == 1
    assert skips(report)["many"] == ("invalid_answer", "count: gold answer 'many' is not a valid number answer")
    assert report.skip_reasons()["invalid_answer"] == 1


def test_a_link_that_stays_inside_the_root_is_followed(release, tmp_path):
    (release / "images" / "same.png").symlink_to(release / "images" / "a.png")
    write_json(release / "data.json", [count_item("linked", "images/same.png")])
    assert build(release, tmp_path / "devcv").written == 1


def test_an_18_mb_question_is_skipped_and_reported(release, tmp_path, capsys):
    write_json(release / "data.json", [count_item("good"), count_item("huge", question="why " * 4_500_000)])
    report = build(release, tmp_path / "devcv")
    assert report.written == 1
    reason, detail = skips(report)["huge"]
    assert reason == "too_large"
    assert "text field conversations[0].value is 17.2 MiB, over the limit of 64.0 KiB per text field" in detail
    assert "--max-text-bytes" in detail

    # The per-item limit, from the command line, reported in the summary like every other skip.
    write_json(release / "data.json", [count_item("good"), count_item("long", question="a long question, " * 8)])
    argv = [str(release.parents[1]), "--output", str(tmp_path / "cli"), "--no-audit", "--quiet"]
    assert build_devcv_main([*argv, "--max-item-bytes", "100"]) == 1  # nothing left to write: an error
    assert "too_large: 2" in capsys.readouterr().err and not (tmp_path / "cli").exists()
    assert build_devcv_main([*argv, "--max-item-bytes", "200"]) == 0
    assert "too_large: 1" in capsys.readouterr().out


def _build_until_killed(output, ready):
    with staged_folder(output):
        ready.set()
        time.sleep(60)


def test_staging_folder_of_a_sigkilled_build_is_removed_by_the_next_build(release, tmp_path, caplog):
    write_json(release / "data.json", [count_item("good")])
    output = tmp_path / "out" / "devcv"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    killed = context.Process(target=_build_until_killed, args=(output, ready))
    killed.start()
    assert ready.wait(30)
    os.kill(killed.pid, signal.SIGKILL)
    killed.join()
    (stale,) = output.parent.glob(".devcv.tmp-*")
    # A build still running (here: this very process) keeps its staging folder.
    running = output.parent / ".devcv.tmp-running"
    running.mkdir()
    (running / STAGING_OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")

    build(release, output)
    assert not stale.exists() and running.exists()
    assert f"removed {stale}, the staging folder of a run (pid {killed.pid}) that was killed" in caplog.text
    assert sorted(path.name for path in output.parent.iterdir()) == [".devcv.tmp-running", "devcv"]
    assert not (output / STAGING_OWNER_FILE).exists()


# --- SAYCam builder ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saycam_world(tmp_path_factory):
    from babyvlm.dataset_builders.toyworld.generate import generate_toyworld

    root = tmp_path_factory.mktemp("raw") / "world"
    generate_toyworld(root, seed=0, scale="small")
    return root


def with_latin1_byte(transcripts: Path, output: Path, data_line: int) -> str:
    """Copy the transcript CSV with its `data_line`-th data row's text given one Latin-1 byte (é = 0xe9)."""
    lines = transcripts.read_bytes().split(b"\n")
    lines[data_line] = lines[data_line].replace(b"a", b"\xe9", 1)
    output.write_bytes(b"\n".join(lines))
    return lines[data_line].decode("latin-1")


def test_saycam_transcript_with_a_non_utf8_byte_skips_that_row_naming_file_and_line(saycam_world, tmp_path, capsys):
    from babyvlm.dataset_builders.saycam import cli as saycam_cli

    transcripts = tmp_path / "transcripts.csv"
    with_latin1_byte(saycam_world / "transcripts.csv", transcripts, data_line=3)
    rows = len(transcripts.read_bytes().strip().split(b"\n")) - 1
    argv = ["--videos", str(saycam_world / "videos"), "--transcripts", str(transcripts), "--corpora", "utterances"]
    saycam_cli.main([*argv, "--output", str(tmp_path / "utf8"), "--no-progress"])
    assert "1 failures (1 bad inputs)" in capsys.readouterr().out
    report = json.loads((tmp_path / "utf8" / "build_report.json").read_text())
    (failure,) = report["failures"]
    assert failure["item"] == "transcripts.csv row 3" and failure["reason"] == "malformed_row"
    assert failure["detail"].startswith("line 4: column 'text', character")
    assert "is byte 0xe9, not valid utf-8; pass the file's encoding with --encoding" in failure["detail"]
    assert report["corpora"]["utterances"]["kept"] == rows - 1

    saycam_cli.main([*argv, "--output", str(tmp_path / "latin1"), "--no-progress", "--encoding", "latin-1"])
    report = json.loads((tmp_path / "latin1" / "build_report.json").read_text())
    assert not report["failures"] and report["corpora"]["utterances"]["kept"] == rows


def test_saycam_json_lines_with_a_bad_byte_and_an_unknown_encoding(tmp_path):
    from babyvlm.dataset_builders.saycam.transcripts import read_transcripts

    good = {"recording": "A_20130101_1200_01", "start_ms": 0, "end_ms": 900, "text": "look"}
    lines = [json.dumps(good).encode(), json.dumps({**good, "start_ms": 1000, "end_ms": 1900}).encode()]
    (tmp_path / "t.jsonl").write_bytes(lines[0] + b"\n" + lines[1].replace(b"look", b"l\xffok") + b"\n")
    transcript = read_transcripts(tmp_path / "t.jsonl")
    assert [u.text for u in transcript.utterances] == ["look"]
    (failure,) = transcript.failures
    assert (failure.item, failure.reason) == ("t.jsonl row 2", "malformed_row")
    assert failure.detail.startswith("line 2: character") and "byte 0xff, not valid utf-8" in failure.detail
    with pytest.raises(ValueError, match="unknown text encoding 'utf-9'"):
        read_transcripts(tmp_path / "t.jsonl", encoding="utf-9")


# --- babyvlm-eval --------------------------------------------------------------------------------------------------


def run_eval(model, output, data, monkeypatch, capsys) -> str:
    """Run `babyvlm-eval`, expecting it to stop with one line before any model is loaded; returns that line."""
    from babyvlm.evaluate_metrics import inference, runner

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(inference, "load_model_and_processor", no_loading)
    assert runner.main(["--model", str(model), "--data", str(data), "--output", str(output), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("babyvlm eval: error: ")
    return error


def test_eval_refuses_pickle_weights_that_need_arbitrary_code(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import argparse

    from safetensors.torch import load_file

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    torch.save({**weights, "training_args": argparse.Namespace(lr=1e-4)}, model / "pytorch_model.bin")
    error = run_eval(model, tmp_path / "eval", tmp_path, monkeypatch, capsys)
    assert f"model folder {model}: pytorch_model.bin is refused" in error and "(argparse.Namespace)" in error
    assert not (tmp_path / "eval").exists()


def test_eval_refuses_an_output_folder_it_cannot_write(tiny_model_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("")
    error = run_eval(tiny_model_dir, tmp_path / "a_file" / "eval", tmp_path, monkeypatch, capsys)
    assert f"output folder {tmp_path / 'a_file' / 'eval'}: cannot be created, {tmp_path / 'a_file'} is a file" in error


def test_an_output_folder_in_a_read_only_folder_is_named_before_anything_is_written():
    """Checked by an unprivileged process (root may write anywhere), through the lock every writer takes."""
    from babyvlm.locking import OutputLocationError, output_lock
    from babyvlm.staging import write_text

    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        (base / "results").mkdir(mode=0o555)
        (base / "results").chmod(0o555)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()

        def lock_a_folder():  # as `babyvlm eval`, the training recipes and every staged folder do
            with output_lock(base / "results" / "eval"):
                pass

        def write_as_unprivileged_user():
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            messages = []
            for write in (lock_a_folder, lambda: write_text(base / "results" / "report.json", "{}")):
                try:
                    write()
                except OutputLocationError as failure:
                    messages.append(str(failure))
                else:
                    messages.append("written")
            queue.put(messages)

        child = context.Process(target=write_as_unprivileged_user)
        child.start()
        child.join(30)
        messages = queue.get(timeout=5)
    finally:
        (base / "results").chmod(0o755)
        shutil.rmtree(base)
    assert messages == [
        f"output folder {base / 'results' / 'eval'}: {base / 'results'} is not writable (Permission denied)",
        f"output folder {base / 'results'}: {base / 'results'} is not writable (Permission denied)",
    ]


def test_saycam_transcripts_that_name_no_video_fail_the_build_instead_of_empty_corpora(saycam_world, tmp_path, capsys):
    from babyvlm.dataset_builders.saycam import cli as saycam_cli

    transcripts = tmp_path / "transcripts.csv"
    # Every row names a recording from 2990s: none of the videos.
    transcripts.write_text(re.sub(r"^(\w)_20", r"\1_29", (saycam_world / "transcripts.csv").read_text(), flags=re.M))
    argv = ["--videos", str(saycam_world / "videos"), "--transcripts", str(transcripts)]
    assert (
        saycam_cli.main([*argv, "--corpora", "image_utterance", "--output", str(tmp_path / "out"), "--no-progress"])
        == 1
    )
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"{tmp_path / 'out'}: no record in image_utterance from " in error and "missing_video" in error, error
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert report["empty_corpora"] == ["image_utterance"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: (m / "config.json").write_text("{not json"), "config.json is not valid JSON (Expecting property"),
        (
            lambda m: (m / "config.json").write_text(
                json.dumps({**json.loads((m / "config.json").read_text()), "model_type": 7})
            ),
            "config.json: model_type is 7, not a name",
        ),
        (lambda m: (m / "config.json").write_text("[1, 2]"), "config.json holds a list, not a JSON object"),
        (
            lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:-100]),
            "model.safetensors is not a readable safetensors file (",
        ),
        (lambda m: (m / "model.safetensors").write_bytes(os.urandom(4096)), "model.safetensors is not a readable"),
    ],
    ids=["invalid-json", "wrong-type", "not-an-object", "truncated-weights", "random-weights"],
)
def test_eval_names_a_broken_model_file_in_one_line(damage, message, tiny_model_dir, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    damage(model)
    error = run_eval(model, tmp_path / "eval", tmp_path, monkeypatch, capsys)
    assert error.startswith(f"babyvlm eval: error: model folder {model}: {message}"), error
    assert not (tmp_path / "eval").exists()


# --- babyvlm compare -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda run, human: (run / "summary.json").write_text("{not json"), "run/summary.json"),
        (lambda run, human: (run / "summary.json").write_bytes(b"\xff\xfe"), "run/summary.json"),
        (lambda run, human: human.mkdir(), "human.json"),
        (lambda run, human: human.write_text("[" * 200_000), "human.json"),
    ],
    ids=["summary-invalid-json", "summary-not-utf8", "human-a-folder", "human-200k-deep"],
)
def test_compare_names_an_unreadable_summary_or_human_file_in_one_line(damage, named, tmp_path, capsys):
    from babyvlm.evaluate_metrics import compare

    run, human = tmp_path / "run", tmp_path / "human.json"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    damage(run, human)
    argv = [str(run), "--output", str(tmp_path / "out")]
    assert compare.main([*argv, "--human", str(human)] if human.exists() else argv) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert error.startswith(f"babyvlm compare: error: {tmp_path / named} is not a readable JSON file ("), error
    assert not (tmp_path / "out").exists()


# --- babyvlm train sft ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    """Chat folders for the recipe: `good` (4 rows), `empty` (0 rows), `missing` (4 rows whose image file is gone)."""
    import datasets
    import PIL.Image
    from test_sft_any_vlm import chat_rows, write_chat

    from babyvlm.chat import IMAGES_FEATURE, MESSAGES_FEATURE

    root = tmp_path_factory.mktemp("sft-data")
    for name in ("good", "empty", "missing"):
        (root / name).mkdir()
    write_chat(root / "good", chat_rows(4))
    columns = {"id": datasets.Value("string"), "messages": MESSAGES_FEATURE, "images": IMAGES_FEATURE}
    empty = {"id": [], "messages": [], "images": []}
    datasets.Dataset.from_dict(empty, features=datasets.Features(columns)).to_parquet(root / "empty" / "train.parquet")
    image = root / "gone.png"
    PIL.Image.new("RGB", (40, 30)).save(image)
    undecoded = {**columns, "images": datasets.Sequence(datasets.Image(decode=False))}
    rows = [{**row, "images": [{"path": str(image), "bytes": None}]} for row in chat_rows(4)]
    datasets.Dataset.from_list(rows, features=datasets.Features(undecoded)).to_parquet(
        root / "missing" / "train.parquet"
    )
    image.unlink()
    return root


@pytest.mark.parametrize(
    "data, options, message",
    [
        ("empty", [], r"dataset .*/empty \(default, train\): Instruction \"train\" corresponds to no data"),
        ("good", ["--truncation", "bogus"], r"truncation must be one of \('cut_before_image', 'error'\), got 'bogus'"),
        ("good", ["--max_length", "8"], r"no sample of this batch .* max_length=8 \(items: good/q"),
        ("good", ["--truncation", "error", "--max_length", "20"], r"item good/q\d has \d+ tokens, more than max_len"),
        ("missing", [], r"every sample of this batch lost an image: missing/q\d: .*gone\.png \(FileNotFoundError\)"),
        ("missing", ["--strict_images", "true"], r"item missing/q\d: image .*gone\.png cannot be read"),
    ],
    ids=["0-rows", "truncation-unknown", "max-length-8", "truncation-error", "all-images-missing", "strict-images"],
)
def test_sft_names_bad_data_or_arguments_in_one_line(
    data, options, message, sft_data, tiny_model_dir, tmp_path, capsys
):
    from babyvlm.training import sft

    argv = ["--stage", "instruct", "--model_name_or_path", str(tiny_model_dir), "--datasets", str(sft_data / data)]
    settings = ["--use_cpu", "true", "--report_to", "none", "--save_strategy", "no", "--max_steps", "1"]
    settings += ["--per_device_train_batch_size", "4", "--gradient_checkpointing", "false", "--bf16", "false"]
    assert sft.main([*argv, *settings, *options, "--output_dir", str(tmp_path / "out")]) == 1
    errors = capsys.readouterr().err
    # One line of its own (not glued to the end of the progress bar the failure interrupted), no traceback.
    (error,) = [line for line in errors.split("\n") if ": error: " in line]
    assert error.startswith("babyvlm train sft: error: ") and "Traceback" not in errors, errors
    assert re.search(message, error.removeprefix("babyvlm train sft: error: ")), error
    assert [path.name for path in tmp_path.iterdir()] == []  # no model folder, no empty checkpoints folder


def test_a_nul_byte_in_an_image_path_skips_that_item_and_the_build_goes_on(release, tmp_path):
    write_json(release / "data.json", [count_item("good"), count_item("nul", "images/a\x00.png")])
    report = build(release, tmp_path / "devcv")
    assert report.written == 1
    assert skips(report)["nul"] == ("malformed_field", "image path 'images/a\\x00.png' contains a NUL byte")


def test_json_nested_200000_levels_deep_is_an_unreadable_file_not_a_recursion_traceback(release, tmp_path, capsys):
    (release / "data.json").write_text("[" * 200_000 + "]" * 200_000)
    argv = [str(release.parents[1]), "--output", str(tmp_path / "cli"), "--no-audit", "--quiet"]
    assert build_devcv_main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("babyvlm data devcv: error: no item could be")
    from babyvlm.dataset_builders.devcv.builder import DevCVBuildError

    with pytest.raises(DevCVBuildError) as failed:
        build(release, tmp_path / "api")
    assert failed.value.report.skip_reasons() == {"unreadable_file": 1}
    (skip,) = failed.value.report.skipped_files
    assert "maximum recursion depth exceeded" in skip.detail


def test_a_broken_dataset_card_is_named_by_eval_audit_and_training(release, tmp_path, capsys):
    from babyvlm.dataset_builders.devcv.audit import main as audit_main
    from babyvlm.evaluate_metrics import runner

    from babyvlm.training.data import DatasetSpec, load_spec

    write_json(release / "data.json", [count_item("good")])
    build(release, tmp_path / "devcv")
    (tmp_path / "devcv" / "README.md").write_text("---\nconfigs: [\n---\n")
    named = f"{tmp_path / 'devcv' / 'README.md'}: the dataset card's YAML header does not parse ("
    data = str(tmp_path / "devcv")
    assert runner.main(["--model", data, "--data", data, "--output", str(tmp_path / "eval"), "--no-progress"]) == 1
    assert audit_main([data]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert [line.split(": error: ", 1)[1].startswith(named) for line in errors] == [True, True], errors
    with pytest.raises(ValueError, match=re.escape(named)):
        load_spec(DatasetSpec(data, None, "train"))


@pytest.mark.parametrize("contents", ["text", "parquet without images"])
def test_the_audit_of_a_folder_that_is_not_a_devcv_dataset_names_it(contents, tmp_path, capsys):
    from babyvlm.dataset_builders.devcv.audit import main as audit_main

    folder = tmp_path / "notes"
    folder.mkdir()
    if contents == "text":
        (folder / "notes.txt").write_text("not a dataset\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"question": ["q"], "answer": ["a"]}), folder / "test.parquet")
    assert audit_main([str(folder)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"babyvlm data audit: error: {folder}: not a DevCV dataset folder (its ")


# --- every command's output folder ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage0_towers(tmp_path_factory):
    """A tiny stage-0 vision model and language model (with tokenizer), as `babyvlm train assemble` takes them."""
    from babyvlm.processing import train_tokenizer
    from transformers import Dinov2Model, LlamaForCausalLM

    from babyvlm.testing.babyllava import SAMPLE_UTTERANCES, tiny_config

    root = tmp_path_factory.mktemp("stage0")
    tokenizer = train_tokenizer(SAMPLE_UTTERANCES * 4, vocab_size=64, min_frequency=1)
    towers = tiny_config(len(tokenizer), tokenizer.image_token_id)
    LlamaForCausalLM(towers.text_config).save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    Dinov2Model(towers.vision_config).save_pretrained(root / "vision")
    return root


def command_lines(inputs: dict) -> dict:
    """(module of the verb's `main`, its argv before the output option, that option) per writing command."""
    world, model = str(inputs["world"]), str(inputs["model"])
    sft = ["--stage", "instruct", "--model_name_or_path", model, "--datasets", str(inputs["chat"])]
    sft += ["--use_cpu", "true", "--report_to", "none", "--save_strategy", "no", "--max_steps", "1", "--bf16", "false"]
    return {
        "eval": ("babyvlm.evaluate_metrics.runner", ["--model", model, "--data", world, "--no-progress"], "--output"),
        "data saycam": (
            "babyvlm.dataset_builders.saycam.cli",
            ["--videos", f"{world}/videos", "--transcripts", f"{world}/transcripts.csv", "--corpora", "utterances"],
            "--output",
        ),
        "data devcv": ("babyvlm.dataset_builders.devcv.cli", [str(inputs["release"]), "--no-audit"], "--output"),
        "data generate": ("babyvlm.dataset_builders.devcv.generators.cli", ["--annotations", world], "--output"),
        "data toyworld": ("babyvlm.dataset_builders.toyworld.cli", [], "--output"),
        "convert": ("babyvlm.convert", ["--llava-checkpoint", str(inputs["release"])], "--output"),
        "submit": ("babyvlm.evaluate_metrics.submission", ["--model", model, "--name", "Mine"], "--output"),
        "compare": ("babyvlm.evaluate_metrics.compare", [world], "--output"),
        "train assemble": (
            "babyvlm.training.assemble",
            ["--vision", str(inputs["towers"] / "vision"), "--language-model", str(inputs["towers"] / "lm")],
            "--output",
        ),
        "train sft": ("babyvlm.training.sft", sft, "--output_dir"),
    }


COMMANDS = list(command_lines({name: Path() for name in ("world", "model", "chat", "release", "towers")}))


@pytest.mark.parametrize("under", [False, True], ids=["is-a-file", "under-a-file"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_names_an_output_folder_that_is_a_file_or_lies_under_one(
    command, under, saycam_world, tiny_model_dir, sft_data, stage0_towers, release, tmp_path, capsys
):
    import importlib

    write_json(release / "data.json", [count_item("good")])
    inputs = {"world": saycam_world, "model": tiny_model_dir, "chat": sft_data / "good", "release": release.parents[1]}
    module, argv, option = command_lines({**inputs, "towers": stage0_towers})[command]
    work = tmp_path / "work"
    work.mkdir()
    (work / "a_file").write_text("kept")
    output = work / "a_file" / "out" if under else work / "a_file"
    assert importlib.import_module(module).main([*argv, option, str(output)]) == 1
    (error,) = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    reason = f": cannot be created, {work / 'a_file'} is a file" if under else " is a file, not a folder"
    assert error == f"babyvlm {command}: error: output folder {output}{reason}"
    assert [path.name for path in work.iterdir()] == ["a_file"] and (work / "a_file").read_text() == "kept"


# --- babyvlm train assemble ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "part, damage, message",
    [
        ("vision", lambda path: path, "vision model {path}: no such folder, and not a Hub repo id (owner/name)"),
        ("lm", lambda path: path, "language model {path}: no such folder, and not a Hub repo id (owner/name)"),
        ("vision", lambda path: path.touch() or path, "vision model {path}: a file, not a model folder"),
        ("lm", lambda path: path.mkdir() or path, "language model {path} does not load: Unrecognized model in {path}"),
    ],
    ids=["vision-missing", "language-model-missing", "vision-a-file", "language-model-empty-folder"],
)
def test_assemble_names_a_part_that_is_missing_or_does_not_load(part, damage, message, stage0_towers, tmp_path, capsys):
    from babyvlm.training.assemble import main as assemble_main

    parts = {"vision": stage0_towers / "vision", "lm": stage0_towers / "lm", part: damage(tmp_path / "part")}
    argv = ["--vision", str(parts["vision"]), "--language-model", str(parts["lm"]), "--output", str(tmp_path / "out")]
    assert assemble_main(argv) == 1
    errors = capsys.readouterr().err
    (error,) = [line for line in errors.splitlines() if ": error: " in line]  # (after a part's loading bar)
    assert "Traceback" not in errors and error.startswith(
        f"babyvlm train assemble: error: {message.format(path=tmp_path / 'part')}"
    ), error
    assert not (tmp_path / "out").exists()


def test_sft_names_an_unknown_task_of_a_devcv_folder_and_lists_its_tasks(tiny_model_dir, tmp_path, capsys):
    from babyvlm.testing.devcv import synthetic_items, write_devcv_folder
    from babyvlm.training import sft

    items = {task: synthetic_items(task, 2, split="train") for task in ("count", "vdr_open")}
    devcv = write_devcv_folder(tmp_path / "devcv", items, split="train")
    argv = ["--stage", "instruct", "--model_name_or_path", str(tiny_model_dir), "--datasets", f"{devcv}:cuont@train"]
    settings = ["--use_cpu", "true", "--report_to", "none", "--max_steps", "1", "--bf16", "false"]
    assert sft.main([*argv, *settings, "--output_dir", str(tmp_path / "out")]) == 1
    (error,) = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert error == (
        f"babyvlm train sft: error: dataset {devcv}: no config 'cuont' (a DevCV folder has one per task); "
        "its configs: count, vdr_open"
    )
    assert not (tmp_path / "out").exists()


# --- a full disk -----------------------------------------------------------------------------------------------------


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_folder_or_file_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    from babyvlm.locking import OutputLocationError
    from babyvlm.staging import staged_file, staged_folder

    (tmp_path / "image.png").write_bytes(b"png")
    (tmp_path / "report.json").write_text("previous")
    monkeypatch.setattr(shutil, "copyfile", no_space)
    with pytest.raises(OutputLocationError) as folder_failed, staged_folder(tmp_path / "out") as staging:
        shutil.copyfile(tmp_path / "image.png", staging / "image.png")
    with pytest.raises(OutputLocationError) as file_failed, staged_file(tmp_path / "report.json") as temporary:
        shutil.copyfile(tmp_path / "image.png", temporary)
    assert str(folder_failed.value) == f"output folder {tmp_path / 'out'}: no space left on device, nothing was written"
    assert str(file_failed.value) == f"{tmp_path / 'report.json'}: no space left on device, nothing was written"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["image.png", "report.json"]
    assert (tmp_path / "report.json").read_text() == "previous"


def test_a_full_disk_during_a_build_is_one_line_naming_the_output_folder(release, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet

    def pyarrow_out_of_space(*args, **kwargs):  # pyarrow's own error: the system's message, no errno
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    write_json(release / "data.json", [count_item("good")])
    monkeypatch.setattr(pyarrow.parquet.ParquetWriter, "write_table", pyarrow_out_of_space)
    output = tmp_path / "out" / "devcv"
    assert build_devcv_main([str(release.parents[1]), "--output", str(output), "--no-audit", "--quiet"]) == 1
    errors = capsys.readouterr().err
    (error,) = [line for line in errors.split("\n") if ": error: " in line]
    assert error == f"babyvlm data devcv: error: output folder {output}: no space left on device, nothing was written"
    assert "Traceback" not in errors and [path.name for path in output.parent.iterdir()] == []

"""Stage 0 vision along the child's timeline: what the run saw in every folder it writes (one process and two),
the chronological order of the frames, age checkpoints, and the collapse monitor's warning and stop."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import PIL.Image
import pytest
from babyvlm.dataset_builders.saycam.records import SPECS
from transformers import Dinov2Model

from babyvlm.testing.launch import cpu_launch
from babyvlm.training.dino_data import load_image_dataset
from babyvlm.training.exposure import Curriculum, age_folder_name

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "pretrain_vision.py")
TINY_YAML = REPO / "recipes" / "babyllava_v2" / "tiny" / "stage0_vision.yaml"
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "ACCELERATE_USE_CPU": "true",
}
# (child, age in months, frame period in ms) of each recording; two frames per recording.
RECORDINGS = [
    ("A", 13.0, 1000),
    ("S", 8.0, 500),
    ("Y", 11.0, 2000),
    ("S", 6.5, 1000),
    ("A", 9.5, 250),
    ("Y", 15.0, 500),
]
# A teacher this hot gives uniform targets whatever the images: a real uniform collapse, in two logged steps.
UNIFORM_TEACHER = ["--teacher_temperature_start", "100", "--teacher_temperature", "100", "--collapse_patience", "2"]


def frame_rows() -> list[dict]:
    """The SAYCam `frames` corpus layout: two frames of each recording, one frame period apart."""
    rows = []
    for index, (child, age, period) in enumerate(RECORDINGS):
        for frame in range(2):
            colour = (40 * index % 255, 90 * frame, 60)
            rows.append(
                {
                    "id": f"{child}_{index}_{frame}",
                    "recording": f"{child}_2013010{index}_1500_01",
                    "child": child,
                    "age_months": age,
                    "image": PIL.Image.new("RGB", (40, 40), colour),
                    "time_ms": 5000 + frame * period,
                    "period_s": period / 1000,  # the test's own record of what each frame stands for
                }
            )
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("vision-timeline") / "frames"
    rows = frame_rows()
    features = SPECS["frames"].features
    stored = [{name: row[name] for name in features} for row in rows]
    datasets.Dataset.from_list(stored, features=features).to_parquet(folder / "train.parquet")
    return folder, rows


def independent_count(rows: list[dict]) -> dict:
    return {
        "frames": len(rows),
        "images": len(rows),
        "utterances": 0,
        "video_hours": sum(row["period_s"] for row in rows) / 3600,
        "age_months_range": [min(row["age_months"] for row in rows), max(row["age_months"] for row in rows)],
    }


def chronological(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (row["age_months"], row["child"], rows.index(row)))


def recipe_arguments(frames: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        RECIPE,
        *("--config", str(TINY_YAML), "--dataset_name", str(frames), "--output_dir", str(output_dir)),
        *("--logging_steps", "1", "--warmup_steps", "1", "--per_device_train_batch_size", "4"),
        *extra,
    ]


def run(command: list[str], expect_success: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
    if expect_success:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def assert_counts(document: dict, expected: dict, where) -> None:
    for name, value in expected.items():
        assert document[name] == pytest.approx(value), (where, name)


def test_chronological_order_is_by_age_then_child_then_position_and_the_same_every_time(corpus):
    folder, rows = corpus
    ordered, _ = load_image_dataset(str(folder), None, "train", "image", Curriculum.parse("chronological"))
    expected = [(row["child"], row["age_months"]) for row in chronological(rows)]
    assert list(zip(ordered["exposure_child"], ordered["exposure_age_months"], strict=True)) == expected
    again, _ = load_image_dataset(str(folder), None, "train", "image", Curriculum.parse("chronological"))
    assert again["exposure_age_months"] == ordered["exposure_age_months"]
    windowed = [
        load_image_dataset(str(folder), None, "train", "image", Curriculum.parse("chronological", 6), seed=3)[0]
        for _ in range(2)
    ]
    assert windowed[0]["exposure_video_seconds"] == windowed[1]["exposure_video_seconds"]  # seeded
    assert sorted(windowed[0]["exposure_age_months"]) == sorted(row["age_months"] for row in rows)
    only_s, _ = load_image_dataset(str(folder), None, "train", "image", Curriculum.parse("child=S"))
    assert only_s["exposure_age_months"] == [6.5, 6.5, 8.0, 8.0] and set(only_s["exposure_child"]) == {"S"}


def test_a_curriculum_or_age_checkpoints_on_frames_without_ages_are_one_line(corpus, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    PIL.Image.new("RGB", (40, 40)).save(plain / "0.png")
    with pytest.raises(ValueError, match="curriculum 'chronological' needs an `age_months`"):
        load_image_dataset(str(plain), None, "train", "image", Curriculum.parse("chronological"))
    folder, _ = corpus
    result = run(
        [sys.executable, *recipe_arguments(folder, tmp_path / "out", "--save_every_age_months", "3")],
        expect_success=False,
    )
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "save_at_age_months/save_every_age_months need a chronological or child curriculum" in errors[0]


@pytest.mark.slow
def test_a_shuffled_run_counts_what_it_saw_and_records_a_collapse_in_every_folder(corpus, tmp_path):
    folder, rows = corpus
    output_dir = tmp_path / "shuffled"
    # 6 steps of 4 frames: two passes over the 12 frames, a checkpoint after the first.
    extra = ["--max_steps", "6", "--save_steps", "3", "--save_total_limit", "2", *UNIFORM_TEACHER]
    result = run([sys.executable, *recipe_arguments(folder, output_dir, *extra)])

    document = json.loads((output_dir / "exposure.json").read_text())
    once = independent_count(rows)
    assert_counts(document, {**once, "frames": 24, "images": 24, "video_hours": 2 * once["video_hours"]}, "final")
    assert document["epochs"] == 2 and document["steps"] == 6 and document["age_months_reached"] is None
    (stage,) = document["stages"]
    assert stage["stage"] == "vision" and stage["curriculum"] == "shuffled" and stage["corpora"][0]["fingerprint"]
    first_pass = json.loads(
        (Path(f"{output_dir}-checkpoints") / "checkpoints" / "checkpoint_0" / "exposure.json").read_text()
    )
    assert_counts(first_pass, once, "checkpoint after one pass")

    # The teacher's targets were uniform from the first judged window (after step 1): declared at step 3.
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: uniform collapse")]
    assert len(warnings) == 1 and "at step 3: teacher_entropy" in warnings[0], result.stderr[-2000:]
    collapse = json.loads((output_dir / "collapse.json").read_text())
    assert collapse["collapse"]["kind"] == "uniform" and collapse["collapse"]["step"] == 3
    card = (output_dir / "README.md").read_text()
    assert "## Exposure" in card and "**Collapse declared**: uniform collapse at step 3" in card
    logged = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"step"')]
    assert all(entry["log_k"] == pytest.approx(4.1589, abs=1e-4) for entry in logged)  # 64 prototypes


@pytest.mark.slow
def test_stop_on_collapse_fails_in_one_line_and_saves_no_final_model(corpus, tmp_path):
    folder, _ = corpus
    output_dir = tmp_path / "stopped"
    extra = ["--max_steps", "6", "--save_steps", "2", *UNIFORM_TEACHER, "--stop_on_collapse", "true"]
    result = run([sys.executable, *recipe_arguments(folder, output_dir, *extra)], expect_success=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "uniform collapse at step 3" in errors[0] and "no final model" in errors[0]
    assert "Traceback" not in result.stderr
    assert not output_dir.exists()


@pytest.mark.slow
def test_two_processes_count_every_frame_and_write_loadable_age_checkpoints(corpus, tmp_path):
    folder, rows = corpus
    output_dir = tmp_path / "chronological"
    extra = ["--per_device_train_batch_size", "2", "--max_steps", "6", "--save_steps", "6"]
    extra += ["--curriculum", "chronological", "--save_at_age_months", "9", "12"]
    result = run([*cpu_launch(2), *recipe_arguments(folder, output_dir, *extra)])
    ordered = chronological(rows)
    for age in (9, 12):
        age_folder = output_dir / "age_checkpoints" / age_folder_name(age)
        document = json.loads((age_folder / "exposure.json").read_text())
        # the first step whose frames (4 a step, 2 from each process) reach the age
        fed = next(4 * step for step in range(1, 7) if ordered[4 * step - 1]["age_months"] >= age)
        assert document["age_months_reached"] == age and document["steps"] == fed // 4
        assert_counts(document, independent_count(ordered[:fed]), age_folder)
        assert {"config.json", "model.safetensors", "README.md", "exposure.json", "collapse.json"} == {
            path.name for path in age_folder.iterdir()
        }
        Dinov2Model.from_pretrained(age_folder)
    assert "age checkpoints written: age-09mo, age-12mo" in result.stdout
    final = json.loads((output_dir / "exposure.json").read_text())
    once = independent_count(rows)
    twice = {**once, "frames": 24, "images": 24, "video_hours": 2 * once["video_hours"]}
    assert_counts(final, twice, "final, both processes' frames")
    assert final["stages"][0]["curriculum"] == "chronological"

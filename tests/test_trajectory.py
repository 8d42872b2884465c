"""The checkpoints of a trajectory, their place on the axis of experience, and the trajectory scored along it."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from babyvlm.evaluate_metrics import trajectory as trajectory_module
from babyvlm.evaluate_metrics.data import MissingTaskError
from babyvlm.evaluate_metrics.trajectory import (
    PROBES,
    Checkpoint,
    resolve_checkpoints,
    trajectory,
    trajectory_document,
)

from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder, write_pairs_corpus
from babyvlm.training.exposure import EXPOSURE_FORMAT


def checkpoint(folder, exposure=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if exposure is not None:
        (folder / "exposure.json").write_text(json.dumps({"format": "babyvlm-exposure/1", **exposure}))
    return folder


def test_a_folder_of_age_checkpoints_is_each_of_them_in_age_order(tmp_path):
    for age in ("12", "9", "10.5"):
        checkpoint(
            tmp_path / "run" / "age_checkpoints" / f"age-{age}mo", {"age_months_reached": float(age), "words": 10}
        )
    found = resolve_checkpoints([str(tmp_path / "run")])
    assert [c.name for c in found] == ["age-9mo", "age-10.5mo", "age-12mo"]
    assert [c.experience("months", k) for k, c in enumerate(found)] == [9.0, 10.5, 12.0]
    assert found[0].experience("words", 0) == 10.0


def test_a_training_output_folder_is_its_age_checkpoints_in_age_order_then_its_final_model(tmp_path):
    # a final folder records no age reached: the oldest age its last stage trained on places it
    final = {"age_months_reached": None, "age_months_range": [6.0, 30.0], "stages": [{"age_months_range": [6.5, 14.0]}]}
    run = checkpoint(tmp_path / "run", final)
    for age in ("12", "9"):
        checkpoint(run / "age_checkpoints" / f"age-{age}mo", {"age_months_reached": float(age)})
    found = resolve_checkpoints([str(run)])
    assert [c.name for c in found] == ["age-9mo", "age-12mo", "run"]
    assert found[-1].path == run and [c.experience("months", k) for k, c in enumerate(found)] == [9.0, 12.0, 14.0]
    checkpoint(tmp_path / "plain")
    assert [c.name for c in resolve_checkpoints([str(tmp_path / "plain")])] == ["plain"]  # no age checkpoints


def test_without_exposure_the_name_gives_the_age_and_anything_else_only_its_order(tmp_path):
    named = checkpoint(tmp_path / "age-18mo")
    other = checkpoint(tmp_path / "final")
    first, second = resolve_checkpoints([str(named), str(other)])
    assert first.exposure is None and first.experience("months", 0) == 18.0
    with pytest.raises(ValueError, match="no exposure.json and its name gives no age.*--x checkpoint"):
        second.experience("months", 1)
    assert second.experience("checkpoint", 1) == 1.0


def test_a_malformed_exposure_file_is_one_line_naming_it(tmp_path):
    folder = checkpoint(tmp_path / "age-9mo")
    (folder / "exposure.json").write_text("{}")
    with pytest.raises(ValueError, match="exposure.json: format is not"):
        resolve_checkpoints([str(folder)])


# --- Scoring a trajectory --------------------------------------------------------------------------------------------

RUN = {"max_new_tokens": 2, "bootstrap": 50, "progress": False, "batch_size": 4}
PV_PROBE, LWL_PROBE = PROBES["picture_vocabulary"], PROBES["looking_while_listening"]
MATCHING = "utterance_frame_matching"


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Two tiny age checkpoints of one run, scored on a few Picture Vocabulary, Looking While Listening and Object
    Counting items, the two zero-shot probes and utterance-frame matching on a few held-out pairs."""
    root = tmp_path_factory.mktemp("trajectory")
    data = write_devcv_folder(
        root / "devcv",
        {
            "picture_vocabulary": synthetic_items("pv", 3),
            "looking_while_listening": synthetic_items("lwl", 2),
            "count": synthetic_items("count", 2),
        },
    )
    for seed, age in enumerate((9, 12)):
        folder = save_tiny_llava(root / "run" / "age_checkpoints" / f"age-{age}mo", seed=seed)
        (folder / "exposure.json").write_text(json.dumps({"format": EXPOSURE_FORMAT, "age_months_reached": age + 0.5}))
    write_pairs_corpus(root / "pairs", 5)
    path = trajectory([str(root / "run")], data, root / "out", pairs=root / "pairs", **RUN)
    return root, data, path


def test_each_checkpoint_is_scored_by_the_eval_runner_and_the_probes_in_its_own_folder(scored):
    root, _, _ = scored
    for name in ("age-9mo", "age-12mo"):
        folder = root / "out" / "checkpoints" / name
        summary = json.loads((folder / "eval" / "summary.json").read_text())
        assert set(summary["tasks"]) == {"baby_pv", "baby_winoground", "baby_count"}
        assert json.loads((folder / "eval" / "run.json").read_text())["content"]  # the runner's own record
        assert {path.stem for path in (folder / "probes").glob("*.json")} == {PV_PROBE, LWL_PROBE, MATCHING}


def test_trajectory_json_has_a_row_per_checkpoint_with_n_interval_p_value_and_chance(scored):
    root, _, path = scored
    document = json.loads(path.read_text())
    assert document["x"] == "months" and [row["x"] for row in document["checkpoints"]] == [9.5, 12.5]
    assert [row["exposure"]["age_months_reached"] for row in document["checkpoints"]] == [9.5, 12.5]
    for row in document["checkpoints"]:
        assert row["tasks"]["baby_pv"]["n"] == 3 and row["probes"][LWL_PROBE]["n"] == 4  # two phrases per item
        assert row["probes"][MATCHING]["n"] == 5 and row["probes"][MATCHING]["chance"] == 0.5
        for entry in [*row["tasks"].values(), *row["probes"].values()]:
            assert entry["ci_low"] <= entry["score"] <= entry["ci_high"]
            assert 0 <= entry["p_value"] <= 1 and 0 < entry["chance"] < 1
    assert set(document["acquisition"]) == {"baby_pv", "baby_winoground", "baby_count", PV_PROBE, LWL_PROBE, MATCHING}
    assert document["words"][MATCHING] == {}  # its choices are about no word
    assert "Looking While Listening" in document["note"]  # not instruction-tuned: what is meaningful
    lines = (root / "out" / "trajectory.csv").read_text().splitlines()
    assert lines[0] == "checkpoint,months,kind,key,score,n,ci_low,ci_high,p_value,chance" and len(lines) == 1 + 2 * 6
    plots = sorted(path.stem for path in (root / "out" / "plots").glob("*.png"))
    assert plots == sorted(document["acquisition"])


def test_a_finished_checkpoint_is_not_recomputed_and_a_changed_one_is(scored, tmp_path, monkeypatch):
    root, data, _ = scored
    shutil.copytree(root / "run", tmp_path / "run")
    shutil.copytree(root / "out", tmp_path / "out")
    loaded = []
    monkeypatch.setattr(trajectory_module, "plain_chat", counting(trajectory_module.plain_chat, loaded))
    monkeypatch.setattr(trajectory_module, "evaluate_devcv", counting(trajectory_module.evaluate_devcv, loaded))
    finished = tmp_path / "out" / "checkpoints" / "age-9mo" / "scores.json"
    before = finished.stat().st_mtime_ns
    shutil.copytree(root / "pairs", tmp_path / "pairs")
    options = {**RUN, "pairs": tmp_path / "pairs"}
    trajectory([str(tmp_path / "run")], data, tmp_path / "out", **options)  # the same content: copies are not changes
    assert loaded == [] and finished.stat().st_mtime_ns == before
    changed = tmp_path / "run" / "age_checkpoints" / "age-12mo"
    other = tmp_path / "run" / "age_checkpoints" / "age-9mo" / "model.safetensors"
    shutil.copyfile(other, changed / "model.safetensors")  # new weights under the same path (no model to build)
    trajectory([str(tmp_path / "run")], data, tmp_path / "out", **options)
    assert sorted(loaded) == [str(changed)] * 2 and finished.stat().st_mtime_ns == before
    evaluated = tmp_path / "out" / "checkpoints" / "age-12mo" / "eval"
    recorded = json.loads((evaluated / "run.json").read_text())["content"]
    assert (
        recorded["model/model.safetensors"] == hashlib.sha256((changed / "model.safetensors").read_bytes()).hexdigest()
    )
    assert len((evaluated / "predictions.jsonl").read_text().splitlines()) == 3 + 2 + 2  # started over, not appended


def test_matching_alone_is_tied_to_the_pairs_content_and_other_pairs_score_it_again(scored, tmp_path, monkeypatch):
    root, data, _ = scored
    original = root / "run" / "age_checkpoints" / "age-9mo"
    pairs = write_pairs_corpus(tmp_path / "pairs", 4)
    options = {**RUN, "tasks": [], "probes": [], "pairs": pairs}
    document = json.loads(trajectory([str(original)], data, tmp_path / "out", **options).read_text())
    [row] = document["checkpoints"]
    assert list(row["probes"]) == [MATCHING] and row["probes"][MATCHING]["n"] == 4
    loaded = []
    monkeypatch.setattr(trajectory_module, "plain_chat", counting(trajectory_module.plain_chat, loaded))
    trajectory([str(original)], data, tmp_path / "out", **options)
    assert loaded == []  # the same pairs: finished
    write_pairs_corpus(pairs, 4, seed=1)  # other pairs under the same path
    trajectory([str(original)], data, tmp_path / "out", **options)
    assert loaded == [str(original)]
    shard = pairs / "data" / "validation" / "00000.parquet"
    recorded = json.loads((tmp_path / "out" / "checkpoints" / "age-9mo" / "scores.json").read_text())["content"]
    assert recorded["pairs/data/validation/00000.parquet"] == hashlib.sha256(shard.read_bytes()).hexdigest()


def counting(function, calls: list):
    def counted(model, *args, **kwargs):
        calls.append(str(model))
        return function(model, *args, **kwargs)

    return counted


def test_a_tuned_checkpoint_is_scored_in_place_of_its_original_and_the_untuned_note_goes(scored, tmp_path):
    root, data, _ = scored
    original = root / "run" / "age_checkpoints" / "age-9mo"
    tuned = root / "run" / "age_checkpoints" / "age-12mo"  # another model stands for the tuned one
    calls = []

    def tune(checkpoint):
        calls.append(checkpoint.name)
        return Checkpoint(checkpoint.name, "tuned", tuned, checkpoint.exposure)

    path = trajectory([str(original)], data, tmp_path / "out", tasks=[], probes=["pv"], tune=tune, **RUN)
    document = json.loads(path.read_text())
    assert calls == ["age-9mo"] and "note" not in document
    [row] = document["checkpoints"]
    assert row["instructed"] == str(tuned) and row["x"] == 9.5 and list(row["probes"]) == [PV_PROBE]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"x": "steps"}, "unknown axis 'steps'"),
        ({"x": "checkpoint", "aoa_norms": {"dog": 12.0}}, "compare them on --x months"),
        ({"probes": ["count"]}, "no zero-shot probe 'count'"),
        ({"tasks": [], "probes": []}, "nothing to score"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"probes": [MATCHING]}, "reads an image-utterance corpus.*--pairs CORPUS"),
        ({"pairs": "PAIRS", "pairs_split": "test"}, "has no split 'test'"),
        ({"x": "hours"}, "no video_hours and its name gives no age"),
    ],
)
def test_bad_arguments_are_refused_before_a_model_loads(scored, tmp_path, monkeypatch, options, message):
    root, data, _ = scored
    monkeypatch.setattr(trajectory_module, "evaluate_devcv", None)  # any call fails loudly
    monkeypatch.setattr(trajectory_module, "plain_chat", None)
    options = {key: root / "pairs" if value == "PAIRS" else value for key, value in options.items()}
    with pytest.raises(ValueError, match=message):
        trajectory([str(root / "run")], data, tmp_path / "out", **options)


def test_a_probe_the_data_cannot_feed_is_refused(scored, tmp_path):
    root, _, _ = scored
    data = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 2)})
    with pytest.raises(MissingTaskError, match="no picture_vocabulary items"):
        trajectory([str(root / "run")], data, tmp_path / "out", probes=["pv"])


# --- Ages of acquisition along a trajectory, on rows whose answers are known --------------------------------------


def synthetic_row(name, age, p_value, words):
    entry = {"score": 0.5, "n": 100, "ci_low": 0.4, "ci_high": 0.6, "p_value": p_value, "chance": 0.25}
    return {
        "name": name,
        "source": name,
        "x": age,
        "exposure": None,
        "tasks": {"baby_pv": {**entry, "display_name": "Picture Vocabulary", "log_likelihood": False}},
        "probes": {PV_PROBE: {**entry, "display_name": "zero-shot Picture Vocabulary", "words": words}},
    }


def test_the_document_gives_the_ages_of_acquisition_of_tasks_and_words_and_their_correlation():
    midpoints = {"ball": 10.0, "dog": 14.0, "cup": 18.0, "shoe": 24.0}
    ages, trials = [6, 8, 12, 16, 20, 28, 36], 4000
    rows = []
    for k, age in enumerate(reversed(ages)):  # given out of order: the document sorts by age
        words = {}
        for word, midpoint in midpoints.items():
            p = 0.25 + 0.75 / (1 + np.exp(-4 * (np.log(age) - np.log(midpoint))))
            words[word] = [round(p * trials), trials]
        rows.append(synthetic_row(f"c{k}", age, 0.5 if age < 16 else 0.001, words))
    children = {word: midpoint + 2 for word, midpoint in midpoints.items()}  # the same order, months later
    document = trajectory_document(rows, "months", aoa_norms=children | {"Zebra": 30.0})
    assert [row["x"] for row in document["checkpoints"]] == ages
    assert document["acquisition"]["baby_pv"]["months"] == 16
    for word, midpoint in midpoints.items():
        assert document["words"][PV_PROBE][word]["months"] == pytest.approx(midpoint, rel=0.02)
    correlation = document["aoa_correlation"][PV_PROBE]
    assert correlation["rho"] == pytest.approx(1.0) and correlation["n_words"] == 4
    assert "Picture Vocabulary" not in document["note"]  # a generated task: not meaningful un-tuned


def test_on_the_checkpoint_axis_no_word_ages_are_claimed():
    rows = [synthetic_row(f"c{k}", float(k), 0.5, {"ball": [1, 4]}) for k in range(3)]
    document = trajectory_document(rows, "checkpoint", instructed=True)
    assert "words" not in document and "--x checkpoint" in document["words_note"] and "note" not in document

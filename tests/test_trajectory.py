"""The checkpoints of a trajectory and their place on the axis of experience."""

import json

import pytest
from babyvlm.evaluate_metrics.trajectory import resolve_checkpoints


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

"""`babyvlm.staging`: what is written appears under its final name complete, or not at all."""

import doctest

import pytest

from babyvlm import staging
from babyvlm.locking import OutputLocationError
from babyvlm.staging import staged_file, staged_folder, write_text


def test_module_examples():
    assert doctest.testmod(staging).failed == 0


def test_a_failed_folder_leaves_the_previous_one_and_no_staging(tmp_path):
    target = tmp_path / "out"
    with staged_folder(target) as folder:
        (folder / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), staged_folder(target, overwrite=True) as folder:
        (folder / "b.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    assert sorted(path.name for path in target.iterdir()) == ["a.txt"]


def test_an_existing_folder_is_replaced_only_with_overwrite(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"), staged_folder(target):
        pass
    with staged_folder(target, overwrite=True) as folder:
        (folder / "new.txt").write_text("new")
    assert sorted(path.name for path in target.iterdir()) == ["new.txt"]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputLocationError, match="is a file, not a folder"):
        with staged_folder(tmp_path / "a_file", overwrite=True):
            pass
    assert (tmp_path / "a_file").read_text() == ""


def test_a_failed_file_keeps_its_previous_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "report.json"
    write_text(target, "complete")
    with pytest.raises(RuntimeError), staged_file(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "complete"
    assert [path.name for path in target.parent.iterdir()] == ["report.json"]


def test_a_temporary_file_never_matches_the_final_suffix(tmp_path):
    """Readers glob `*.parquet` / `*.json`: a half-written file must not look like one."""
    with staged_file(tmp_path / "train-00000.parquet") as temporary:
        assert temporary.name.startswith(".") and not temporary.name.endswith(".parquet")
        temporary.write_bytes(b"x")

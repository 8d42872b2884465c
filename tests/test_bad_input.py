"""Bad input to the builders and the evaluation command gets a clear error or a counted skip (issue #18).

Each test feeds one kind of bad input a hostile but realistic user would, asserts the message names the item, file
or field, and that nothing half-written is left. (The processor's cases are in `test_processing.py`.)
"""

import multiprocessing
import os
import signal
import socket
import time

import pytest
from babyvlm.dataset_builders.devcv.builder import build_devcv
from babyvlm.dataset_builders.devcv.cli import main as build_devcv_main
from babyvlm.dataset_builders.devcv.folder import STAGING_OWNER_FILE, staged_folder
from babyvlm.dataset_builders.devcv.limits import InputLimits
from fixtures_devcv import noise_image, write_json


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
    assert f"removed {stale}, the staging folder of a build (pid {killed.pid}) that was killed" in caplog.text
    assert sorted(path.name for path in output.parent.iterdir()) == [".devcv.tmp-running", "devcv"]
    assert not (output / STAGING_OWNER_FILE).exists()

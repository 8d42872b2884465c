"""The README's main job runs end to end and leaves a checkpoint that the Auto classes load."""

from transformers import AutoModelForImageTextToText, AutoProcessor

from babyvlm.demo import run
from babyvlm.modeling import BabyLlavaV2ForConditionalGeneration
from babyvlm.processing import BabyLlavaV2Processor


def test_demo_builds_saves_reloads_and_generates(tmp_path, capsys):
    answer = run(tmp_path / "babyllava-v2-tiny", max_new_tokens=4)
    printed = capsys.readouterr().out
    assert "reloaded BabyLlavaV2ForConditionalGeneration and BabyLlavaV2Processor" in printed
    assert isinstance(answer, str) and "greedy answer" in printed
    assert type(AutoModelForImageTextToText.from_pretrained(tmp_path / "babyllava-v2-tiny")) is BabyLlavaV2ForConditionalGeneration
    assert type(AutoProcessor.from_pretrained(tmp_path / "babyllava-v2-tiny")) is BabyLlavaV2Processor

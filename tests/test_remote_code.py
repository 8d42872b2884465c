"""A process that never imports babyvlm loads a saved checkpoint through `auto_map` (trust_remote_code)."""

import json
import os
import subprocess
import sys

import pytest
import torch

FRESH_PROCESS = r"""
import json, sys
import torch
from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor
directory = sys.argv[1]
model = AutoModelForImageTextToText.from_pretrained(directory, trust_remote_code=True).eval()
base = AutoModel.from_pretrained(directory, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(directory, trust_remote_code=True)
image = torch.zeros(3, 32, 32, dtype=torch.uint8)
prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}], add_generation_prompt=True)
inputs = processor(text=prompt, images=[image], return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
try:
    AutoModelForImageTextToText.from_pretrained(directory)
    refused = False
except ValueError:
    refused = True
# without trust_remote_code transformers asks on stdin (closed here) and refuses
with open(sys.argv[2], "w") as report:
    json.dump({
    "model": type(model).__name__, "base": type(base).__name__, "processor": type(processor).__name__,
    "image_processor": type(processor.image_processor).__name__,
    "remote": type(model).__module__.startswith("transformers_modules"),
    "imported_babyvlm": any(name == "babyvlm" or name.startswith("babyvlm.") for name in sys.modules),
    "logits_sum": float(logits.sum()), "refused_without_trust": refused,
    }, report)
"""


@pytest.mark.slow
def test_fresh_process_loads_model_and_processor_with_trust_remote_code(
    tiny_model_dir, tiny_model_and_processor, tmp_path
):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tiny_model_dir), str(report_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["model"] == "BabyLlavaV2ForConditionalGeneration" and report["base"] == "BabyLlavaV2Model"
    assert report["processor"] == "BabyLlavaV2Processor" and report["image_processor"] == "BabyLlavaV2ImageProcessor"
    assert report["remote"] and not report["imported_babyvlm"] and report["refused_without_trust"]

    model, processor = tiny_model_and_processor
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}]}], add_generation_prompt=True
    )
    inputs = processor(text=prompt, images=[torch.zeros(3, 32, 32, dtype=torch.uint8)], return_tensors="pt")
    with torch.no_grad():
        assert abs(float(model(**inputs).logits.sum()) - report["logits_sum"]) < 1e-3

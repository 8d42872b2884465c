"""Run by the fresh virtualenv's Python from a folder outside the checkout (see check_wheel.sh): the installed wheel,
not the source tree, provides every public entry point."""

import sys
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import evaluate

import babyvlm

site = Path(sys.prefix).resolve()


def installed(path) -> bool:
    return Path(path).resolve().is_relative_to(site)


assert installed(babyvlm.__file__), f"babyvlm imported from {babyvlm.__file__}, not from the virtualenv {site}"

# Every console script (builders, converter, evaluation, demo) imports from the installed package.
scripts = [script for script in entry_points(group="console_scripts") if script.value.startswith("babyvlm.")]
assert len(scripts) >= 9, scripts
assert "babyvlm" in {script.name for script in scripts}, scripts  # the one command; the others are its aliases
for script in scripts:
    function = script.load()
    assert installed(sys.modules[function.__module__].__file__), script

# The recipe YAMLs and accelerate configs ship as package data.
recipes = files("babyvlm.recipes")
for folder in ("babyllava_v2", "babyllava_v2/tiny", "babyllava_v2/stage3_per_task", "accelerate_configs"):
    yamls = [entry.name for entry in (recipes / folder).iterdir() if entry.name.endswith(".yaml")]
    assert yamls, f"no recipe YAML in the installed babyvlm.recipes/{folder}"

# The DevCV metric: evaluate.load on the installed metric folder.
metric_folder = files("babyvlm.evaluate_metrics.devcv")
assert installed(metric_folder / "devcv.py")
pv = evaluate.load(str(metric_folder), "baby_pv")
scores = pv.compute(predictions=["A", "the second image (b)", "i like dogs"], references=["A", "B", "C"])
assert scores == {"acc": 2 / 3, "unparsable": 1}, scores

# The lmms-eval plugin: lmms-eval finds the model through the installed wheel's entry point.
from lmms_eval.models import get_model  # noqa: E402

model_class = get_model("babyvlm")
assert installed(sys.modules[model_class.__module__].__file__), model_class

print(f"installed package checks passed: {len(scripts)} console scripts, recipes, DevCV metric, lmms-eval plugin")

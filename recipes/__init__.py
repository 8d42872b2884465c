"""The training recipes, installed as `babyvlm.recipes`: the scripts (`sft.py`, `pretrain_vision.py`) and, as package
data, the stage YAMLs and accelerate configs, so an installed `babyvlm` finds them without a checkout
(`importlib.resources.files("babyvlm.recipes")`)."""

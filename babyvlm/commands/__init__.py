"""The commands layer: the `babyvlm` command (`cli.py`, the verb table) and the commands that join every other part,
the demo (`demo.py`) and the explorer (`explore/`).

The layers, each importing only those below it (`tests/test_layering.py` checks them):

1. `modeling/`, `processing/`: self-contained (copied next to a checkpoint as remote code).
2. the shared library, the modules directly in `babyvlm/` (Auto-class registration, chat schema, staging,
   conversion, the verbs' parser and one-line failure): imports only layer 1.
3. `dataset_builders/`, `evaluate_metrics/`, `babyvlm/training/`: the builders, evaluation and training, each verb's
   `main(argv) -> int` beside its library code; `evaluate_metrics/` never imports `dataset_builders/`.
4. `babyvlm/commands/`: imports anything; nothing imports it. `recipes/*.py` are launch scripts over layer 3.
"""

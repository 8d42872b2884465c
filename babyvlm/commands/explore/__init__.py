"""``babyvlm explore``: a Gradio page for DevCV dataset folders, evaluation runs over them and a model to ask.

- :mod:`.dataset`: lazy, paged reading of a DevCV folder (pyarrow row groups, images decoded on show);
- :mod:`.runs`: evaluation run folders, whether they match the folder, per-task score tables;
- :mod:`.filters`: wrong / unparsable / disagreeing / per-true-count selections and page tables;
- :mod:`.render`: an item and the runs' answers as HTML (images at their placeholders, drawn metadata);
- :mod:`.ask`: streamed answers of a checkpoint to an edited prompt;
- :mod:`.session`: all of the above as plain values, bad input turned into messages;
- :mod:`.app`: the Gradio layout; :mod:`.cli`: the command line (also the entry point of a Space).

Gradio is the ``explore`` extra: ``pip install 'babyvlm[explore]'``. See ``README.md`` beside this file.
"""

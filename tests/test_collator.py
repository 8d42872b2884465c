"""The training collator: assistant-only labels, masked image tokens, packing equivalence, truncation, on
several model families (BabyLLaVA-V2 with `{% generation %}` markers, Llava with a template that has none)."""

import copy
import logging

import PIL.Image
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from babyvlm.testing import TINY_FAMILIES, save_tiny_model
from babyvlm.training.collator import (
    IGNORE_INDEX,
    PACKING_FAMILIES,
    NothingToLearnError,
    VisionChatCollator,
)


def image(colour):
    return PIL.Image.new("RGB", (40, 30), colour)


def text(value):
    return {"type": "text", "text": value}


IMAGE = {"type": "image", "text": None}

EXAMPLES = [
    {
        "messages": [
            {"role": "user", "content": [IMAGE, text(" how many balls?")]},
            {"role": "assistant", "content": [text("two")]},
        ],
        "images": [image("red")],
    },
    {  # Memory-style: several rounds, images in several turns
        "messages": [
            {"role": "user", "content": [text("Touch the new image. (A) "), IMAGE]},
            {"role": "assistant", "content": [text("A")]},
            {"role": "user", "content": [text("Let's try more. (A) "), IMAGE, text(" (B) "), IMAGE]},
            {"role": "assistant", "content": [text("B")]},
        ],
        "images": [image("blue"), image("green"), image("white")],
    },
    {
        "messages": [
            {"role": "user", "content": [text("hello there")]},
            {"role": "assistant", "content": [text("the dog")]},
        ]
    },
]


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_and_processor):
    return tiny_model_and_processor


FAMILIES = ("babyllava_v2", *TINY_FAMILIES)


@pytest.fixture(scope="module")
def family_models(tmp_path_factory, model_and_processor):
    """Every tiny family's model and processor, loaded back through the Auto classes."""
    models = {"babyllava_v2": model_and_processor}
    for name in TINY_FAMILIES:
        directory = save_tiny_model(name, tmp_path_factory.mktemp(name))
        models[name] = (
            AutoModelForImageTextToText.from_pretrained(directory).eval(),
            AutoProcessor.from_pretrained(directory),
        )
    return models


@pytest.fixture(params=FAMILIES)
def family(request, family_models):
    return (request.param, *family_models[request.param])


def labelled_runs(processor, labels):
    """The decoded runs of consecutive labelled tokens of one row."""
    runs, current = [], []
    for token in labels.tolist() + [IGNORE_INDEX]:
        if token != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs.append(processor.tokenizer.decode(current))
            current = []
    return runs


def test_labels_are_exactly_the_answers_babyllava_renders(model_and_processor):
    _, processor = model_and_processor
    batch = collate(processor)
    assert [labelled_runs(processor, labels) for labels in batch["labels"]] == [
        [" two<eos>"],
        [" a<eos>", " b<eos>"],
        [" the dog<eos>"],
    ]


def test_labels_are_the_rendered_assistant_answers_in_every_family(family):
    """Each labelled run is one assistant answer as the family's template renders it: its text, then at most the
    template's end-of-turn marker, found in order in the rendered chat; nothing of the user turns, no image token."""
    _, _, processor = family
    batch = collate(processor)
    tokenizer = processor.tokenizer
    for row, example in enumerate(EXAMPLES):
        rendered = processor.apply_chat_template(example["messages"], tokenize=False).lower()
        answers = [m["content"][0]["text"].lower() for m in example["messages"] if m["role"] == "assistant"]
        runs = [run.lower() for run in labelled_runs(processor, batch["labels"][row])]
        assert len(runs) == len(answers), (runs, answers)
        position = 0
        for run, answer in zip(runs, answers):
            assert run.strip().startswith(answer), (run, answer)
            end_of_turn = run.strip()[len(answer) :]
            special = {token.content.lower() for token in tokenizer.added_tokens_decoder.values()}
            assert end_of_turn in ("", *special), run
            position = rendered.index(run, position) + len(run)
    visual = [getattr(processor, name) for name in ("image_token_id", "video_token_id") if hasattr(processor, name)]
    assert not torch.isin(batch["labels"], torch.tensor(visual)).any()
    assert "data_report" not in batch


def test_a_template_without_markers_is_masked_by_rendering(family_models):
    _, processor = family_models["llava"]
    collator = VisionChatCollator(processor)
    assert not collator._has_generation_markers
    unstable = "{%- for m in messages -%}{{ m.role }}{{ messages | length }}{%- endfor -%}"
    with pytest.raises(ValueError, match="item q7: the chat template renders turn 1 differently"):
        VisionChatCollator(processor, chat_template=unstable)([{**copy.deepcopy(EXAMPLES[2]), "item": "q7"}])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["babyllava_v2", "qwen2_5_vl", "idefics3", "gemma3"])
def test_loss_falls_on_a_fixed_batch(family_models, name):
    model, processor = family_models[name]
    model = copy.deepcopy(model).train()
    batch = collate(processor)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0], losses


def collate(processor, **kwargs):
    return VisionChatCollator(processor, **kwargs)(copy.deepcopy(EXAMPLES))


def test_labels_cover_exactly_the_assistant_answers(model_and_processor):
    _, processor = model_and_processor
    batch = collate(processor)
    answers = [
        processor.tokenizer.decode(row[labels != IGNORE_INDEX])
        for row, labels in zip(batch["input_ids"], batch["labels"])
    ]
    assert answers == [" two<eos>", " a<eos> b<eos>", " the dog<eos>"]
    assert not (batch["labels"] == processor.image_token_id).any()
    assert batch["pixel_values"].shape[0] == 4
    assert (batch["attention_mask"].sum(1) == (batch["input_ids"] != processor.tokenizer.pad_token_id).sum(1)).all()


def test_single_row_packing_with_restarting_positions(model_and_processor):
    _, processor = model_and_processor
    padded, packed = collate(processor), collate(processor, packing=True, row_length=None)
    lengths = padded["attention_mask"].sum(1).tolist()
    assert packed["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in packed
    starts = torch.nonzero(packed["position_ids"][0] == 0).flatten().tolist()
    assert starts == [0, lengths[0], lengths[0] + lengths[1]]
    assert packed["use_cache"] is False
    assert torch.equal(packed["pixel_values"], padded["pixel_values"])


def test_rows_are_best_fit_under_row_length(model_and_processor):
    _, processor = model_and_processor
    lengths = collate(processor)["attention_mask"].sum(1).tolist()
    budget = max(lengths) + 5  # the longest sample alone, the two others together
    packed = collate(processor, packing=True, row_length=budget)
    assert packed["input_ids"].shape[0] == 2 and packed["input_ids"].shape[1] <= budget
    starts = (packed["position_ids"] == 0).sum().item()
    assert starts == 3 + int(
        (packed["input_ids"][:, -1] == processor.tokenizer.pad_token_id).sum()
    )  # samples + pad blocks
    assert int((packed["labels"] != IGNORE_INDEX).sum()) == int((collate(processor)["labels"] != IGNORE_INDEX).sum())


def test_default_rows_never_exceed_the_longest_sample(model_and_processor):
    _, processor = model_and_processor
    longest = int(collate(processor)["attention_mask"].sum(1).max())
    packed = collate(processor, packing=True)
    assert packed["input_ids"].shape[1] == longest and packed["input_ids"].shape[0] == 2
    with pytest.raises(ValueError, match="row_length must be"):
        VisionChatCollator(processor, packing=True, row_length="shortest")


@pytest.mark.slow
@pytest.mark.parametrize("name", PACKING_FAMILIES)
@pytest.mark.parametrize("row_length", [None, 160, "longest"])
def test_packed_loss_and_gradients_equal_unpacked(family_models, name, row_length):
    model, processor = family_models[name]
    results = []
    for packing in (False, True):
        model.zero_grad(set_to_none=True)
        loss = model(**collate(processor, packing=packing, row_length=row_length)).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    model.zero_grad(set_to_none=True)
    (padded_loss, padded_grads), (packed_loss, packed_grads) = results
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-6)
    assert padded_grads.keys() == packed_grads.keys()
    for name in padded_grads:
        # float rounding scales with the gradient (the Llava test model has large random weights)
        scale = float(padded_grads[name].abs().max())
        torch.testing.assert_close(
            packed_grads[name], padded_grads[name], rtol=1e-4, atol=2e-5 * max(scale, 0.05), msg=name
        )


@pytest.mark.slow
def test_packing_without_position_restart_would_leak_across_samples(model_and_processor):
    """Guards the packing test above: with one continuous sequence the loss differs, so equality is meaningful."""
    model, processor = model_and_processor
    packed = collate(processor, packing=True)
    leaky = {**packed, "position_ids": torch.arange(packed["input_ids"].shape[1])[None]}
    with torch.no_grad():
        assert not torch.allclose(model(**packed).loss, model(**leaky).loss)


def test_truncation_never_splits_an_image_block(family):
    """At every budget, a cut sample keeps whole image blocks only (the model checks that its image features and
    image tokens match), stays within the budget and is reported; a budget that leaves no answer fails loudly."""
    _, model, processor = family
    example = {**copy.deepcopy(EXAMPLES[1]), "item": "memory/7"}
    full_length = int(collate(processor)["attention_mask"][1].sum())
    kept_some_image = False
    for max_length in range(8, full_length, max(3, full_length // 8)):
        collator = VisionChatCollator(processor, max_length=max_length, with_report=True)
        try:
            batch = collator([copy.deepcopy(example)])
        except NothingToLearnError as error:
            assert "items: memory/7" in str(error)
            continue
        assert batch["input_ids"].shape[1] <= max_length and batch["data_report"]["cut"] == ["memory/7"]
        kept_some_image |= bool((batch["input_ids"] == processor.image_token_id).any())
        with torch.no_grad():
            assert torch.isfinite(model(**{k: v for k, v in batch.items() if k != "data_report"}).loss)
    assert kept_some_image
    with pytest.raises(ValueError, match=f"item memory/7 has {full_length} tokens, more than max_length=20"):
        VisionChatCollator(processor, max_length=20, truncation="error")([copy.deepcopy(example)])


def test_a_batch_with_nothing_to_learn_fails_naming_its_items(model_and_processor):
    _, processor = model_and_processor
    examples = [{**copy.deepcopy(EXAMPLES[1]), "item": "memory/1"}, {**copy.deepcopy(EXAMPLES[0]), "item": "count/4"}]
    with pytest.raises(NothingToLearnError, match="items: memory/1, count/4"):
        VisionChatCollator(processor, max_length=10)(examples)
    # one sample still has its answer: the batch trains, the other is reported
    batch = VisionChatCollator(processor, max_length=30, with_report=True)(
        [{**copy.deepcopy(EXAMPLES[1]), "item": "memory/1"}, {**copy.deepcopy(EXAMPLES[2]), "item": "chat/2"}]
    )
    assert batch["data_report"]["no_labels"] == ["memory/1"] and batch["data_report"]["cut"] == ["memory/1"]


def test_an_unreadable_image_skips_its_sample_or_fails_when_strict(model_and_processor, tmp_path, caplog):
    _, processor = model_and_processor
    missing = {"bytes": None, "path": str(tmp_path / "gone.jpg")}
    examples = [{**copy.deepcopy(EXAMPLES[0]), "item": "count/9", "images": [missing]}, copy.deepcopy(EXAMPLES[2])]
    with caplog.at_level(logging.WARNING):
        batch = VisionChatCollator(processor, with_report=True)(examples)
    assert batch["input_ids"].shape[0] == 1
    assert batch["data_report"]["missing_images"] == [("count/9", str(tmp_path / "gone.jpg"), "FileNotFoundError")]
    assert "item count/9 skipped: image" in caplog.text and "gone.jpg" in caplog.text
    with pytest.raises(FileNotFoundError, match="item count/9: image .*gone.jpg cannot be read"):
        VisionChatCollator(processor, strict_images=True)(examples)


def test_packing_is_refused_where_positions_are_not_one_per_token(model_and_processor):
    _, processor = model_and_processor
    with pytest.raises(ValueError, match="packing is not supported for 'qwen2_5_vl' models.*multimodal rotary"):
        VisionChatCollator(processor, packing=True, model_type="qwen2_5_vl")


def test_bad_inputs_are_named(model_and_processor):
    _, processor = model_and_processor
    with pytest.raises(KeyError, match="item batch index 1 has no 'messages'"):
        VisionChatCollator(processor)([copy.deepcopy(EXAMPLES[0]), {"text": "x"}])
    with pytest.raises(ValueError, match="truncation must be one of"):
        VisionChatCollator(processor, truncation="drop")

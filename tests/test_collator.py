"""The training collator: assistant-only labels, masked image tokens, packing equivalence, truncation."""

import copy

import PIL.Image
import pytest
import torch

from babyvlm.training.collator import IGNORE_INDEX, BabyLlavaV2Collator


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
    {"messages": [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "the dog"}]},
]


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_and_processor):
    return tiny_model_and_processor


def collate(processor, **kwargs):
    return BabyLlavaV2Collator(processor, **kwargs)(copy.deepcopy(EXAMPLES))


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
        BabyLlavaV2Collator(processor, packing=True, row_length="shortest")


@pytest.mark.parametrize("row_length", [None, 160, "longest"])
@pytest.mark.slow
def test_packed_loss_and_gradients_equal_unpacked(model_and_processor, row_length):
    model, processor = model_and_processor
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
        torch.testing.assert_close(packed_grads[name], padded_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_packing_without_position_restart_would_leak_across_samples(model_and_processor):
    """Guards the packing test above: with one continuous sequence the loss differs, so equality is meaningful."""
    model, processor = model_and_processor
    packed = collate(processor, packing=True)
    leaky = {**packed, "position_ids": torch.arange(packed["input_ids"].shape[1])[None]}
    with torch.no_grad():
        assert not torch.allclose(model(**packed).loss, model(**leaky).loss)


def test_truncation_never_splits_an_image_block(model_and_processor):
    _, processor = model_and_processor
    collator = BabyLlavaV2Collator(processor, max_length=40)
    sample = collator.tokenize(copy.deepcopy(EXAMPLES[1]))
    seq = processor.image_seq_length
    image_tokens = int((sample.input_ids == processor.image_token_id).sum())
    assert len(sample.input_ids) <= 40 and image_tokens % seq == 0
    assert sample.pixel_values.shape[0] == image_tokens // seq == 1  # the second image would be cut: dropped with it
    with pytest.raises(ValueError, match="more than max_length=40"):
        BabyLlavaV2Collator(processor, max_length=40, truncation="error").tokenize(copy.deepcopy(EXAMPLES[1]))


def test_truncated_batch_still_runs(model_and_processor):
    model, processor = model_and_processor
    batch = collate(processor, max_length=40, packing=True)
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


def test_bad_inputs_are_named(model_and_processor):
    _, processor = model_and_processor
    with pytest.raises(KeyError, match="example 1 has no 'messages'"):
        BabyLlavaV2Collator(processor)([copy.deepcopy(EXAMPLES[0]), {"text": "x"}])
    with pytest.raises(ValueError, match="truncation must be one of"):
        BabyLlavaV2Collator(processor, truncation="drop")


@pytest.mark.slow
def test_loss_decreases_on_a_fixed_batch(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).train()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    batch = BabyLlavaV2Collator(processor, packing=True)(copy.deepcopy(EXAMPLES))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]

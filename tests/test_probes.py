"""The grounding probes score chance for a model that ignores the image and pass for one that reads it.

The model that reads the frame is a tiny BabyLLaVA-V2 whose connector and language model are trained, for a few
seconds, on `<image>{colour word}` pairs of plain-coloured frames; the model that ignores it is the same checkpoint
with its vision features replaced by zeros (every image then gives the same likelihood: exact ties).
"""

import json
import random

import pytest
import torch
from babyvlm.dataset_builders.annotations import (
    EXITS_FILE,
    FRAMES_FILE,
    RECORDINGS_FILE,
    FrameAnnotation,
    ObjectBox,
    RecordingInfo,
    write_jsonl,
)
from babyvlm.dataset_builders.labels import labelled_frames
from babyvlm.evaluate_metrics.devcv.tasks import LETTERS, canonical_task
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.probes import (
    linear_probe,
    plain_chat,
    utterance_frame_matching,
    zero_shot_looking_while_listening,
    zero_shot_picture_vocabulary,
)
from babyvlm.evaluate_metrics.probes.vocabulary import picture_vocabulary_word
from PIL import Image

from babyvlm.commands.probe import main
from babyvlm.testing.babyllava import build_tiny_babyllava

COLOURS = {"red": (214, 39, 40), "blue": (31, 90, 220), "green": (36, 160, 60), "yellow": (245, 200, 20)}
UTTERANCES = [f"look, the {colour} one" for colour in COLOURS] * 6 + ["it is red blue green yellow"] * 4
SIZE = 32
TRAIN_STEPS = 60


def frame(colour: str, rng: random.Random) -> Image.Image:
    """A plain frame of ``colour`` with a little noise, so that no two frames are identical."""
    base = COLOURS[colour]
    image = Image.new("RGB", (SIZE, SIZE), tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in base))
    return image


def utterance_pair(colour: str, recording: str, rng: random.Random) -> dict:
    return {
        "id": f"{recording}-{rng.random():.6f}",
        "recording": recording,
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}]},
            {"role": "assistant", "content": [{"type": "text", "text": f"look, the {colour} one"}]},
        ],
        "images": [frame(colour, rng)],
    }


@pytest.fixture(scope="module")
def reading_model():
    """A tiny BabyLLaVA-V2 trained to name the colour of the frame (connector and language model, ~60 steps)."""
    model, processor = build_tiny_babyllava(utterances=UTTERANCES, vocab_size=300, seed=0)
    rng, names = random.Random(0), list(COLOURS)
    torch.manual_seed(0)
    for parameter in model.model.vision_tower.parameters():
        parameter.requires_grad = False
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(TRAIN_STEPS):
        colours = [rng.choice(names) for _ in range(16)]
        # The parent names the colour alone, in a phrase and in an utterance, as the probes' words and phrases do.
        said = [rng.choice(("{}", "the {} one", "look, the {} one")).format(colour) for colour in colours]
        texts = [f"<image>{text}{processor.tokenizer.eos_token}" for text in said]
        inputs = processor(text=texts, images=[frame(c, rng) for c in colours], return_tensors="pt", padding=True)
        labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == model.config.image_token_index, -100)
        labels = labels.masked_fill(inputs["attention_mask"] == 0, -100)
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return ChatModel(model, processor)


@pytest.fixture
def blind_model(reading_model):
    """The same checkpoint with its vision features replaced by zeros."""

    def zero_features(_module, _args, output):
        output.last_hidden_state = torch.zeros_like(output.last_hidden_state)
        return output

    handle = reading_model.model.model.vision_tower.register_forward_hook(zero_features)
    yield reading_model
    handle.remove()


@pytest.fixture(scope="module")
def pairs():
    """48 held-out pairs from 4 recordings, one colour per recording (a foil frame always shows another colour)."""
    rng = random.Random(1)
    return [utterance_pair(colour, f"rec{k}", rng) for _ in range(12) for k, colour in enumerate(COLOURS)]


def option_items(count: int, seed: int) -> list[dict]:
    """Picture Vocabulary items: four plain-coloured options, the prompt naming one colour."""
    rng, items = random.Random(seed), []
    template = canonical_task("picture_vocabulary").prompts.template("saycam")
    for index in range(count):
        colours = rng.sample(list(COLOURS), 4)
        gold = rng.randrange(4)
        text = template.replace("<image>", "").format(word=colours[gold])
        content = [{"type": "image", "text": None}] * 4 + [{"type": "text", "text": text}]
        items.append(
            {
                "id": f"pv{index}",
                "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": LETTERS[gold]}],
                "images": [frame(colour, rng) for colour in colours],
                "answer": [LETTERS[gold]],
                "choices": list(LETTERS),
            }
        )
    return items


def lwl_items(count: int, seed: int) -> list[dict]:
    rng, items = random.Random(seed), []
    for index in range(count):
        colours = rng.sample(list(COLOURS), 2)
        items.append(
            {
                "id": f"lwl{index}",
                "messages": [],
                "images": [frame(colour, rng) for colour in colours],
                "answer": [],
                "choices": [f"the {colour} one" for colour in colours],
            }
        )
    return items


def test_matching_is_chance_when_the_image_is_ignored(blind_model, pairs):
    result = utterance_frame_matching(blind_model, pairs, seed=0)
    assert result.n == 48 and result.ties == 48
    assert 0.3 < result.accuracy < 0.7 and result.p_value > 0.05
    assert abs(result.mean_gap_nats) < 1e-5


def test_matching_passes_for_a_model_that_reads_the_frame(reading_model, pairs):
    result = utterance_frame_matching(reading_model, pairs, seed=0)
    assert result.accuracy > 0.9 and result.p_value < 0.01 and result.mean_gap_nats > 0
    assert result.ties == 0 and result.details["recordings"] == 4


def test_matching_needs_pairs_of_two_recordings(reading_model):
    rng = random.Random(0)
    with pytest.raises(ValueError, match="at least two recordings"):
        utterance_frame_matching(reading_model, [utterance_pair(c, "only", rng) for c in COLOURS], seed=0)


def test_zero_shot_vocabulary_is_chance_when_the_image_is_ignored(blind_model):
    pv = zero_shot_picture_vocabulary(blind_model, option_items(40, seed=2), seed=0)
    lwl = zero_shot_looking_while_listening(blind_model, lwl_items(20, seed=3), seed=0)
    assert pv.ties == pv.n == 40 and pv.p_value > 0.05 and 0.1 < pv.accuracy < 0.4
    assert lwl.ties == lwl.n == 40 and lwl.p_value > 0.05 and lwl.details["image_score"] == 0


def test_zero_shot_vocabulary_passes_for_a_model_that_reads_the_frame(reading_model):
    pv = zero_shot_picture_vocabulary(reading_model, option_items(40, seed=2), seed=0)
    lwl = zero_shot_looking_while_listening(reading_model, lwl_items(20, seed=3), seed=0)
    assert pv.accuracy > 0.7 and pv.p_value < 0.01 and pv.chance == 0.25
    assert lwl.accuracy > 0.8 and lwl.p_value < 0.01 and lwl.details["image_score_p_value"] < 0.01


def test_baby_plain_is_the_format_scored(reading_model):
    chat = plain_chat(reading_model)
    assert chat.chat_template == "baby_plain"
    messages = [{"role": "user", "content": [{"type": "image", "text": None}]}]
    answered = chat.answered_text(chat.prompt(messages), messages, "look, the red one")
    assert answered == "<image>look, the red one" + chat.processor.tokenizer.eos_token


@pytest.mark.parametrize("variant", ["saycam", "ego4d"])
def test_the_word_is_read_from_either_released_wording(variant):
    text = canonical_task("picture_vocabulary").prompts.template(variant).format(word="teddy bear")
    record = {"id": "x", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    assert picture_vocabulary_word(record) == "teddy bear"


def labelled_world(root, recordings: int = 4, frames: int = 24):
    """Annotations and frames of single plain squares: colour and quadrant vary, one object per frame."""
    rng, infos, annotations, records = random.Random(4), [], [], []
    quadrants = [(2, 2), (18, 2), (2, 18), (18, 18)]
    for r in range(recordings):
        name = f"S_2013010{r + 1}_1000_01"
        infos.append(RecordingInfo(name, "S", 10.0, f"videos/S/{name}.mp4", SIZE, SIZE, 1, frames))
        for index in range(frames):
            colour, (x, y) = rng.choice(list(COLOURS)), rng.choice(quadrants)
            image = Image.new("RGB", (SIZE, SIZE), (230, 230, 230))
            image.paste(COLOURS[colour], (x, y, x + 12, y + 12))
            box = ObjectBox(f"o{index}", "block", colour, (float(x), float(y), 12.0, 12.0))
            annotations.append(FrameAnnotation(name, index, 1000 * index, (box,)))
            records.append({"image": image, "recording": name, "time_ms": 1000 * index})
    write_jsonl(root / RECORDINGS_FILE, infos)
    write_jsonl(root / FRAMES_FILE, annotations)
    write_jsonl(root / EXITS_FILE, [])
    return records


def test_linear_probe_reads_colour_from_a_tower_and_nothing_from_zeros(tmp_path, reading_model):
    images, recordings, labels = labelled_frames(labelled_world(tmp_path), tmp_path)
    loaded = (reading_model.model, reading_model.processor)
    report = linear_probe(loaded, images, labels, recordings, seed=0, folds=4)
    colour = report["labels"]["colour"]
    assert report["n"] == 96 and colour["classes"] == 4
    assert colour["checkpoint_accuracy"] > 0.9 and colour["p_value_vs_chance"] < 0.01

    tower = reading_model.model.model.vision_tower
    handle = tower.register_forward_hook(
        lambda _m, _a, out: setattr(out, "last_hidden_state", 0 * out.last_hidden_state)
    )
    try:
        blind = linear_probe(loaded, images, labels, recordings, seed=0, folds=4)
    finally:
        handle.remove()
    assert blind["labels"]["colour"]["checkpoint_accuracy"] <= blind["labels"]["colour"]["chance"] + 0.05
    assert blind["labels"]["colour"]["p_value_vs_random_init"] > 0.5


def test_the_command_writes_each_probe_into_the_evaluation_folder(tmp_path, reading_model):
    model_dir, corpus = tmp_path / "model", tmp_path / "pairs"
    reading_model.model.save_pretrained(model_dir)
    reading_model.processor.save_pretrained(model_dir)
    import datasets

    rng = random.Random(5)
    rows = [utterance_pair(colour, f"rec{k}", rng) for _ in range(3) for k, colour in enumerate(COLOURS)]
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "recording": datasets.Value("string"),
            "messages": [
                {
                    "role": datasets.Value("string"),
                    "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}],
                }
            ],
            "images": datasets.List(datasets.Image()),
        }
    )
    (corpus / "data" / "validation").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(corpus / "data" / "validation" / "0.parquet")
    (corpus / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: validation\n    path: data/validation/*.parquet\n---\n"
    )
    assert main(["match", "--model", str(model_dir), "--pairs", str(corpus), "--output", str(tmp_path / "eval")]) == 0
    written = json.loads((tmp_path / "eval" / "probes" / "utterance_frame_matching.json").read_text())
    assert written["n"] == 12 and written["accuracy"] > 0.9 and written["seed"] == 0
    assert main(["match", "--model", str(tmp_path / "nowhere"), "--pairs", str(corpus), "--output", "x"]) == 1

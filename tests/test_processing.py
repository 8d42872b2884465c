"""Tokenizer training, image/video processing, the processor and the golden chat-template strings."""

import av
import numpy as np
import PIL.Image
import pytest
import torch
from babyvlm.processing import (
    BabyLlavaV2ImageProcessor,
    BabyLlavaV2ImageProcessorPil,
    BabyLlavaV2Processor,
    sample_video_frames,
    train_tokenizer,
)
from babyvlm.processing.video_processing_babyllava_v2 import uniform_frame_indices
from transformers import AutoProcessor, AutoTokenizer

import babyvlm  # noqa: F401
from babyvlm.testing.babyllava import SAMPLE_UTTERANCES

TWO_TURNS = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "content": "a2"},
]
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SAMPLE_UTTERANCES * 4, vocab_size=400, min_frequency=1)


@pytest.fixture(scope="module")
def processor(tiny_model_and_processor):
    return tiny_model_and_processor[1]


def solid(colour, size=(40, 30)):
    return PIL.Image.new("RGB", size, colour)


# --- tokenizer ---------------------------------------------------------------------------------------------


def test_tokenizer_specials_and_bos(tokenizer):
    assert tokenizer.convert_tokens_to_ids(["<pad>", "<unk>", "<sos>", "<eos>"]) == [0, 1, 2, 3]
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 2, 3)
    assert tokenizer.image_token == "<image>" and tokenizer.image_token_id == len(tokenizer) - 1
    ids = tokenizer("look at the ball").input_ids
    assert ids[0] == 2 and 2 not in ids[1:]
    assert tokenizer.convert_ids_to_tokens(tokenizer("<image>hi<eos>").input_ids)[1] == "<image>"


def test_tokenizer_normalises_nfkc_and_lowercase(tokenizer):
    assert tokenizer("ＬＯＯＫ At THE Ball").input_ids == tokenizer("look at the ball").input_ids
    # The byte-level pre-tokenizer adds a prefix space, as the original's (README.md, "Processing"): decoding keeps it.
    assert tokenizer.decode(tokenizer("The BALL").input_ids, skip_special_tokens=True) == " the ball"


def test_tokenizer_adds_the_prefix_space_as_the_original(tokenizer):
    # A word opens with the same token at the start of a text as after a space, and after an <image>.
    ball = tokenizer.convert_ids_to_tokens(tokenizer("ball").input_ids)[1:]
    assert ball == tokenizer.convert_ids_to_tokens(tokenizer("the ball").input_ids)[-len(ball) :]
    assert ball[0].startswith("Ġ") and tokenizer.convert_ids_to_tokens(tokenizer("<image>ball").input_ids)[2:] == ball


def test_tokenizer_vocab_size_and_round_trip(tmp_path):
    corpus = [f"word{i} and word{i * 7 % 50} play" for i in range(400)]
    tokenizer = train_tokenizer(corpus, vocab_size=300, min_frequency=2)
    assert len(tokenizer) == 301 and tokenizer.image_token_id == 300
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.image_token_id == 300 and reloaded.bos_token == "<sos>"
    assert reloaded("word3 and word21 play").input_ids == tokenizer("word3 and word21 play").input_ids


def test_extra_texts_give_the_chat_templates_role_markers_merges(tokenizer):
    # The utterances never say `USER:`/`ASSISTANT:`: by default every round spells them in letter pieces.
    with_markers = train_tokenizer(
        SAMPLE_UTTERANCES * 4, vocab_size=400, min_frequency=1, extra_texts=["USER:", "ASSISTANT:"]
    )
    rendered = " USER: look at the ball ASSISTANT: ball<eos>USER: what is it ASSISTANT: a dog<eos>"
    tokens = with_markers.convert_ids_to_tokens(with_markers(rendered).input_ids)
    assert tokens.count("Ġuser") == tokens.count("Ġassistant") == 2  # lower-cased, with the prefix space
    assert len(tokens) < len(tokenizer(rendered).input_ids) - 10
    # the utterances' own words and the specials are unchanged; an answer decodes as before
    assert with_markers.tokenize("look at the ball") == tokenizer.tokenize("look at the ball")
    assert with_markers.convert_tokens_to_ids(["<pad>", "<unk>", "<sos>", "<eos>"]) == [0, 1, 2, 3]
    answer = with_markers(" ball<eos>", add_special_tokens=False).input_ids
    assert answer[-1] == with_markers.eos_token_id and with_markers.decode(answer, skip_special_tokens=True) == " ball"


def test_tokenizer_needs_text():
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer([], vocab_size=100)


# --- images ------------------------------------------------------------------------------------------------


def reference_pixels(image: PIL.Image.Image, size=224) -> np.ndarray:
    """Pad to square with the mean colour, resize bilinear, normalise — written from README.md, "Processing"."""
    width, height = image.size
    side = max(width, height)
    canvas = PIL.Image.new("RGB", (side, side), (123, 116, 103))
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    array = np.asarray(canvas.resize((size, size), PIL.Image.BILINEAR), dtype=np.float64) / 255.0
    return ((array - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


@pytest.mark.parametrize("processor_class", [BabyLlavaV2ImageProcessor, BabyLlavaV2ImageProcessorPil])
def test_image_processing_matches_reference(processor_class):
    rng = np.random.default_rng(0)
    image = PIL.Image.fromarray(rng.integers(0, 256, (60, 100, 3), dtype=np.uint8))
    pixels = processor_class()(image, return_tensors="pt").pixel_values
    assert pixels.shape == (1, 3, 224, 224)
    expected = reference_pixels(image)
    # the padding band is exactly the mean colour; resampling filters differ by at most ~2 grey levels
    np.testing.assert_allclose(pixels[0, :, :5, :].numpy(), expected[:, :5, :], atol=1e-4)
    assert np.abs(pixels[0].numpy() - expected).mean() < 0.02


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1", "I;16", "I", "F"])
def test_image_modes_become_rgb(mode):
    grey = PIL.Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (30, 1)))  # 30 x 50 gradient
    if mode in ("I;16", "I"):
        image = PIL.Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).convert(mode)
    elif mode == "F":
        image = PIL.Image.fromarray(np.asarray(grey).astype(np.float32) / 255.0)
    else:
        image = grey.convert(mode)
    fast = BabyLlavaV2ImageProcessor()(image, return_tensors="pt").pixel_values
    reference = BabyLlavaV2ImageProcessorPil()(image, return_tensors="pt").pixel_values
    assert fast.shape == (1, 3, 224, 224)
    assert (fast - reference).abs().max() < 0.05
    if mode in ("L", "LA", "I;16", "I", "F"):  # same grey levels as the 8-bit image
        expected = BabyLlavaV2ImageProcessor()(grey, return_tensors="pt").pixel_values
        assert (fast - expected).abs().max() < 0.05


@pytest.mark.parametrize(
    "image",
    [
        np.full((30, 50, 3), 200, dtype=np.uint8),
        np.full((30, 50), 200, dtype=np.uint8),
        np.full((30, 50, 3), 200 * 257, dtype=np.uint16),
        np.full((30, 50, 3), 200 / 255, dtype=np.float32),
        np.stack([np.full((30, 50), 200, np.uint8), np.full((30, 50), 255, np.uint8)], -1),
        torch.full((3, 30, 50), 200, dtype=torch.uint8),
    ],
    ids=["rgb", "grey2d", "uint16", "float", "grey-alpha", "torch-chw"],
)
def test_arrays_and_tensors_in_any_layout(image):
    expected = BabyLlavaV2ImageProcessor()(solid((200, 200, 200), (50, 30)), return_tensors="pt").pixel_values
    pixels = BabyLlavaV2ImageProcessor()(image, return_tensors="pt").pixel_values
    assert (pixels - expected).abs().max() < 0.02


# --- video -------------------------------------------------------------------------------------------------


def write_video(path, colours, size=32):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for colour in colours:
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), colour, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_uniform_frame_indices():
    assert uniform_frame_indices(16, 8) == [0, 2, 4, 6, 9, 11, 13, 15]
    assert uniform_frame_indices(3, 5) == [0, 0, 1, 2, 2]
    with pytest.raises(ValueError, match="no frames"):
        uniform_frame_indices(0, 8)


def test_video_file_and_array_sampling(tmp_path):
    greys = [(10 * i, 10 * i, 10 * i) for i in range(20)]
    write_video(tmp_path / "clip.mp4", greys)
    frames = sample_video_frames(tmp_path / "clip.mp4", num_frames=4)
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    means = [float(frame.mean()) for frame in frames]
    assert means == sorted(means) and abs(means[0] - 0) < 6 and abs(means[-1] - 190) < 6
    array = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(10)])
    assert [int(f[0, 0, 0]) for f in sample_video_frames(array, num_frames=3)] == [0, 4, 9]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="broken.mp4"):
        sample_video_frames(tmp_path / "broken.mp4")


# --- processor ---------------------------------------------------------------------------------------------


def test_golden_baby_v1_strings(processor):
    assert processor.apply_chat_template(TWO_TURNS) == " USER: q1 ASSISTANT: a1<eos>USER: q2 ASSISTANT: a2<eos>"
    assert processor.apply_chat_template(TWO_TURNS[:1], add_generation_prompt=True) == " USER: q1 ASSISTANT:"
    with_system = [{"role": "system", "content": "Answer with a letter."}] + TWO_TURNS[:1]
    assert (
        processor.apply_chat_template(with_system, add_generation_prompt=True)
        == "Answer with a letter. USER: q1 ASSISTANT:"
    )


def original_baby_v1(messages: list[dict], system: str = "") -> str:
    """The original conversation template's rendering (LLaVA's `SeparatorStyle.TWO` with baby_v1's roles and
    separators " " and "<eos>"): an empty message is its role and a colon alone."""
    roles = {"user": "USER", "assistant": "ASSISTANT"}
    rendered = system + " "
    for index, message in enumerate(messages):
        role, text = roles[message["role"]], message["content"]
        rendered += f"{role}: {text}" + (" ", "<eos>")[index % 2] if text else f"{role}:"
    return rendered


@pytest.mark.parametrize(
    "answers",
    [["a1", "a2"], ["", "a2"], ["a1", ""], ["", ""]],
)
def test_baby_v1_renders_empty_messages_as_the_original_template(processor, answers):
    messages = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": answers[0]},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": answers[1]},
    ]
    assert processor.apply_chat_template(messages) == original_baby_v1(messages)
    history = messages[:3]
    prompt = processor.apply_chat_template(history, add_generation_prompt=True)
    assert prompt == original_baby_v1(history) + "ASSISTANT:"
    if not answers[0]:
        assert prompt == " USER: q1 ASSISTANT:USER: q2 ASSISTANT:"


def test_golden_structured_content_keeps_image_positions(processor):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": " Which of the following is the same as this? (A) "},
                {"type": "image"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
    ]
    assert (
        processor.apply_chat_template(messages)
        == " USER: <image> Which of the following is the same as this? (A) <image> ASSISTANT: A<eos>"
    )


def test_golden_baby_plain(processor):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "ignored"}]},
        {"role": "assistant", "content": "look, a ball"},
    ]
    assert processor.apply_chat_template(messages, chat_template="baby_plain") == "<image>look, a ball<eos>"
    assert processor.apply_chat_template(messages, chat_template="baby_plain", separator=" ") == "<image>look, a ball "


def test_each_image_expands_to_config_sequence_length(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    assert processor.image_seq_length == model.config.image_seq_length == 17
    inputs = processor(
        text=["<image> a <image>", "b <image>"],
        images=[solid("red"), solid("green"), solid("blue")],
        padding=True,
        return_tensors="pt",
    )
    assert inputs.pixel_values.shape == (3, 3, 32, 32)
    counts = (inputs.input_ids == model.config.image_token_id).sum(1).tolist()
    assert counts == [34, 17]
    with torch.no_grad():
        model(**inputs)


def test_image_order_across_turns_and_videos(processor, tmp_path):
    write_video(tmp_path / "clip.mp4", [(0, 0, 255)] * 6)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": solid((255, 0, 0))},
                {"type": "video", "video": str(tmp_path / "clip.mp4")},
            ],
        },
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": [{"type": "text", "text": "and"}, {"type": "image", "image": solid((0, 255, 0))}]},
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    dominant = inputs.pixel_values.mean(dim=(2, 3)).argmax(1).tolist()
    assert dominant == [0] + [2] * processor.num_frames + [1]  # red, 8 blue frames, green
    assert (
        int((inputs.input_ids == processor.image_token_id).sum())
        == (2 + processor.num_frames) * processor.image_seq_length
    )


def test_assistant_tokens_mask_marks_exactly_the_answers(processor):
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": solid("red")}, {"type": "text", "text": " how many balls?"}],
        },
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "and now?"},
        {"role": "assistant", "content": "three balls"},
    ]
    out = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt"
    )
    ids, mask = out.input_ids[0], out.assistant_masks[0].bool()
    assert processor.tokenizer.decode(ids[mask]) == " two<eos> three balls<eos>"
    assert not mask[ids == processor.image_token_id].any()


def test_dataset_style_messages_with_separate_images(processor):
    """DevCV/SAYCam records keep images in a parallel list; image blocks carry `text: None`."""
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "text": None}, {"type": "text", "text": " How many cups do you see?"}],
        }
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == " USER: <image> How many cups do you see? ASSISTANT:"
    inputs = processor(text=prompt, images=[solid("red")], return_tensors="pt")
    assert inputs.input_ids[0, 0] == processor.tokenizer.bos_token_id


def test_placeholder_image_count_mismatch_is_an_error(processor):
    with pytest.raises(ValueError, match="1 <image> tokens and 2 images"):
        processor(text="<image> hi", images=[solid("red"), solid("blue")])
    with pytest.raises(ValueError, match="fewer placeholders"):
        processor(text="<video> hi", videos=[np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8)])


def test_auto_processor_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is BabyLlavaV2Processor
    assert type(reloaded.image_processor) is BabyLlavaV2ImageProcessor
    assert reloaded.image_seq_length == processor.image_seq_length and reloaded.num_frames == processor.num_frames
    assert set(reloaded.chat_template) >= {"default", "baby_v1", "baby_plain"}
    assert reloaded.apply_chat_template(TWO_TURNS) == processor.apply_chat_template(TWO_TURNS)


def test_processor_rejects_tokenizer_without_image_token():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>")), unk_token="<unk>"
    )
    with pytest.raises(ValueError, match="no '<image>' token"):
        BabyLlavaV2Processor(BabyLlavaV2ImageProcessor(), plain)


# --- bad input: a clear ValueError instead of an answer to nothing ------------------------------------


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (PIL.Image.new("RGB", (10, 0)), "image 0 is 10x0 pixels (width x height): it is empty"),
        (PIL.Image.new("RGB", (0, 0)), "image 0 is 0x0 pixels (width x height): it is empty"),
        (np.zeros((0, 10, 3), np.uint8), "image 0 (ndarray of shape (0, 10, 3)) has no pixels"),
        (torch.zeros(3, 10, 0), "image 0 (Tensor of shape (3, 10, 0)) has no pixels"),
        (np.full((10, 10, 3), np.nan, np.float32), "image 0 (ndarray of shape (10, 10, 3)) holds NaN or infinite"),
        (torch.tensor([[[0.5, float("inf"), 0.1]]]).expand(4, 4, 3), "holds NaN or infinite values"),
        (np.zeros((32, 32, 5), np.uint8), "image 0 (ndarray of shape (32, 32, 5)) has no channel axis of 1 to 4"),
    ],
    ids=["10x0", "0x0", "array-0x10", "tensor-10x0", "nan-array", "inf-tensor", "5-channels"],
)
@pytest.mark.parametrize("processor_class", [BabyLlavaV2ImageProcessor, BabyLlavaV2ImageProcessorPil])
def test_images_without_pixels_or_with_nan_are_refused(processor_class, image, message):
    with pytest.raises(ValueError) as caught:
        processor_class()([solid("red"), image][1:])
    assert message in str(caught.value)


def test_bad_image_is_named_by_its_position_through_the_processor(processor):
    with pytest.raises(ValueError, match=r"image 1 is 10x0 pixels"):
        processor(text="<image> a <image> b", images=[solid("red"), PIL.Image.new("RGB", (10, 0))])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("gone.png", "image 1 ({folder}/gone.png): no such file"),
        ("folder", "image 1 ({folder}/folder) is a folder, not an image file"),
        ("notes.txt", "image 1 ({folder}/notes.txt) cannot be read as an image (cannot identify image file"),
    ],
    ids=["missing", "a-folder", "not-an-image"],
)
def test_an_image_path_that_is_not_an_image_file_is_named_by_position_and_path(processor, tmp_path, name, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("not pixels")
    solid("red").save(tmp_path / "red.png")
    for path in (str(tmp_path / name), tmp_path / name):
        with pytest.raises(ValueError) as caught:
            processor(text="<image> a <image> b", images=[[str(tmp_path / "red.png")], [path]])
        assert str(caught.value).startswith(message.format(folder=tmp_path)), caught.value
    # Paths that are image files, as `str` or `Path`, are read as the parent reads them.
    read = processor(text="<image> a <image> b", images=[tmp_path / "red.png", str(tmp_path / "red.png")])
    assert torch.equal(read["pixel_values"][0], processor(text="<image> a", images=[solid("red")])["pixel_values"][0])


@pytest.mark.parametrize("text", ["", "   ", ["a ball", ""]])
def test_empty_prompt_is_refused(processor, text):
    with pytest.raises(ValueError, match=r"text\[\d\] is an empty prompt"):
        processor(text=text)


def test_empty_message_list_is_refused(processor):
    with pytest.raises(ValueError, match="the conversation has no messages"):
        processor.apply_chat_template([], add_generation_prompt=True)
    with pytest.raises(ValueError, match="conversation 1 has no messages"):
        processor.apply_chat_template([TWO_TURNS, []], tokenize=True, return_dict=True)


def test_tokenizer_docstring_example_runs():
    import doctest

    from babyvlm.processing import tokenization_babyllava_v2

    result = doctest.testmod(tokenization_babyllava_v2)
    assert result.attempted > 0 and result.failed == 0

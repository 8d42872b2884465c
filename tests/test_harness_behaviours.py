"""babyvlm runs a model as the official harness does by default (lmms-eval's stop strings, the original
precision and context cut), each deviation a named option recorded in the run."""

import json
from types import SimpleNamespace

import pytest
import torch
from babyvlm.evaluate_metrics.devcv.tasks import canonical_task
from babyvlm.evaluate_metrics.harness import STOP_STRINGS
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.lmms_eval_plugin.task_folder import task_yaml
from babyvlm.evaluate_metrics.protocol import run_items, single_turn_conversation
from babyvlm.evaluate_metrics.runner import evaluate_devcv

from babyvlm.chat import content_to_text
from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

# What a chatty model says: lmms-eval's `until=["\n\n"]` keeps the text before the blank line.
SCRIPTED = {" B\n\nA": "B", "left\n\nright ": "left", " \n\n3": "", "7": "7"}


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


def scripted_chat(llava_dir, monkeypatch, texts) -> ChatModel:
    """A tiny model whose decoded answers are ``texts`` (one per row, in turn), whatever it generated."""
    chat = ChatModel.from_pretrained(llava_dir, max_new_tokens=1)
    answers = iter(texts)
    monkeypatch.setattr(chat.processor, "batch_decode", lambda tokens, **_: [next(answers) for _ in range(len(tokens))])
    return chat


def test_single_turn_answers_keep_the_text_before_the_stop_string_then_strip(llava_dir, monkeypatch):
    chat = scripted_chat(llava_dir, monkeypatch, list(SCRIPTED))
    outputs = run_items(chat, canonical_task("count"), synthetic_items("count", len(SCRIPTED)))
    assert outputs == list(SCRIPTED.values())


def test_without_stop_strings_the_whole_answer_is_kept(llava_dir, monkeypatch):
    chat = scripted_chat(llava_dir, monkeypatch, list(SCRIPTED))
    outputs = run_items(chat, canonical_task("count"), synthetic_items("count", len(SCRIPTED)), stop_strings=())
    assert outputs == [text.strip() for text in SCRIPTED]


def test_memory_rounds_apply_no_stop_string_as_the_reference_wrapper(llava_dir, monkeypatch):
    chat = scripted_chat(llava_dir, monkeypatch, ["A\n\nB"] * 15)
    (answers,) = run_items(chat, canonical_task("memory"), synthetic_items("memory", 1))
    assert answers == ["A\n\nB"] * 15


def test_the_run_cuts_by_default_and_records_its_stop_strings(tmp_path, llava_dir, monkeypatch):
    data = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 2)})
    for stop_strings, expected in ((STOP_STRINGS, ["3", "5"]), ((), ["3\n\n4", "5\n\n6"])):
        chat = scripted_chat(llava_dir, monkeypatch, ["3\n\n4", "5\n\n6"])
        output = tmp_path / f"run-{len(stop_strings)}"
        kwargs = {} if stop_strings else {"stop_strings": ()}
        evaluate_devcv(chat, data, output, progress=False, **kwargs)
        entries = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
        assert [entry["output"] for entry in entries] == expected
        assert json.loads((output / "run.json").read_text())["stop_strings"] == list(stop_strings)


def test_plugin_tasks_name_the_harness_stop_strings():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    for name in ("count", "memory"):
        config = yaml.load(task_yaml(canonical_task(name), "docs.jsonl", "test"), Loader=Loader)
        assert config["generation_kwargs"]["until"] == ["\n\n"]


def _request(*args):
    return SimpleNamespace(args=args)


def test_plugin_model_cuts_at_the_requests_until(llava_dir, monkeypatch):
    pytest.importorskip("lmms_eval")
    from babyvlm.evaluate_metrics.lmms_eval_plugin.model import BabyVLM
    from lmms_eval.api.model import lmms

    model = BabyVLM.__new__(BabyVLM)
    lmms.__init__(model)
    model.chat = scripted_chat(llava_dir, monkeypatch, [" B\n\nA", "B\n\nA"])
    model.batch_size, model.use_system_prompt, model.truncated_prompts, model.stop_strings = 1, False, 0, {}
    doc = synthetic_items("count", 1)[0]
    model.task_dict = {"baby_count": {"test": [doc]}}
    requests = [
        _request(
            "How many?", {"until": ["\n\n"], "max_new_tokens": 1}, lambda d: [d["images"][0]], 0, "baby_count", "test"
        ),
        _request("How many?", {"until": [], "max_new_tokens": 1}, lambda d: [d["images"][0]], 0, "baby_count", "test"),
    ]
    assert model.generate_until(requests) == ["B", "B\n\nA"]
    assert model.stop_strings == {"baby_count": []}  # the last request's, as a task's requests share theirs


def test_written_model_py_cuts_then_strips(monkeypatch):
    pytest.importorskip("lmms_eval")
    from babyvlm.evaluate_metrics.submission.wrapper import DevCVSubmission

    wrapper = DevCVSubmission.__new__(DevCVSubmission)
    wrapper.batch_size_per_gpu = 4
    wrapper.stop_strings = {}
    doc = synthetic_items("count", 1)[0]
    wrapper.task_dict = {"baby_count": {"test": [doc]}}
    outputs = iter([[" \n\nB", " B \n\nA"]])
    monkeypatch.setattr(wrapper, "_generate", lambda conversations, max_new_tokens: next(outputs))
    gen_kwargs = {"until": ["\n\n"], "max_new_tokens": 4}
    visual = lambda d: [d["images"][0]]  # noqa: E731
    requests = [_request("<image> How many?", gen_kwargs, visual, 0, "baby_count", "test") for _ in range(2)]
    assert wrapper.generate_until(requests) == ["", "B"]
    assert wrapper.stop_strings == {"baby_count": ["\n\n"]}  # what the results file records


# --- prompts longer than the model's context -----------------------------------------------------------------


def _original_cut(model, tokenizer, inputs: dict, limit: int, max_new_tokens: int) -> str:
    """The original model code's answer: every image's features spliced in, then the sequence cut to ``limit``."""
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    features = torch.cat(list(model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output))
    embeds[inputs["input_ids"] == model.config.image_token_id] = features.to(embeds.dtype)
    new = model.generate(
        inputs_embeds=embeds[:, :limit],
        attention_mask=torch.ones(1, limit, dtype=torch.long),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.batch_decode(new, skip_special_tokens=True)[0].strip()


def _original_cut_answer(chat: ChatModel, conversation, limit: int, max_new_tokens: int) -> str:
    inputs = chat.encode([chat.prompt(conversation.messages)], [conversation])
    return _original_cut(chat.model, chat.processor.tokenizer, inputs, limit, max_new_tokens)


@pytest.fixture(scope="module")
def babyllava(tiny_model_dir):
    return ChatModel.from_pretrained(tiny_model_dir, max_new_tokens=6)


def _prompt_length(chat: ChatModel, conversation) -> int:
    return chat.encode([chat.prompt(conversation.messages)], [conversation])["input_ids"].shape[1]


@pytest.mark.parametrize("where", ["text", "image"])
def test_a_prompt_longer_than_model_max_length_keeps_its_start_as_the_original(babyllava, monkeypatch, where):
    record = synthetic_items("picture_vocabulary", 1)[0]  # four images, then text
    conversation = single_turn_conversation(record, [])
    length = _prompt_length(babyllava, conversation)
    # 17 tokens per image: cut 3 tokens before the end (text only), or in the middle of the last image.
    limit = length - 3 if where == "text" else length - 12
    monkeypatch.setattr(babyllava, "context_limit", limit)
    with torch.inference_mode():
        expected = _original_cut_answer(babyllava, conversation, limit, 6)
    (answer,) = babyllava.generate([conversation])
    assert conversation.truncated
    assert answer == expected
    monkeypatch.setattr(babyllava, "context_limit", None)
    whole = single_turn_conversation(record, [])
    assert babyllava.generate([whole]) != [expected] and not whole.truncated


def test_the_runner_counts_the_items_it_cut_and_never_cuts_when_asked(tmp_path, tiny_model_dir):
    rows = synthetic_items("picture_vocabulary", 2) + synthetic_items("count", 2)
    data = write_devcv_folder(tmp_path / "devcv", {"picture_vocabulary": rows[:2], "count": rows[2:]})
    chat = ChatModel.from_pretrained(tiny_model_dir, max_new_tokens=2)
    pv_length = _prompt_length(chat, single_turn_conversation(rows[0], []))
    chat.context_limit = pv_length - 5  # Picture Vocabulary's 4 images: cut; Counting's 1 image: not
    summaries = {}
    for truncation in ("model_max_length", "never"):
        output = tmp_path / truncation
        summaries[truncation] = evaluate_devcv(
            tiny_model_dir, data, output, truncation=truncation, max_new_tokens=2, progress=False
        )
        run = json.loads((output / "run.json").read_text())
        assert run["truncation"] == truncation
    # The saved tokenizer says 8192: nothing is cut at that length; a tokenizer saying less cuts.
    assert {task["truncated"] for task in summaries["model_max_length"]["tasks"].values()} == {0}
    chat_summary = evaluate_devcv(chat, data, tmp_path / "cut", progress=False)
    assert chat_summary["tasks"]["baby_pv"]["truncated"] == 2
    assert chat_summary["tasks"]["baby_count"]["truncated"] == 0
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["context_limit"] == pv_length - 5


def test_a_dialogue_outgrowing_the_context_is_answered_as_re_encoding_its_cut_history(tiny_model_dir):
    record = synthetic_items("memory", 1)[0]
    reusing = ChatModel.from_pretrained(tiny_model_dir, max_new_tokens=2)
    plain = ChatModel(reusing.model, reusing.processor, max_new_tokens=2, reuse_dialogue_cache=False)
    # About the history's length by round 8 (each round adds two 17-token images and a few words).
    limit = 8 * 2 * 17 + 60
    for chat in (reusing, plain):
        chat.context_limit = limit
    cut = set()
    (cached,) = run_items(reusing, canonical_task("memory"), [record], truncated=cut)
    (encoded,) = run_items(plain, canonical_task("memory"), [record])
    assert cut == {0}
    assert cached == encoded


def test_the_plugin_model_cuts_as_the_runner_by_default_and_says_how_many(tiny_model_dir, monkeypatch):
    pytest.importorskip("lmms_eval")
    from babyvlm.evaluate_metrics.lmms_eval_plugin.model import BabyVLM
    from loguru import logger

    logged = []
    sink = logger.add(lambda message: logged.append(str(message)), level="INFO")
    try:
        model = BabyVLM(str(tiny_model_dir), batch_size=2, max_new_tokens=6)  # dtype auto, truncation by default
        assert model.chat.describe()["dtype"] == "float32" and model.chat.truncation == "model_max_length"
        record = synthetic_items("picture_vocabulary", 1)[0]
        conversation = single_turn_conversation(record, [])
        limit = _prompt_length(model.chat, conversation) - 12  # inside the last image
        monkeypatch.setattr(model.chat, "context_limit", limit)
        with torch.inference_mode():
            expected = _original_cut_answer(model.chat, conversation, limit, 6)
        model.task_dict = {"baby_pv": {"test": [record]}}
        visual = lambda doc: doc["images"]  # noqa: E731
        context = content_to_text(record["messages"][0]["content"])
        gen_kwargs = {"until": [], "max_new_tokens": 6}
        assert model.generate_until([_request(context, gen_kwargs, visual, 0, "baby_pv", "test")]) == [expected]
        model.clean()
    finally:
        logger.remove(sink)
    assert any("in float32 (dtype=auto), truncation=model_max_length" in line for line in logged)
    assert any(f"1 prompt(s) were longer than the tokenizer's model_max_length ({limit})" in line for line in logged)
    never = BabyVLM(str(tiny_model_dir), truncation="never")
    assert never.chat.context_limit is None


def test_written_model_py_runs_in_the_official_precision_and_cuts_as_the_original(tiny_model_dir):
    pytest.importorskip("lmms_eval")
    from babyvlm.evaluate_metrics.submission.wrapper import DevCVSubmission, _dtype, _user_message

    assert (
        _dtype("auto", torch.device("cuda", 0)) == torch.float16
        and _dtype("auto", torch.device("cpu")) == torch.float32
    )
    wrapper = DevCVSubmission(str(tiny_model_dir))
    assert wrapper.model.dtype == torch.float32 and wrapper.context_limit == 8192  # the saved tokenizer's
    record = synthetic_items("picture_vocabulary", 1)[0]
    messages = [_user_message(content_to_text(record["messages"][0]["content"]), len(record["images"]))]
    inputs = wrapper._encode([wrapper._prompt(messages)], record["images"])
    for limit in (inputs["input_ids"].shape[1] - 3, inputs["input_ids"].shape[1] - 12):  # text only; in an image
        wrapper.context_limit = limit
        with torch.inference_mode():
            expected = _original_cut(wrapper.model, wrapper.processor.tokenizer, inputs, limit, 6)
        short = synthetic_items("count", 1)[0]
        short_messages = [_user_message(content_to_text(short["messages"][0]["content"]), 1)]
        answers = wrapper._generate([(messages, record["images"]), (short_messages, short["images"])], 6)
        assert answers[0].strip() == expected
    assert wrapper.truncated_prompts == 2  # the long prompt each time, never the short one
    with pytest.raises(ValueError, match="truncation must be one of"):
        DevCVSubmission(str(tiny_model_dir), truncation="sometimes")


# --- arguments checked before the model loads ----------------------------------------------------------------


def _cli(tmp_path, capsys, *arguments) -> str:
    from babyvlm.evaluate_metrics.runner import main

    data = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 1)})
    assert main(["--data", str(data), "--output", str(tmp_path / "out"), "--no-progress", *arguments]) == 1
    return capsys.readouterr().err


def test_a_missing_local_model_folder_is_named_as_such_offline(tmp_path, capsys):
    error = _cli(tmp_path, capsys, "--model", "tiny/nope")
    assert "model folder tiny/nope does not exist" in error and "connection to the Hub" in error


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--split", "validation"], "has no split 'validation'"),
        (["--tasks", "memory"], "has no task 'memory'"),
        (["--max-new-tokens", "0"], "max_new_tokens must be at least 1"),
    ],
)
def test_bad_arguments_are_reported_before_the_model_loads(
    tmp_path, capsys, monkeypatch, llava_dir, arguments, message
):
    from babyvlm.evaluate_metrics import runner

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(runner, "load_model", refuse)
    assert message in _cli(tmp_path, capsys, "--model", str(llava_dir), *arguments)


# --- precision --------------------------------------------------------------------------------------------------


def test_auto_precision_is_the_official_float16_on_an_accelerator_and_float32_on_a_cpu():
    from babyvlm.evaluate_metrics.harness import resolve_dtype
    from babyvlm.evaluate_metrics.runner import _parser

    assert _parser().parse_args(["--model", "m", "--data", "d", "--output", "o"]).dtype == "auto"
    assert resolve_dtype("auto", "cuda:0") == torch.float16
    assert resolve_dtype("auto", "cpu") == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8", "cpu")


def test_quick_runs_few_items_with_short_answers_marked_not_official(tmp_path, capsys, llava_dir):
    from babyvlm.evaluate_metrics.harness import QUICK_LIMIT, QUICK_MAX_NEW_TOKENS
    from babyvlm.evaluate_metrics.runner import main

    data = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", QUICK_LIMIT + 2)})
    output = tmp_path / "out"
    main(["--model", str(llava_dir), "--data", str(data), "--output", str(output), "--quick", "--no-progress"])
    assert "not an official score" in capsys.readouterr().out
    run = json.loads((output / "run.json").read_text())
    assert run["quick"] and run["max_new_tokens"] == QUICK_MAX_NEW_TOKENS
    assert len((output / "predictions.jsonl").read_text().splitlines()) == QUICK_LIMIT
    summary = json.loads((output / "summary.json").read_text())
    assert summary["quick"]["official"] is False

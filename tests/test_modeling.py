"""BabyLLaVA-V2 modelling: config defaults, feature selection, Llava compatibility, generation, saving."""

import inspect
import subprocess
import sys

import pytest
import torch
from babyvlm.modeling import BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration, BabyLlavaV2Model
from transformers import AutoModel, AutoModelForImageTextToText, LlavaConfig, LlavaForConditionalGeneration

import babyvlm  # noqa: F401
from babyvlm.testing.babyllava import tiny_config

IMAGE_TOKEN_ID = 99


def make_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return BabyLlavaV2ForConditionalGeneration(tiny_config(100, IMAGE_TOKEN_ID, **overrides)).eval()


def prompt_ids(model, n_images=1, prefix=(2, 5, 6), suffix=(7, 8)):
    image_block = [IMAGE_TOKEN_ID] * model.config.image_seq_length
    return torch.tensor([list(prefix) + image_block * n_images + list(suffix)])


def test_default_config_reproduces_original():
    config = BabyLlavaV2Config()
    assert config.image_seq_length == 197
    assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (-1, "full")
    assert config.vision_feature_use_final_norm is True
    vision, text = config.vision_config, config.text_config
    assert (vision.model_type, vision.hidden_size, vision.num_hidden_layers, vision.patch_size, vision.image_size) == (
        "dinov2",
        1024,
        24,
        16,
        224,
    )
    assert vision.layerscale_value == 1e-5
    assert (text.model_type, text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (
        "llama",
        2048,
        5632,
        22,
    )
    assert (text.num_attention_heads, text.num_key_value_heads, text.max_position_embeddings) == (32, 4, 8192)
    assert text.vocab_size == 6001 and config.image_token_id == 6000
    assert (text.pad_token_id, text.bos_token_id, text.eos_token_id) == (0, 2, 3)
    assert not config.tie_word_embeddings


def test_default_model_size_on_meta_device():
    with torch.device("meta"):
        model = BabyLlavaV2ForConditionalGeneration(BabyLlavaV2Config())
    assert sum(p.numel() for p in model.parameters()) == 1_303_203_840


def test_invalid_feature_strategy_is_rejected():
    with pytest.raises(ValueError, match="keep CLS"):
        BabyLlavaV2Config(vision_feature_select_strategy="cls")


def test_weight_names_match_llava():
    model = make_model()
    llava_config = LlavaConfig(
        vision_config=model.config.vision_config.to_dict(),
        text_config=model.config.text_config.to_dict(),
        image_token_index=IMAGE_TOKEN_ID,
    )
    llava = LlavaForConditionalGeneration(llava_config)
    assert set(model.state_dict()) == set(llava.state_dict())
    assert {
        "model.multi_modal_projector.linear_1.weight",
        "model.multi_modal_projector.linear_2.weight",
        "lm_head.weight",
    } <= set(model.state_dict())


def test_projector_input_norm_off_builds_exactly_the_llava_model():
    model = make_model()
    assert model.config.projector_input_norm is False and model.model.multi_modal_projector.input_norm is None
    torch.manual_seed(0)
    llava = LlavaForConditionalGeneration(LlavaConfig(**model.config.to_dict()))
    ours, theirs = model.state_dict(), llava.state_dict()
    assert set(ours) == set(theirs)
    for name, weight in ours.items():
        torch.testing.assert_close(weight, theirs[name], msg=name)


def test_projector_input_norm_normalises_the_selected_features_before_the_connector():
    off, on = make_model(), make_model(projector_input_norm=True)
    norm = on.model.multi_modal_projector.input_norm
    assert isinstance(norm, torch.nn.LayerNorm) and norm.normalized_shape == (on.config.vision_config.hidden_size,)
    # a fresh norm is the identity affine; everything else is initialised exactly as without it
    torch.testing.assert_close(norm.weight, torch.ones_like(norm.weight))
    torch.testing.assert_close(norm.bias, torch.zeros_like(norm.bias))
    extra = {"model.multi_modal_projector.input_norm.weight", "model.multi_modal_projector.input_norm.bias"}
    assert set(on.state_dict()) == set(off.state_dict()) | extra
    for name, weight in off.state_dict().items():
        torch.testing.assert_close(on.state_dict()[name], weight, msg=name)
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = torch.stack(on.get_image_features(pixel_values).pooler_output)
        tower = on.model.vision_tower(pixel_values).last_hidden_state
        projector = on.model.multi_modal_projector
        expected = projector.linear_2(projector.act(projector.linear_1(norm(tower))))
        without = torch.stack(off.get_image_features(pixel_values).pooler_output)
        ids = prompt_ids(on)
        logits_on = on(input_ids=ids, pixel_values=pixel_values[:1]).logits
        logits_off = off(input_ids=ids, pixel_values=pixel_values[:1]).logits
    assert features.shape == without.shape == (2, on.config.image_seq_length, on.config.text_config.hidden_size)
    torch.testing.assert_close(features, expected)
    assert not torch.allclose(features, without)
    assert not torch.allclose(logits_on, logits_off)


def test_projector_input_norm_saves_and_loads(tmp_path):
    model = make_model(projector_input_norm=True)
    with torch.no_grad():
        model.model.multi_modal_projector.input_norm.weight.uniform_(0.5, 1.5)
        model.model.multi_modal_projector.input_norm.bias.normal_()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert reloaded.config.projector_input_norm is True
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], weight, msg=name)
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids=prompt_ids(model), pixel_values=pixel_values).logits,
            model(input_ids=prompt_ids(model), pixel_values=pixel_values).logits,
        )


def test_image_features_are_post_norm_last_layer_with_cls():
    model = make_model()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.get_image_features(pixel_values).pooler_output
        tower = model.model.vision_tower(pixel_values, output_hidden_states=True)
        expected = model.model.multi_modal_projector(tower.last_hidden_state)
    assert len(features) == 2 and features[0].shape == (17, 64)
    torch.testing.assert_close(torch.stack(features), expected)
    # and that differs from the pre-norm last layer, which is what Llava would take
    pre_norm = model.model.multi_modal_projector(tower.hidden_states[-1])
    assert not torch.allclose(pre_norm, expected)


@pytest.mark.parametrize(
    ("layer", "strategy", "final_norm", "tokens"),
    [(-1, "full", False, 17), (-2, "full", True, 17), (-1, "default", True, 16), (-2, "default", False, 16)],
)
def test_feature_selection_settings(layer, strategy, final_norm, tokens):
    model = make_model(
        vision_feature_layer=layer, vision_feature_select_strategy=strategy, vision_feature_use_final_norm=final_norm
    )
    assert model.config.image_seq_length == tokens
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features = model.get_image_features(pixel_values).pooler_output[0]
        hidden = model.model.vision_tower(pixel_values, output_hidden_states=True).hidden_states[layer]
        if final_norm:
            hidden = model.model.vision_tower.layernorm(hidden)
        if strategy == "default":
            hidden = hidden[:, 1:]
        expected = model.model.multi_modal_projector(hidden)[0]
    torch.testing.assert_close(features, expected)


@pytest.mark.parametrize("final_norm", [True, False])
def test_get_image_features_follows_return_dict_and_output_hidden_states(final_norm):
    """transformers' conventions: `return_dict=False` gives a tuple, `output_hidden_states` (argument or config) every
    vision layer; neither changes the features."""
    model = make_model(vision_feature_use_final_norm=final_norm)
    pixel_values = torch.randn(2, 3, 32, 32)
    layers = model.config.vision_config.num_hidden_layers + 1
    with torch.no_grad():
        default = model.get_image_features(pixel_values)
        as_tuple = model.get_image_features(pixel_values, return_dict=False)
        requested = model.get_image_features(pixel_values, output_hidden_states=True)
        model.config.output_hidden_states = True
        from_config = model.get_image_features(pixel_values)
        model.config.return_dict = False
        tuple_from_config = model.get_image_features(pixel_values)
    assert isinstance(as_tuple, tuple) and isinstance(tuple_from_config, tuple)
    torch.testing.assert_close(as_tuple[0], default.last_hidden_state)
    for outputs in (requested, from_config):
        assert len(outputs.hidden_states) == layers and all(h is not None for h in outputs.hidden_states)
        torch.testing.assert_close(outputs.pooler_output, default.pooler_output)


def test_generation_class_declares_generation_mixin_and_typed_kwargs():
    from typing import Unpack

    from transformers import GenerationMixin
    from transformers.utils import TransformersKwargs

    assert GenerationMixin in BabyLlavaV2ForConditionalGeneration.__bases__
    assert BabyLlavaV2ForConditionalGeneration.can_generate()
    for method in (BabyLlavaV2ForConditionalGeneration.forward, BabyLlavaV2Model.get_image_features):
        assert inspect.signature(method).parameters["kwargs"].annotation == Unpack[TransformersKwargs]
    model = make_model()
    ids = prompt_ids(model)
    with torch.no_grad():
        outputs = model(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32), output_hidden_states=True)
        as_tuple = model(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32), return_dict=False)
    assert len(outputs.hidden_states) == model.config.text_config.num_hidden_layers + 1
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == outputs.logits.shape


def test_placeholder_feature_mismatch_names_both_counts():
    model = make_model()
    ids = prompt_ids(model)[:, :-4]  # cut two image tokens away
    with pytest.raises(ValueError, match=r"15 `<image>` tokens but the images give 17 features"):
        model(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32))


@pytest.mark.slow
def test_labels_at_image_positions_never_enter_the_loss():
    model = make_model()
    ids = prompt_ids(model, n_images=2)
    pixel_values = torch.randn(2, 3, 32, 32)
    masked = ids.masked_fill(ids == IMAGE_TOKEN_ID, -100)
    with torch.no_grad():
        loss_raw_labels = model(input_ids=ids, pixel_values=pixel_values, labels=ids).loss
        loss_masked = model(input_ids=ids, pixel_values=pixel_values, labels=masked).loss
        logits = model(input_ids=ids, pixel_values=pixel_values).logits
    manual = torch.nn.functional.cross_entropy(logits[0, :-1], masked[0, 1:], ignore_index=-100)
    torch.testing.assert_close(loss_raw_labels, loss_masked)
    torch.testing.assert_close(loss_raw_labels, manual)


@pytest.mark.slow
def test_generate_with_kv_cache_matches_no_cache():
    model = make_model()
    ids = prompt_ids(model)
    pixel_values = torch.randn(1, 3, 32, 32)
    kwargs = dict(
        input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixel_values, max_new_tokens=6, do_sample=False
    )
    with_cache = model.generate(**kwargs, use_cache=True)
    without_cache = model.generate(**kwargs, use_cache=False)
    assert with_cache.shape[1] == ids.shape[1] + 6
    assert torch.equal(with_cache, without_cache)


@pytest.mark.slow
def test_batched_left_padded_generation_matches_one_at_a_time():
    model = make_model()
    prompts = [
        prompt_ids(model, prefix=(2, 5)),
        prompt_ids(model, prefix=(2, 5, 6, 7, 8, 9)),
        prompt_ids(model, n_images=2),
    ]
    images = [torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32), torch.randn(2, 3, 32, 32)]
    singles = [
        model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv, max_new_tokens=5, do_sample=False
        )[0, ids.shape[1] :]
        for ids, pv in zip(prompts, images)
    ]
    width = max(ids.shape[1] for ids in prompts)
    batch_ids = torch.stack(
        [torch.cat([torch.zeros(width - ids.shape[1], dtype=torch.long), ids[0]]) for ids in prompts]
    )
    attention = torch.stack(
        [
            torch.cat([torch.zeros(width - ids.shape[1], dtype=torch.long), torch.ones(ids.shape[1], dtype=torch.long)])
            for ids in prompts
        ]
    )
    batched = model.generate(
        input_ids=batch_ids, attention_mask=attention, pixel_values=torch.cat(images), max_new_tokens=5, do_sample=False
    )[:, width:]
    for row, single in zip(batched, singles):
        # a sequence that hit <eos> early is padded in the batch
        assert torch.equal(row[: len(single)], single)
        assert (row[len(single) :] == model.generation_config.pad_token_id).all()


@pytest.mark.slow
def test_gradient_checkpointing_gives_same_gradients():
    ids = None
    grads = []
    for checkpointing in (False, True):
        model = make_model().train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        ids = prompt_ids(model, n_images=2)
        torch.manual_seed(1)
        pixel_values = torch.randn(2, 3, 32, 32)
        model(input_ids=ids, pixel_values=pixel_values, labels=ids).loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_sdpa_is_default_and_eager_matches(tmp_path):
    make_model().save_pretrained(tmp_path)
    sdpa = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    eager = AutoModelForImageTextToText.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert sdpa.config.text_config._attn_implementation == "sdpa"
    assert eager.config.text_config._attn_implementation == "eager"
    ids = prompt_ids(sdpa)
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            sdpa(input_ids=ids, pixel_values=pixel_values).logits,
            eager(input_ids=ids, pixel_values=pixel_values).logits,
            atol=1e-5,
            rtol=1e-4,
        )


def test_save_writes_safetensors_and_auto_classes_load(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    assert {"modeling_babyllava_v2.py", "configuration_babyllava_v2.py"} <= files
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    base = AutoModel.from_pretrained(tmp_path)
    assert type(reloaded) is BabyLlavaV2ForConditionalGeneration and type(base) is BabyLlavaV2Model
    ids, pixel_values = prompt_ids(model), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids=ids, pixel_values=pixel_values).logits,
            model(input_ids=ids, pixel_values=pixel_values).logits,
        )


def test_bf16_loading(tmp_path):
    make_model().save_pretrained(tmp_path)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        logits = model(input_ids=prompt_ids(model), pixel_values=torch.randn(1, 3, 32, 32)).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


# A fresh process: one babyvlm import, then transformers' Auto classes load the checkpoint without remote code.
AUTO_LOAD = """
import sys
{first}
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained(sys.argv[1])
processor = AutoProcessor.from_pretrained(sys.argv[1])
print(type(model).__module__, type(processor).__name__)
"""


@pytest.mark.parametrize("first", ["import babyvlm", "import babyvlm.processing"])
def test_the_auto_classes_resolve_after_babyvlm_is_imported_before_transformers(first, tiny_model_dir):
    code = AUTO_LOAD.format(first=first)
    run = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["babyvlm.modeling.modeling_babyllava_v2", "BabyLlavaV2Processor"]

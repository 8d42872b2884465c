"""Converting the original BabyLLaVA-V2 release: numerical parity, safe loading, strict key accounting, the CLI.

The sources are tiny checkpoints in the original layout (modeling/CONVERSION.md): a timm ViT with LayerScale saved as a
DINOv2 teacher `.pth`, a DINO-v1 ViT (no LayerScale) that the original runs as torchvision `vit_l_16`, and a Llama with
`model.mm_projector.{0,2}` in `LlavaLlamaForCausalLM` names. The references are the original's own towers (timm
`forward_features`, the torchvision encoder) and a Llava forward written here from the original description.
"""

import argparse
import json
import re

import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from babyvlm.modeling import BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration
from babyvlm.modeling.convert_babyllava_v2_original import (
    CheckpointMismatchError,
    UnsafeCheckpointError,
    convert_llava_checkpoint,
    convert_vision_checkpoint,
)
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from torchvision.models.vision_transformer import VisionTransformer as TorchvisionViT
from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor, Dinov2Model

import babyvlm  # noqa: F401  (registers the Auto classes)
from babyvlm.convert import convert_original, main
from babyvlm.testing.babyllava import SAMPLE_UTTERANCES

timm_vision_transformer = pytest.importorskip("timm.models.vision_transformer")

TOLERANCE = 1e-5  # float32 parity bound of the issue
# A 32x32 image in 8x8 patches: 16 patches + CLS = 17 tokens (197 at 224/16).
IMAGE_SIZE, PATCH_SIZE, VISION_WIDTH, VISION_DEPTH, VISION_HEADS = 32, 8, 32, 2, 2
TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE) ** 2 + 1
LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "rope_theta": 500.0,
}
IMAGE_SENTINEL = -200  # the original splices an image's features where this id stands
PROMPT = " USER: <image> look at the ball <image> where is the cup? ASSISTANT:"
# The original's mapping of DINO-v1 keys onto torchvision `vit_l_16` (its ViTVisionTower), used as the reference.
ORIGINAL_TORCHVISION_RULES = [
    (r"^backbone\.cls_token$", "class_token"),
    (r"^backbone\.pos_embed$", "encoder.pos_embedding"),
    (r"^backbone\.patch_embed\.proj\.", "conv_proj."),
    (r"^backbone\.norm\.", "encoder.ln."),
    (r"^backbone\.blocks\.(\d+)\.norm1\.", r"encoder.layers.encoder_layer_\1.ln_1."),
    (r"^backbone\.blocks\.(\d+)\.norm2\.", r"encoder.layers.encoder_layer_\1.ln_2."),
    (r"^backbone\.blocks\.(\d+)\.mlp\.fc1\.", r"encoder.layers.encoder_layer_\1.mlp.0."),
    (r"^backbone\.blocks\.(\d+)\.mlp\.fc2\.", r"encoder.layers.encoder_layer_\1.mlp.3."),
    (r"^backbone\.blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.encoder_layer_\1.self_attention.out_proj."),
    (r"^backbone\.blocks\.(\d+)\.attn\.qkv\.weight$", r"encoder.layers.encoder_layer_\1.self_attention.in_proj_weight"),
    (r"^backbone\.blocks\.(\d+)\.attn\.qkv\.bias$", r"encoder.layers.encoder_layer_\1.self_attention.in_proj_bias"),
]


# --- tiny sources in the original layout --------------------------------------------------------------------------


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial weights everywhere (timm's LayerScale init 1e-5 would make every block nearly an identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            centre = 1.0 if re.search(r"(norm\w*|ln\w*)\.weight$|gamma$", name) else 0.0
            parameter.copy_(centre + 0.2 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def timm_vit(layerscale: bool, seed: int):
    return randomize_(
        timm_vision_transformer.VisionTransformer(
            img_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            embed_dim=VISION_WIDTH,
            depth=VISION_DEPTH,
            num_heads=VISION_HEADS,
            init_values=1e-5 if layerscale else None,
            num_classes=0,
        ),
        seed,
    )


def torchvision_tower(seed: int) -> TorchvisionViT:
    """A tiny torchvision ViT as the original's DINO-v1 tower holds it (classifier replaced by an identity)."""
    tower = TorchvisionViT(IMAGE_SIZE, PATCH_SIZE, VISION_DEPTH, VISION_HEADS, VISION_WIDTH, 4 * VISION_WIDTH)
    tower.heads.head = torch.nn.Identity()
    return randomize_(tower, seed)


def original_torchvision_features(tower: TorchvisionViT, pixel_values: torch.Tensor) -> torch.Tensor:
    """The original ViTVisionTower forward: patches, CLS first, then the encoder (which ends with its LayerNorm)."""
    tokens = tower._process_input(pixel_values)
    tokens = torch.cat([tower.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
    return tower.encoder(tokens)


def dino_teacher(vit, extra: dict | None = None) -> dict:
    """A DINO checkpoint: the ViT under `backbone.` in the teacher, next to a projection head."""
    teacher = {f"backbone.{key}": value for key, value in vit.state_dict().items()}
    teacher["dino_head.last_layer.weight"] = torch.randn(8, VISION_WIDTH)
    return {"teacher": {**teacher, **(extra or {})}}


def original_tokenizer(folder) -> int:
    """Save a byte-level BPE tokenizer like the original 6000-word one (no `<image>`); returns its size."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()  # the default prefix space, as the original
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        min_frequency=1,
        special_tokens=["<pad>", "<unk>", "<sos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SAMPLE_UTTERANCES * 4, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<sos> $A", special_tokens=[("<sos>", 2)])
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<sos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return tokenizer.get_vocab_size()


def llava_weights(vocab_size: int, seed: int) -> dict[str, torch.Tensor]:
    """A tiny `LlavaLlamaForCausalLM` state dict in the original key names (LM + mm_projector)."""
    generator = torch.Generator().manual_seed(seed)
    hidden, inner = LLAMA["hidden_size"], LLAMA["intermediate_size"]
    kv_width = hidden // LLAMA["num_attention_heads"] * LLAMA["num_key_value_heads"]
    shapes = {
        "model.embed_tokens.weight": (vocab_size, hidden),
        "model.norm.weight": (hidden,),
        "lm_head.weight": (vocab_size, hidden),
    }
    for index in range(LLAMA["num_hidden_layers"]):
        layer = f"model.layers.{index}."
        shapes |= {
            layer + "self_attn.q_proj.weight": (hidden, hidden),
            layer + "self_attn.k_proj.weight": (kv_width, hidden),
            layer + "self_attn.v_proj.weight": (kv_width, hidden),
            layer + "self_attn.o_proj.weight": (hidden, hidden),
            layer + "mlp.gate_proj.weight": (inner, hidden),
            layer + "mlp.up_proj.weight": (inner, hidden),
            layer + "mlp.down_proj.weight": (hidden, inner),
            layer + "input_layernorm.weight": (hidden,),
            layer + "post_attention_layernorm.weight": (hidden,),
        }
    shapes |= {
        "model.mm_projector.0.weight": (hidden, VISION_WIDTH),
        "model.mm_projector.0.bias": (hidden,),
        "model.mm_projector.2.weight": (hidden, hidden),
        "model.mm_projector.2.bias": (hidden,),
    }
    return {
        key: (1.0 if key.endswith("norm.weight") else 0.0) + 0.15 * torch.randn(shape, generator=generator)
        for key, shape in shapes.items()
    }


def llava_config(vocab_size: int, **overrides) -> dict:
    """A LLaVA config.json: Llama fields plus the `mm_*` fields of the release."""
    return {
        "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava_llama",
        "vocab_size": vocab_size,
        **LLAMA,
        "hidden_act": "silu",
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
        # TinyLlama's ids, not the tokenizer's: the converter must take them from the tokenizer
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": None,
        "torch_dtype": "float32",
        "mm_vision_tower": "/original/machine/vision_backbone.pth",
        "mm_hidden_size": VISION_WIDTH,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_patch_merge_type": "flat",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad",
        "tokenizer_model_max_length": 1024,
        "tokenizer_padding_side": "right",
        "tune_mm_mlp_adapter": False,
        "tune_vision_tower": False,
        "use_mm_proj": True,
        **overrides,
    }


def write_llava_folder(folder, weights: dict, config: dict, shards: int = 1, fmt: str = "safetensors"):
    """Write a LLaVA-format folder: config.json, weights (one file or shards with an index); tokenizer separately."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    stem, suffix = ("model", ".safetensors") if fmt == "safetensors" else ("pytorch_model", ".bin")
    keys = list(weights)
    names = (
        [f"{stem}{suffix}"] if shards == 1 else [f"{stem}-{i + 1:05d}-of-{shards:05d}{suffix}" for i in range(shards)]
    )
    weight_map = {}
    for index, name in enumerate(names):
        part = {key: weights[key].contiguous() for key in keys[index::shards]}
        save_file(part, folder / name) if fmt == "safetensors" else torch.save(part, folder / name)
        weight_map |= dict.fromkeys(part, name)
    if shards > 1:
        (folder / f"{stem}{suffix}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


# --- the reference forward pass, from the original description ----------------------------------------------------


def rms_norm(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + LLAMA["rms_norm_eps"]) * weight


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def reference_llama_logits(weights: dict, embeddings: torch.Tensor) -> torch.Tensor:
    """Llama: pre-RMSNorm blocks, RoPE (rotate-half), grouped-query causal attention, SiLU-gated MLP, untied head."""
    length, hidden = embeddings.shape
    heads, kv_heads = LLAMA["num_attention_heads"], LLAMA["num_key_value_heads"]
    head_dim = hidden // heads
    device = embeddings.device
    inverse_frequencies = 1.0 / LLAMA["rope_theta"] ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    angles = torch.outer(torch.arange(length, device=device).float(), inverse_frequencies).repeat(1, 2)
    cos, sin = angles.cos(), angles.sin()
    causal = torch.full((length, length), float("-inf"), device=device).triu(1)
    x = embeddings
    for index in range(LLAMA["num_hidden_layers"]):
        weight = {
            name.split(f"model.layers.{index}.")[1]: w
            for name, w in weights.items()
            if name.startswith(f"model.layers.{index}.")
        }
        h = rms_norm(x, weight["input_layernorm.weight"])
        q = (h @ weight["self_attn.q_proj.weight"].T).view(length, heads, head_dim).transpose(0, 1)
        k = (h @ weight["self_attn.k_proj.weight"].T).view(length, kv_heads, head_dim).transpose(0, 1)
        v = (h @ weight["self_attn.v_proj.weight"].T).view(length, kv_heads, head_dim).transpose(0, 1)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k, v = k.repeat_interleave(heads // kv_heads, dim=0), v.repeat_interleave(heads // kv_heads, dim=0)
        attention = torch.softmax(q @ k.transpose(1, 2) / head_dim**0.5 + causal, dim=-1) @ v
        x = x + attention.transpose(0, 1).reshape(length, hidden) @ weight["self_attn.o_proj.weight"].T
        h = rms_norm(x, weight["post_attention_layernorm.weight"])
        x = (
            x
            + (F.silu(h @ weight["mlp.gate_proj.weight"].T) * (h @ weight["mlp.up_proj.weight"].T))
            @ weight["mlp.down_proj.weight"].T
        )
    return rms_norm(x, weights["model.norm.weight"]) @ weights["lm_head.weight"].T


def reference_logits(weights: dict, vision_features: torch.Tensor, ids_with_sentinels: list[int]) -> torch.Tensor:
    """Every post-norm token of each image -> mlp2x_gelu -> spliced in place of its -200 sentinel -> Llama."""
    projected = F.gelu(
        vision_features @ weights["model.mm_projector.0.weight"].T + weights["model.mm_projector.0.bias"]
    )
    projected = projected @ weights["model.mm_projector.2.weight"].T + weights["model.mm_projector.2.bias"]
    images = iter(projected)
    pieces = [
        next(images) if token == IMAGE_SENTINEL else weights["model.embed_tokens.weight"][token][None]
        for token in ids_with_sentinels
    ]
    return reference_llama_logits(weights, torch.cat(pieces))


def original_input_ids(tokenizer, prompt: str) -> list[int]:
    """The original's tokenizer_image_token: chunks between `<image>` tokenized alone, one BOS, -200 between."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    ids = chunks[0][:1]
    for index, chunk in enumerate(chunks):
        ids += ([IMAGE_SENTINEL] if index else []) + chunk[1:]
    return ids


def expand_sentinels(ids: list[int], image_token_id: int) -> list[int]:
    return [
        expanded
        for token in ids
        for expanded in ([image_token_id] * TOKENS_PER_IMAGE if token == IMAGE_SENTINEL else [token])
    ]


def max_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    assert ours.shape == reference.shape
    return float((ours - reference).abs().max())


# --- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dinov2_release(tmp_path_factory):
    """Stage-2 style release: a LLaVA folder (one safetensors file) and a DINOv2/timm teacher `.pth`."""
    root = tmp_path_factory.mktemp("dinov2-release")
    vit = timm_vit(layerscale=True, seed=0)
    extras = {
        "backbone.mask_token": torch.randn(1, VISION_WIDTH),
        "backbone.register_tokens": torch.zeros(1, 4, VISION_WIDTH),
    }
    torch.save(dino_teacher(vit, extras), root / "vision_backbone.pth")
    folder = root / "llava"
    folder.mkdir()
    vocab_size = original_tokenizer(folder)
    weights = llava_weights(vocab_size, seed=1)
    write_llava_folder(folder, weights, llava_config(vocab_size))
    return {
        "folder": folder,
        "pth": root / "vision_backbone.pth",
        "vit": vit,
        "weights": weights,
        "vocab_size": vocab_size,
    }


@pytest.fixture(scope="module")
def phase3_release(tmp_path_factory):
    """Stage-3 style release: the trained DINO-v1 tower (torchvision names) inside two `.bin` shards with an index."""
    folder = tmp_path_factory.mktemp("phase3-release")
    tower = torchvision_tower(seed=2)
    vocab_size = original_tokenizer(folder)
    weights = llava_weights(vocab_size, seed=3)
    tower_weights = {f"model.vision_tower.vision_tower.{key}": value for key, value in tower.state_dict().items()}
    write_llava_folder(
        folder, {**weights, **tower_weights}, llava_config(vocab_size, tune_vision_tower=True), shards=2, fmt="bin"
    )
    return {"folder": folder, "tower": tower, "weights": weights, "vocab_size": vocab_size}


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(4)
    return [
        PIL.Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=generator, dtype=torch.uint8).numpy())
        for h, w in ((40, 30), (24, 36))
    ]


# --- parity -------------------------------------------------------------------------------------------------------


def test_cli_converts_dinov2_release_with_logit_parity(dinov2_release, images, tmp_path):
    output = tmp_path / "babyllava-v2"
    argv = ["--llava-checkpoint", str(dinov2_release["folder"]), "--vision-checkpoint", str(dinov2_release["pth"])]
    assert main([*argv, "--output", str(output), "--vision-num-heads", str(VISION_HEADS)]) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["babyllava-v2"]  # no staging folder left behind

    model = AutoModelForImageTextToText.from_pretrained(output).eval()
    processor = AutoProcessor.from_pretrained(output)
    vocab_size = dinov2_release["vocab_size"]
    config = model.config
    assert type(model) is BabyLlavaV2ForConditionalGeneration
    assert (config.image_token_id, config.text_config.vocab_size) == (vocab_size, vocab_size + 1)
    assert config.image_seq_length == TOKENS_PER_IMAGE
    assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (-1, "full")
    assert config.vision_feature_use_final_norm
    text = config.text_config
    assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (2, 3, 0)  # the tokenizer's, not TinyLlama's
    assert model.generation_config.suppress_tokens == [vocab_size]
    tokenizer = processor.tokenizer
    assert tokenizer.convert_tokens_to_ids("<image>") == vocab_size and len(tokenizer) == vocab_size + 1
    assert tokenizer.model_max_length == 1024  # from tokenizer_model_max_length
    assert processor.image_processor.do_pad and processor.image_processor.size["height"] == IMAGE_SIZE
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": " look at the ball "},
                {"type": "image"},
                {"type": "text", "text": " where is the cup?"},
            ],
        }
    ]
    assert processor.apply_chat_template(messages, add_generation_prompt=True) == PROMPT
    assert set(processor.chat_template) >= {"baby_v1", "baby_plain"}
    card = (output / "README.md").read_text()
    assert "converted" in card and "vision_backbone.pth" in card and "DINOv2/timm (LayerScale)" in card

    inputs = processor(text=PROMPT, images=images, return_tensors="pt")
    original_ids = original_input_ids(tokenizer, PROMPT)
    assert inputs.input_ids[0].tolist() == expand_sentinels(original_ids, vocab_size)
    with torch.no_grad():
        features = model.model.vision_tower(inputs.pixel_values).last_hidden_state
        timm_features = dinov2_release["vit"].forward_features(inputs.pixel_values)
        logits = model(**inputs).logits[0]
        expected = reference_logits(dinov2_release["weights"], timm_features, original_ids)
    assert max_difference(features, timm_features) <= TOLERANCE
    assert max_difference(logits[:, :vocab_size], expected) <= TOLERANCE
    assert torch.all(logits[:, vocab_size] == 0)  # the added <image> row of the LM head


def test_phase3_release_with_torchvision_tower_in_bin_shards(phase3_release):
    model, report = convert_llava_checkpoint(phase3_release["folder"], num_attention_heads=VISION_HEADS)
    vocab_size = phase3_release["vocab_size"]
    assert report.sources == ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    assert report.vision_style == "DINO-v1 (no LayerScale)"
    assert report.converted["model.vision_tower.encoder.layer.1.attention.k_proj.weight"] == (
        "model.vision_tower.vision_tower.encoder.layers.encoder_layer_1.self_attention.in_proj_weight [k]"
    )
    assert sum("LayerScale 1.0" in how for how in report.filled.values()) == 2 * VISION_DEPTH
    assert model.config.vision_config.layerscale_value == 1.0 and not model.config.vision_config.use_mask_token

    pixel_values = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(5))
    original_ids = [2, 17, 40, IMAGE_SENTINEL, 33, IMAGE_SENTINEL, 51, 9]
    with torch.no_grad():
        features = model.model.vision_tower(pixel_values).last_hidden_state
        tower_features = original_torchvision_features(phase3_release["tower"], pixel_values)
        logits = model(
            input_ids=torch.tensor([expand_sentinels(original_ids, vocab_size)]), pixel_values=pixel_values
        ).logits[0]
        expected = reference_logits(phase3_release["weights"], tower_features, original_ids)
    assert max_difference(features, tower_features) <= TOLERANCE
    assert max_difference(logits[:, :vocab_size], expected) <= TOLERANCE


def test_dinov2_vision_checkpoint_accounts_for_every_key(dinov2_release):
    vision, report = convert_vision_checkpoint(dinov2_release["pth"], num_attention_heads=VISION_HEADS)
    assert report.dropped == {
        "backbone.register_tokens": "register tokens: the original's ViT has none",
        "dino_head.last_layer.weight": "outside `backbone.`: a DINO training head, not part of the ViT",
    }
    assert report.converted["embeddings.mask_token"] == "backbone.mask_token"
    assert report.converted["encoder.layer.0.layer_scale2.lambda1"] == "backbone.blocks.0.ls2.gamma"
    assert not report.filled and not report.unexpected
    assert set(report.converted) == set(vision.state_dict())
    pixel_values = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ours = vision(pixel_values).last_hidden_state
        expected = dinov2_release["vit"].forward_features(pixel_values)
    assert max_difference(ours, expected) <= TOLERANCE


def test_dino_v1_vision_checkpoint_becomes_a_standalone_dinov2_model(tmp_path):
    vit = timm_vit(layerscale=False, seed=7)
    checkpoint = dino_teacher(vit)
    torch.save(checkpoint, tmp_path / "dino_v1.pth")
    # The original runs these weights as torchvision vit_l_16, renamed with its own rules.
    renamed = {}
    for key, value in checkpoint["teacher"].items():
        if key.startswith("backbone."):
            for pattern, replacement in ORIGINAL_TORCHVISION_RULES:
                key = re.sub(pattern, replacement, key)
            renamed[key] = value
    original_tower = TorchvisionViT(IMAGE_SIZE, PATCH_SIZE, VISION_DEPTH, VISION_HEADS, VISION_WIDTH, 4 * VISION_WIDTH)
    original_tower.heads.head = torch.nn.Identity()
    original_tower.load_state_dict(renamed, strict=True)

    output = tmp_path / "vision"
    convert_original(output, vision_checkpoint=tmp_path / "dino_v1.pth", num_attention_heads=VISION_HEADS)
    vision = AutoModel.from_pretrained(output).eval()
    assert type(vision) is Dinov2Model and "DINO-v1 (no LayerScale)" in (output / "README.md").read_text()
    pixel_values = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        ours = vision(pixel_values).last_hidden_state
        expected = original_torchvision_features(original_tower.eval(), pixel_values)
    assert max_difference(ours, expected) <= TOLERANCE

    # It plugs into a BabyLLaVA-V2 config as its vision tower.
    config = BabyLlavaV2Config(
        vision_config=vision.config,
        text_config={
            "vocab_size": 50,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
        image_token_index=49,
    )
    assert config.image_seq_length == TOKENS_PER_IMAGE
    babyllava = BabyLlavaV2ForConditionalGeneration(config).eval()
    babyllava.model.vision_tower.load_state_dict(vision.state_dict(), strict=True)
    with torch.no_grad():
        projected = babyllava.get_image_features(pixel_values).pooler_output
    torch.testing.assert_close(torch.stack(projected), babyllava.model.multi_modal_projector(ours))


# --- refusals -----------------------------------------------------------------------------------------------------


def test_pickles_needing_arbitrary_code_are_refused(dinov2_release, tmp_path, capsys):
    training_args = argparse.Namespace(lr=5e-4)  # what DINO saves next to the weights in its full checkpoints
    torch.save({**dino_teacher(dinov2_release["vit"]), "args": training_args}, tmp_path / "full_checkpoint.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"full_checkpoint\.pth: refused.*argparse\.Namespace"):
        convert_vision_checkpoint(tmp_path / "full_checkpoint.pth", num_attention_heads=VISION_HEADS)
    (tmp_path / "notes.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.pth: not a checkpoint of tensors") as caught:
        convert_vision_checkpoint(tmp_path / "notes.pth")
    assert not isinstance(caught.value, UnsafeCheckpointError)

    folder = tmp_path / "llava"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(llava_config(dinov2_release["vocab_size"])))
    torch.save({**dinov2_release["weights"], "training_args": training_args}, folder / "pytorch_model.bin")
    output = tmp_path / "converted"
    assert (
        main(
            [
                "--llava-checkpoint",
                str(folder),
                "--vision-checkpoint",
                str(dinov2_release["pth"]),
                "--output",
                str(output),
            ]
        )
        == 1
    )
    assert "pytorch_model.bin: refused" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "full_checkpoint.pth",
        "llava",
        "notes.pth",
    ]  # nothing written


def test_unexpected_missing_and_misshapen_keys_are_all_listed(dinov2_release, tmp_path):
    weights = dict(dinov2_release["weights"])
    del weights["model.layers.1.mlp.up_proj.weight"]
    weights["model.mm_projector.1.weight"] = torch.zeros(3)
    weights["model.mm_projector.2.bias"] = torch.zeros(5)
    folder = write_llava_folder(tmp_path / "llava", weights, llava_config(dinov2_release["vocab_size"]))
    teacher = dino_teacher(dinov2_release["vit"], {"backbone.blocks.0.attn.q_norm.weight": torch.ones(16)})
    torch.save(teacher, tmp_path / "vision.pth")
    with pytest.raises(CheckpointMismatchError) as caught:
        convert_llava_checkpoint(folder, tmp_path / "vision.pth", num_attention_heads=VISION_HEADS)
    error = caught.value
    assert error.unexpected == ["backbone.blocks.0.attn.q_norm.weight", "model.mm_projector.1.weight"]
    assert error.missing == ["model.language_model.layers.1.mlp.up_proj.weight"]
    assert error.wrong_shapes == ["model.mm_projector.2.bias (5,) -> model.multi_modal_projector.linear_2.bias (64,)"]
    assert all(key in str(error) for key in error.unexpected + error.missing)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mm_projector_type": "linear"}, "mm_projector_type 'linear' is not supported"),
        ({"mm_use_im_start_end": True}, "no image start/end tokens"),
        ({"mm_hidden_size": 48}, "mm_hidden_size 48 differs"),
        ({"image_aspect_ratio": "anyres"}, "image_aspect_ratio 'anyres' is not supported"),
    ],
)
def test_unsupported_llava_configs_are_refused_before_writing(dinov2_release, tmp_path, overrides, message):
    folder = tmp_path / "llava"
    write_llava_folder(folder, dinov2_release["weights"], llava_config(dinov2_release["vocab_size"], **overrides))
    original_tokenizer(folder)
    with pytest.raises(ValueError, match=re.escape(message)):
        convert_original(
            tmp_path / "out",
            llava_checkpoint=folder,
            vision_checkpoint=dinov2_release["pth"],
            num_attention_heads=VISION_HEADS,
        )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["llava"]


def test_tower_source_must_be_unambiguous(phase3_release, dinov2_release):
    with pytest.raises(ValueError, match="holds its own trained vision tower"):
        convert_llava_checkpoint(phase3_release["folder"], dinov2_release["pth"], num_attention_heads=VISION_HEADS)
    with pytest.raises(ValueError, match="no vision tower weights.*vision_backbone.pth"):
        convert_llava_checkpoint(dinov2_release["folder"], num_attention_heads=VISION_HEADS)


def test_existing_output_is_kept_unless_overwrite(dinov2_release, tmp_path, capsys):
    output = tmp_path / "vision"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    argv = [
        "--vision-checkpoint",
        str(dinov2_release["pth"]),
        "--output",
        str(output),
        "--vision-num-heads",
        str(VISION_HEADS),
    ]
    assert main(argv) == 1 and "--overwrite" in capsys.readouterr().err
    assert [path.name for path in output.iterdir()] == ["keep.txt"]
    assert main([*argv, "--overwrite", "--dtype", "bfloat16"]) == 0
    assert not (output / "keep.txt").exists()
    assert AutoModel.from_pretrained(output).dtype == torch.bfloat16
    assert [path.name for path in tmp_path.iterdir()] == ["vision"]

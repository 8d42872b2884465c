"""Training the BabyLLaVA-V2 tokenizer: byte-level BPE on child-directed utterances (README.md, "Processing")."""

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<unk>", "<sos>", "<eos>"
IMAGE_TOKEN = "<image>"
# Ids 0-3 in this order, as in the original tokenizer.
SPECIAL_TOKENS = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN]


def train_tokenizer(
    utterances: Iterable[str],
    vocab_size: int = 6000,
    min_frequency: int = 3,
    model_max_length: int = 8192,
    extra_texts: Sequence[str] = (),
) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer of BabyLLaVA-V2 and wrap it as a transformers fast tokenizer.

    Text is normalised with NFKC + lowercase; `<pad>`=0, `<unk>`=1, `<sos>`=2, `<eos>`=3 come first and
    `<sos>` is prepended to every encoded sequence. `<image>` is added after training (id `vocab_size`,
    so the full vocabulary is `vocab_size + 1`), matching `BabyLlavaV2Config`'s defaults.

    Args:
        utterances: any iterable of strings (a list, a generator over a transcript table, a dataset column).
        vocab_size: size of the BPE vocabulary, the four specials included.
        min_frequency: minimum count for a merge.
        model_max_length: context length recorded in the tokenizer.
        extra_texts: strings the BPE also learns, each counted once per utterance, as if every utterance came
            with them (not part of the original, which learns from the transcripts only). For fixed strings that
            every training sample will carry although the utterances never say them, such as a chat template's
            role markers: `["USER:", "ASSISTANT:"]` gives them merges, so they cost a few tokens each rather than
            one per letter pair (they are normalised and pre-tokenized like any text: `" user"`, `":"`).

    Example:

    ```python
    >>> utterances = ["Look at the ball!", "The red ball.", "a ball"] * 10
    >>> tokenizer = train_tokenizer(utterances, vocab_size=300, min_frequency=1)
    >>> tokenizer("The ball").input_ids[0] == tokenizer.bos_token_id == 2
    True
    >>> tokenizer.decode(tokenizer("The BALL").input_ids, skip_special_tokens=True)  # the prefix space stays
    ' the ball'

    ```
    """
    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # The original trains with the byte-level pre-tokenizer's default prefix space (README.md, "Processing").
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    seen = 0

    def texts():
        nonlocal seen
        for text in utterances:
            if isinstance(text, str) and text.strip():
                seen += 1
                yield text
                yield from extra_texts

    tokenizer.train_from_iterator(texts(), trainer=trainer)
    if not seen:
        raise ValueError("tokenizer training saw no text: pass a non-empty iterable of utterances")
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    fast_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    return add_image_token(fast_tokenizer)


def add_image_token(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Append `<image>` as a special token named `image_token` (saved with the tokenizer), if it is missing.

    The original BabyLLaVA-V2 tokenizer has no image token (it splices the sentinel id -200); ours gets it as the
    id right after the existing vocabulary, so the model's embeddings grow by exactly one row.
    """
    if getattr(tokenizer, "image_token", None) == IMAGE_TOKEN and IMAGE_TOKEN in tokenizer.get_vocab():
        return tokenizer
    if IMAGE_TOKEN in tokenizer.get_vocab():
        raise ValueError(f"{IMAGE_TOKEN} is already an ordinary token of this tokenizer; it must be a special token")
    expected_id = len(tokenizer)
    # transformers offers named multimodal tokens only at construction; this is the same registration afterwards.
    tokenizer._set_model_specific_special_tokens({"image_token": IMAGE_TOKEN})
    tokenizer.add_special_tokens({"extra_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False)
    if tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) != expected_id:
        raise RuntimeError(f"{IMAGE_TOKEN} did not get id {expected_id}")
    return tokenizer


__all__ = ["add_image_token", "train_tokenizer", "IMAGE_TOKEN", "SPECIAL_TOKENS"]

"""The two BabyLLaVA-V2 chat templates (README.md, "Processing"), as Jinja for `apply_chat_template`.

Content may be a plain string or a list of blocks: a text block renders its text verbatim, an image block
renders `<image>` and a video block `<video>` (the processor expands it into one `<image>` per sampled frame).
`{% generation %}` marks what the loss covers, so `return_assistant_tokens_mask=True` masks exactly the answers
(in `baby_v1` with the space that follows "ASSISTANT:", which is what a model generates after the prompt).

- `baby_v1` (default; stages 2-3 and evaluation): `" USER: q1 ASSISTANT: a1<eos>USER: q2 ASSISTANT: a2<eos>"`;
  a system message, if any, replaces the empty system prompt before the first space; the generation prompt ends
  with `"ASSISTANT:"`. An empty message renders as its role and a colon alone, as in the original template (LLaVA's
  `SeparatorStyle.TWO`): an empty answer in a Memory history gives `"ASSISTANT:USER: q2 "`.
- `baby_plain` (stage 1): each user turn is reduced to its image/video placeholders, followed directly by the
  assistant's utterance and a separator. The separator defaults to `<eos>` so that generation can stop; pass
  `separator=" "` to `apply_chat_template` for the original's exact string.
"""

_RENDER_CONTENT = (
    "{%- macro render_content(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}{%- for block in content -%}"
    "{%- if block.type == 'image' -%}{{- '<image>' -}}"
    "{%- elif block.type == 'video' -%}{{- '<video>' -}}"
    "{%- else -%}{{- block.text -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)

_RENDER_PLACEHOLDERS = (
    "{%- macro render_placeholders(content) -%}"
    "{%- if content is not string -%}{%- for block in content -%}"
    "{%- if block.type == 'image' -%}{{- '<image>' -}}"
    "{%- elif block.type == 'video' -%}{{- '<video>' -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)

BABY_V1 = (
    _RENDER_CONTENT + "{%- set ns = namespace(system='') -%}"
    "{%- for message in messages if message.role == 'system' -%}"
    "{%- set ns.system = render_content(message.content) -%}"
    "{%- endfor -%}"
    "{{- ns.system + ' ' -}}"
    "{%- for message in messages if message.role != 'system' -%}"
    "{%- set text = render_content(message.content) -%}"
    # The original template renders an empty message as its role and a colon alone: "ASSISTANT:USER: ...".
    "{%- if message.role == 'user' -%}"
    "{{- 'USER:' + ((' ' + text + ' ') if text else '') -}}"
    "{%- elif message.role == 'assistant' -%}"
    # the space after "ASSISTANT:" is part of the answer: generation starts right after the prompt's "ASSISTANT:"
    "{{- 'ASSISTANT:' -}}{%- generation -%}"
    "{{- (' ' + text + eos_token) if text else '' -}}{%- endgeneration -%}"
    "{%- else -%}{{- raise_exception('baby_v1 supports the roles system, user and assistant, got ' + message.role) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

BABY_PLAIN = (
    _RENDER_CONTENT + _RENDER_PLACEHOLDERS + "{%- set sep = separator if separator is defined else eos_token -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'user' -%}{{- render_placeholders(message.content) -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{%- generation -%}{{- render_content(message.content) + sep -}}{%- endgeneration -%}"
    "{%- elif message.role != 'system' -%}"
    "{{- raise_exception('baby_plain supports the roles user and assistant, got ' + message.role) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

CHAT_TEMPLATES = {"default": BABY_V1, "baby_v1": BABY_V1, "baby_plain": BABY_PLAIN}

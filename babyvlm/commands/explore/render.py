"""One DevCV item (and the runs' answers to it) as HTML for the page.

Images are inlined as PNG data URIs, each exactly where its ``{"type": "image"}`` block stands in
the conversation. Task metadata is drawn on or beside them: the Localization box on its frame,
Memory's option labels per round, a VDR clip as an animation, the Looking-While-Listening
image/phrase pairs.
"""

from __future__ import annotations

import base64
import html
import io
import json

from PIL import Image, ImageDraw

from babyvlm.evaluate_metrics.devcv.tasks import LOGLIKELIHOOD, DevCVTask
from babyvlm.item_ids import released_id

from .dataset import MissingImage
from .runs import Run, is_correct, parsed_text

THUMBNAIL_SIZE = 384
VDR_FRAME_MS = 400
EXACT_PIXELS_UP_TO = 64  # images this small are shown as PNG, larger ones as JPEG
# Inline, because the page's own stylesheet (Gradio's prose rules) outranks a class selector for images.
IMAGE_STYLE = "display: inline-block; height: 140px; width: auto; margin: 4px; vertical-align: middle"
MISSING_STYLE = (
    "display: inline-block; height: 140px; width: 140px; margin: 4px; vertical-align: middle; padding: 4px;"
    " border: 2px dashed #dc2626; color: #dc2626; font-size: 0.8em; overflow: hidden; box-sizing: border-box"
)

STYLE = """
<style>
.devcv-item {font-family: sans-serif; line-height: 1.4}
.devcv-turn {border-left: 4px solid #8888; padding: 4px 10px; margin: 8px 0}
.devcv-turn.user {border-color: #3b82f6} .devcv-turn.assistant {border-color: #16a34a}
.devcv-role {font-weight: bold; font-size: 0.85em; text-transform: uppercase; opacity: 0.7}
.devcv-text {white-space: pre-wrap}
.devcv-gold {font-size: 1.2em; margin: 8px 0} .devcv-gold b {color: #16a34a}
.devcv-meta td, .devcv-runs td, .devcv-runs th {padding: 2px 8px; vertical-align: top}
.devcv-message {padding: 8px 12px; border-radius: 6px; margin: 4px 0}
.devcv-message.error {background: #fee2e2; color: #991b1b} .devcv-message.warning {background: #fef3c7; color: #92400e}
.devcv-message.info {background: #e0f2fe; color: #075985}
.devcv-correct {color: #16a34a} .devcv-wrong {color: #dc2626}
</style>
"""


def escape(value) -> str:
    return html.escape(str(value))


def message_html(text: str, level: str = "error") -> str:
    """A message box (``error``, ``warning`` or ``info``) shown in the page instead of a stack trace."""
    return f'{STYLE}<div class="devcv-message {level}">{escape(text)}</div>'


def image_data_uri(image: Image.Image, frames: list[Image.Image] | None = None) -> str:
    """A thumbnail's data URI: JPEG for photographs (a 29-image Memory item stays under a megabyte), PNG for
    small images (exact pixels), or, with ``frames``, an animated GIF."""
    buffer = io.BytesIO()
    if frames:
        thumbnails = [_thumbnail(frame) for frame in frames]
        thumbnails[0].save(
            buffer, format="GIF", save_all=True, append_images=thumbnails[1:], duration=VDR_FRAME_MS, loop=0
        )
        kind = "gif"
    else:
        thumbnail = _thumbnail(image)
        kind = "png" if max(thumbnail.size) <= EXACT_PIXELS_UP_TO else "jpeg"
        thumbnail.save(buffer, format=kind.upper(), **({"quality": 90} if kind == "jpeg" else {}))
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def _thumbnail(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    return image


def image_html(image: Image.Image | MissingImage, label: str) -> str:
    if isinstance(image, MissingImage):
        return (
            f'<span class="devcv-missing" style="{MISSING_STYLE}" title="{escape(label)}">'
            f"{escape(label)}: {escape(image.reason)}</span>"
        )
    return (
        f'<img class="devcv-image" style="{IMAGE_STYLE}" src="{image_data_uri(image)}"'
        f' alt="{escape(label)}" title="{escape(label)}">'
    )


def draw_box(image: Image.Image, box: list[float]) -> Image.Image:
    """The Localization box ``[x, y, w, h]`` drawn on a copy of its frame."""
    image = image.convert("RGB")
    x, y, width, height = box
    ImageDraw.Draw(image).rectangle(
        [x, y, x + width, y + height], outline=(255, 0, 0), width=max(2, min(image.size) // 100)
    )
    return image


def _content_html(content, images: list, next_image: int) -> tuple[str, int]:
    """A turn's blocks: text as text, each image block as the next image."""
    parts = []
    for block in [{"type": "text", "text": content}] if isinstance(content, str) else content:
        if block["type"] == "image":
            image = images[next_image] if next_image < len(images) else MissingImage("no image for this placeholder")
            parts.append(image_html(image, f"image {next_image + 1}"))
            next_image += 1
        else:
            parts.append(f'<span class="devcv-text">{escape(block["text"])}</span>')
    return "".join(parts), next_image


def conversation_html(row: dict, images: list, labels: list) -> str:
    """The messages, images at their placeholders; Memory rounds followed by their option labels."""
    parts, next_image, user_round = ['<div class="devcv-conversation">'], 0, 0
    for message in row["messages"]:
        body, next_image = _content_html(message["content"], images, next_image)
        role = message["role"]
        title = "gold answer" if role == "assistant" else role
        parts.append(f'<div class="devcv-turn {escape(role)}"><div class="devcv-role">{title}</div>{body}')
        if role == "user":
            if user_round < len(labels):
                options = ", ".join(f"{letter} = {escape(label)}" for letter, label in zip("ABCD", labels[user_round]))
                parts.append(f'<div class="devcv-labels">labels: {options}</div>')
            user_round += 1
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def _lwl_html(row: dict, images: list) -> str:
    """Looking While Listening has no conversation: image j is described by phrase j."""
    rows = "".join(
        f"<tr><td>{image_html(image, f'image {index + 1}')}</td><td>phrase {index + 1}: {escape(phrase)}</td></tr>"
        for index, (image, phrase) in enumerate(zip(images, row["choices"]))
    )
    return f'<table class="devcv-conversation devcv-lwl">{rows}</table>'


def box_quadrant(box: list[float], size: tuple[int, int]) -> str:
    """The Localization letter of the quadrant holding the box centre (A top left … D bottom right)."""
    x, y, width, height = box
    return "ABCD"[2 * (y + height / 2 >= size[1] / 2) + (x + width / 2 >= size[0] / 2)]


def box_text(box: list[float], image, answer: list[str]) -> str:
    """The box, and whether its centre lies in the gold quadrant of the shown frame: the released boxes
    are not always in the shown crop's coordinates (several SAYCam samples are not)."""
    text = f"{escape(box)} (drawn in red)"
    if isinstance(image, MissingImage) or len(answer) != 1:
        return text
    quadrant = box_quadrant(box, image.size)
    if quadrant == answer[0]:
        return f"{text}; its centre is in the gold quadrant {quadrant}"
    return (
        f"{text}; its centre is in quadrant {quadrant}, not the gold {escape(answer[0])}: "
        "the released box does not match this frame's crop"
    )


def _metadata_rows(task: DevCVTask, row: dict, images: list) -> list[tuple[str, str]]:
    rows = [("task", f"{task.display_name} ({task.name}, {task.harness_key})"), ("source", row.get("source", ""))]
    if released_id(row) != row["id"]:
        rows.append(("released id", escape(released_id(row))))
    for column in ("source_task", "notes", "gif"):
        if row.get(column):
            rows.append((column, escape(row[column])))
    if row.get("choices"):
        rows.append(("choices", ", ".join(escape(choice) for choice in row["choices"])))
    if row.get("bbox") and images:
        rows.append(("box [x, y, w, h]", box_text(list(row["bbox"]), images[0], list(row["answer"]))))
    if row.get("image_paths"):
        rows.append(("image paths", "<br>".join(escape(path) for path in row["image_paths"])))
    for column in ("extra", "provenance"):
        if row.get(column) and row[column] != "{}":
            rows.append((column, f"<code>{escape(json.dumps(json.loads(row[column]), indent=1))}</code>"))
    return rows


def item_html(task: DevCVTask, row: dict, images: list) -> str:
    """The item: conversation with its images, gold answer, drawn and listed metadata."""
    metadata = "".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in _metadata_rows(task, row, images))
    if row.get("bbox") and images and not isinstance(images[0], MissingImage):
        images = [draw_box(images[0], list(row["bbox"])), *images[1:]]
    parts = [STYLE, f'<div class="devcv-item"><h3>{escape(row["id"])}</h3>']
    if task.protocol == LOGLIKELIHOOD:
        parts.append(_lwl_html(row, images))
    else:
        parts.append(conversation_html(row, images, list(row.get("labels") or [])))
    gold = " ".join(row["answer"]) if row["answer"] else "(no generated answer: phrases are scored by their loss)"
    parts.append(f'<div class="devcv-gold">Gold: <b class="devcv-gold-answer">{escape(gold)}</b></div>')
    frames = [image for image in images if not isinstance(image, MissingImage)]
    if task.clip and len(frames) > 1:
        parts.append(
            f"<div>Clip ({len(frames)} frames, {VDR_FRAME_MS} ms each): "
            f'<img class="devcv-animation" style="{IMAGE_STYLE}" src="{image_data_uri(frames[0], frames)}"'
            ' alt="clip"></div>'
        )
    parts.append(f'<table class="devcv-meta">{metadata}</table></div>')
    return "".join(parts)


def _output_text(output) -> str:
    if isinstance(output, list) and output and isinstance(output[0], list):
        return "losses " + "; ".join(", ".join(f"{loss:.3f}" for loss in pair) for pair in output)
    if isinstance(output, list):
        return " | ".join(str(text) for text in output)
    return str(output)


# An output longer than this shows its start, the rest one click away (a Memory item's 15 chatty answers
# otherwise make a page tens of thousands of pixels long).
OUTPUT_PREVIEW_CHARS = 300


def output_html(text: str, limit: int = OUTPUT_PREVIEW_CHARS) -> str:
    """The escaped output, cut to its first ``limit`` characters with the whole of it behind a "show all"."""
    if len(text) <= limit:
        return escape(text)
    return (
        f'<details class="devcv-output"><summary>{escape(text[:limit])}… '
        f"<i>(show all {len(text)} characters)</i></summary>{escape(text)}</details>"
    )


def runs_html(task: DevCVTask, row: dict, runs: list[Run]) -> str:
    """Each run's answer to the item: raw output, parsed answer, scores and whether it is correct."""
    if not runs:
        return ""
    lines = ["<tr><th>run</th><th>output</th><th>parsed</th><th>scores</th><th></th></tr>"]
    for run in runs:
        entry = run.entries.get(task.name, {}).get(row["id"])
        if entry is None:
            lines.append(f"<tr><td>{escape(run.name)}</td><td colspan=4>not in this run</td></tr>")
            continue
        correct = is_correct(task, entry)
        verdict = "correct" if correct else "wrong"
        if entry["unparsable"]:
            verdict += f" ({entry['unparsable']} unparsable)"
        scores = ", ".join(f"{name} {value:.3f}" for name, value in entry["scores"].items())
        extras = entry.get("extra_scores") or {}  # the runner's named extras beside the official scores
        if extras:
            scores += "; extras: " + ", ".join(f"{name} {value:.3f}" for name, value in extras.items())
        lines.append(
            f'<tr class="devcv-run"><td>{escape(run.name)}</td><td>{output_html(_output_text(entry["output"]))}</td>'
            f"<td>{escape(parsed_text(entry, task))}</td><td>{escape(scores)}</td>"
            f'<td class="{"devcv-correct" if correct else "devcv-wrong"}">{escape(verdict)}</td></tr>'
        )
    # Inline for the same reason as the images: long raw outputs must wrap inside the column.
    table_style = "width: 100%; table-layout: fixed; overflow-wrap: anywhere"
    return f'{STYLE}<table class="devcv-runs" style="{table_style}">{"".join(lines)}</table>'

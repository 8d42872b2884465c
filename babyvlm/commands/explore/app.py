"""The Gradio page: browse a DevCV folder by task and split, runs laid over it, scores, and a model to ask.

Every event handler goes through :func:`_guarded`, so a failure shows as a message in the page
(the traceback goes to the server log), never as a stack trace or a silent error toast.
"""

from __future__ import annotations

import functools
import logging

import gradio as gr
import pandas as pd

from babyvlm.evaluate_metrics.protocol import MAX_NEW_TOKENS

from .dataset import ExploreError
from .filters import ALL, ANY_COUNT, ANY_RUN, FILTERS, Selection
from .render import message_html
from .runs import run_title
from .session import Explorer

logger = logging.getLogger(__name__)


def messages_html(*groups: list[str]) -> str:
    return "".join(message_html(text, "warning") for group in groups for text in group)


def error_text(error: Exception) -> str:
    if isinstance(error, ExploreError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error} (the server log has the details)"


def default_split(splits: list[str]) -> str | None:
    """The split evaluations use (``test``) when the task has it, else its first."""
    return "test" if "test" in splits else next(iter(splits), None)


def _table(header: list[str], rows: list[list]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=header)


def build_app(explorer: Explorer) -> gr.Blocks:
    """The page for ``explorer``; launch it with ``.launch()`` (or mount it in a FastAPI app)."""
    tasks = explorer.task_choices()
    first_task = tasks[0][1] if tasks else None
    splits = explorer.split_choices(first_task) if first_task else []
    first_split = default_split(splits)
    run_names = [ANY_RUN] + [run.name for run in explorer.runs]

    with gr.Blocks(title="DevCV explorer") as demo:
        data_name = explorer.folder.path.name if explorer.folder else "no dataset"
        gr.Markdown(f"# DevCV explorer · {data_name}")
        startup = explorer.messages
        messages = gr.HTML(messages_html(startup), elem_id="explore-messages")
        with gr.Tab("Items"):
            with gr.Row():
                task_box = gr.Dropdown(tasks, value=first_task, label="task", elem_id="task")
                split_box = gr.Dropdown(splits, value=first_split, label="split", elem_id="split")
                filter_box = gr.Radio(FILTERS, value=ALL, label="show", elem_id="filter")
                run_box = gr.Dropdown(run_names, value=ANY_RUN, label="filter on run", elem_id="filter-run")
                count_box = gr.Dropdown([ANY_COUNT], value=ANY_COUNT, label="true count", elem_id="true-count")
            with gr.Row():
                previous_button = gr.Button("◀ previous page", elem_id="previous-page", scale=0)
                page_box = gr.Number(1, precision=0, minimum=1, label="page", elem_id="page", scale=0)
                next_button = gr.Button("next page ▶", elem_id="next-page", scale=0)
                page_info = gr.Markdown(elem_id="page-info")
            table = gr.Dataframe(
                headers=["#", "id", "gold"],
                interactive=False,
                wrap=True,
                elem_id="page-table",
                label="items (click a row)",
            )
            item_box = gr.Dropdown([], label="item", elem_id="item")
            with gr.Row():
                with gr.Column(scale=3):
                    item_view = gr.HTML(elem_id="item-view")
                with gr.Column(scale=2):
                    run_view = gr.HTML(elem_id="run-view")
                    with gr.Accordion("Ask the model about this item", open=explorer.asker is not None):
                        if explorer.asker is None:
                            gr.Markdown("Start the explorer with `--model DIR` to ask a checkpoint about the item.")
                        prompt_box = gr.Textbox(
                            label="prompt (each <image> takes the item's next image)",
                            lines=4,
                            elem_id="prompt",
                            interactive=explorer.asker is not None,
                        )
                        tokens_box = gr.Slider(
                            1, MAX_NEW_TOKENS, value=explorer.max_new_tokens, step=1, label="max new tokens"
                        )
                        ask_button = gr.Button("Ask", elem_id="ask", interactive=explorer.asker is not None)
                        answer_box = gr.Textbox(label="answer (streamed)", elem_id="answer", interactive=False)
        with gr.Tab("Scores"):
            if explorer.runs:
                header, rows = explorer.scores()
                gr.Dataframe(_table(header, rows), interactive=False, elem_id="score-table", label="per-task scores")
                with gr.Row():
                    for run in explorer.runs:
                        with gr.Column(elem_classes="run-plots"):
                            gr.Markdown(f"**{run_title(run)}** · model `{run.model}` · split `{run.split}`")
                            for plot in run.plots():
                                gr.Image(str(plot), label=plot.stem.replace("_", " "), interactive=False)
            else:
                gr.Markdown("No evaluation run given: start the explorer with `--runs EVAL_DIR ...`.")

        outputs = [
            split_box,
            count_box,
            table,
            page_box,
            page_info,
            item_box,
            item_view,
            run_view,
            prompt_box,
            answer_box,
            messages,
        ]

        def _guarded(handler):
            @functools.wraps(handler)
            def wrapper(*args):
                try:
                    return handler(*args)
                except Exception as error:
                    logger.exception("explorer: %s failed", handler.__name__)
                    return {messages: messages_html(startup, [error_text(error)])}

            return wrapper

        def show_item(task, split, position, listing_messages=()) -> dict:
            view = explorer.item(task, split, position)
            return {
                item_view: view.html,
                run_view: view.runs_html,
                prompt_box: view.prompt,
                answer_box: "",
                messages: messages_html(startup, list(listing_messages), view.messages),
            }

        def show_page(task, split, filter_name, run_name, true_count, page) -> dict:
            listing = explorer.listing(task, split, Selection(filter_name, run_name, true_count), page or 1)
            choices = [(f"#{row[0]} {row[1]}", row[0]) for row in listing.rows]
            shown = {
                table: _table(listing.header, listing.rows),
                page_box: listing.page,
                page_info: f"page {listing.page} of {listing.pages} · {listing.total} items",
                item_box: gr.Dropdown(choices, value=listing.positions[0] if listing.positions else None),
            }
            if listing.positions:
                return shown | show_item(task, split, listing.positions[0], listing.messages)
            return shown | {
                item_view: "",
                run_view: "",
                prompt_box: "",
                messages: messages_html(startup, listing.messages),
            }

        @_guarded
        def on_task(task, filter_name, run_name):
            split_names = explorer.split_choices(task)
            split = default_split(split_names)
            return {split_box: gr.Dropdown(split_names, value=split)} | on_split(task, split, filter_name, run_name)

        def on_split(task, split, filter_name, run_name):
            counts = explorer.count_choices(task, split)
            count_update = gr.Dropdown([ANY_COUNT, *counts], value=ANY_COUNT, visible=bool(counts))
            return {count_box: count_update} | show_page(task, split, filter_name, run_name, ANY_COUNT, 1)

        @_guarded
        def on_filters(task, split, filter_name, run_name, true_count):
            return show_page(task, split, filter_name, run_name, true_count, 1)

        @_guarded
        def on_page(task, split, filter_name, run_name, true_count, page):
            return show_page(task, split, filter_name, run_name, true_count, page)

        @_guarded
        def on_item(task, split, position):
            return show_item(task, split, position)

        @_guarded
        def on_row(task, split, event: gr.SelectData):
            position = int(event.row_value[0])
            return {item_box: position} | show_item(task, split, position)

        def on_ask(task, split, position, prompt, max_new_tokens):
            try:
                for answer in explorer.ask(task, split, position, prompt, max_new_tokens):
                    yield {answer_box: answer}
            except Exception as error:
                logger.exception("explorer: asking the model failed")
                yield {messages: messages_html(startup, [error_text(error)])}

        filters = [task_box, split_box, filter_box, run_box, count_box]
        on_split_guarded = _guarded(on_split)
        task_box.input(on_task, [task_box, filter_box, run_box], outputs)
        split_box.input(on_split_guarded, [task_box, split_box, filter_box, run_box], outputs)
        for box in (filter_box, run_box, count_box):
            box.input(on_filters, filters, outputs)
        page_box.submit(on_page, [*filters, page_box], outputs)
        previous_button.click(lambda page: max(1, (page or 1) - 1), page_box, page_box).then(
            on_page, [*filters, page_box], outputs
        )
        next_button.click(lambda page: (page or 1) + 1, page_box, page_box).then(on_page, [*filters, page_box], outputs)
        item_box.input(on_item, [task_box, split_box, item_box], outputs)
        table.select(on_row, [task_box, split_box], outputs)
        ask_button.click(on_ask, [task_box, split_box, item_box, prompt_box, tokens_box], [answer_box, messages])
        if first_split:
            demo.load(on_split_guarded, [task_box, split_box, filter_box, run_box], outputs)
    return demo

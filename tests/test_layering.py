"""Which layer may import which: checked on the source, so a stray import fails here, not in a user's install."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pyproject.toml's package-dir: the top-level folders installed under babyvlm.
PACKAGE_OF_FOLDER = {
    folder: f"babyvlm.{folder}" for folder in ("modeling", "processing", "dataset_builders", "evaluate_metrics")
}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved against its package folder)."""
    folders = path.relative_to(REPO).parent.parts
    package = ".".join((PACKAGE_OF_FOLDER.get(folders[0], folders[0]), *folders[1:])).split(".") if folders else []
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                names.add(f"{base}.{node.module}" if node.module else base)
            else:
                names.add(node.module)
    return names


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in (REPO / folder).rglob("*.py")
        for name in imported_modules(path)
        if name.startswith(forbidden)
    )


def test_evaluation_does_not_reach_into_the_dataset_builders():
    """The task table and the chat schema live where evaluation owns or shares them (evaluate_metrics/devcv/tasks.py,
    babyvlm/chat.py): the runner, the metrics and the lmms-eval plugin never import babyvlm.dataset_builders."""
    assert offenders("evaluate_metrics", ("babyvlm.dataset_builders", "dataset_builders")) == []


COMMANDS = ("babyvlm.commands",)
WORK = ("babyvlm.dataset_builders", "babyvlm.evaluate_metrics", "babyvlm.training")
SHARED_LIBRARY = sorted((REPO / "babyvlm").glob("*.py"))  # the modules directly in babyvlm/, not its subpackages


def library_offenders(forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in SHARED_LIBRARY
        for name in imported_modules(path)
        if name.startswith(forbidden)
    )


def test_the_shared_library_imports_no_layer_above_it():
    """The modules directly in babyvlm/ (Auto-class registration, chat schema, staging, conversion, the verbs' parser
    and one-line failure) are what the builders, evaluation and training share: they import none of those, nor the
    commands."""
    assert library_offenders((*WORK, *COMMANDS, "dataset_builders", "evaluate_metrics")) == []


@pytest.mark.parametrize("folder", ["dataset_builders", "evaluate_metrics", "babyvlm/training", "recipes"])
def test_nothing_below_the_commands_imports_them(folder):
    """babyvlm/commands/ (the `babyvlm` dispatcher, the demo, the explorer) joins every other part: the builders,
    evaluation, training and the recipes never import it."""
    assert offenders(folder, COMMANDS) == []


def test_the_training_layer_does_not_reach_into_builders_or_evaluation():
    """Training reads dataset folders through `datasets`, never through the builders' or the runner's code."""
    forbidden = ("babyvlm.dataset_builders", "babyvlm.evaluate_metrics", "dataset_builders", "evaluate_metrics")
    assert offenders("babyvlm/training", forbidden) == []


@pytest.mark.parametrize("folder", ["modeling", "processing"])
def test_remote_code_is_self_contained(folder):
    """modeling/ and processing/ are copied as remote code next to a checkpoint: they import only themselves."""
    allowed = ("babyvlm.modeling", "babyvlm.processing")
    found = [line for line in offenders(folder, ("babyvlm",)) if not line.split(" imports ")[1].startswith(allowed)]
    assert found == []


MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files(*patterns: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in listed.stdout.split()]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower-cased, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ +(.+?) *$", path.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_relative_markdown_link_resolves():
    dead = []
    for path in tracked_files("*.md"):
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)  # code blocks hold no links
        for target in MARKDOWN_LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                dead.append(f"{path.relative_to(REPO)}: {target}")
    assert dead == []


def test_docstrings_cite_documents_in_the_repository():
    """No citation of REFERENCE.md, a briefing file outside the repository: the facts live in the folder READMEs."""
    citing = [
        str(path.relative_to(REPO))
        for path in tracked_files("*.py", "*.md", "*.yaml")
        if path.exists() and "REFERENCE \u00a7" in path.read_text(errors="ignore")
    ]
    assert citing == []


TEST_HELPERS = ("babyvlm.testing", "babyvlm.tiny", "babyvlm.evaluate_metrics.testing")


@pytest.mark.parametrize(
    "folder", ["babyvlm", "dataset_builders", "evaluate_metrics", "modeling", "processing", "recipes"]
)
def test_runtime_code_never_imports_the_test_helpers(folder):
    """Tiny models and synthetic DevCV folders are for tests and benchmarks: the demo, the runner, the builders and
    the recipes never import them (the helpers themselves, and the modules they grew out of, are exempt)."""
    helpers = {"testing", "tiny.py", "testing.py"}
    found = [
        line for line in offenders(folder, TEST_HELPERS) if not helpers & set(Path(line.split(" imports ")[0]).parts)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("babyvlm.dataset_builders.devcv.tasks", "babyvlm.evaluate_metrics.devcv.tasks", "canonical_task"),
        ("babyvlm.dataset_builders.chat", "babyvlm.chat", "text_to_content"),
        ("babyvlm.evaluate_metrics.testing", "babyvlm.testing.devcv", "write_devcv_folder"),
        ("babyvlm.tiny", "babyvlm.testing.babyllava", "build_tiny_babyllava"),
    ],
)
def test_moved_modules_still_import_with_a_deprecation_warning(old, new, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


PHASE_NAMES = re.compile(r"\bphases?[ -][0-3]\b", re.IGNORECASE)


def test_docs_name_the_stages_as_the_stage_registry_does():
    """One name per stage (babyvlm/training/stages.py): the docs say "stage 2" (`pretrain`), never the original
    release's "phase 2" (its checkpoint ids, `wsashawn/babyllava_v2_phase2`, stay as they are)."""
    found = [
        f"{path.relative_to(REPO)}: {match.group()}"
        for path in tracked_files("*.md", "*.yaml")
        for match in PHASE_NAMES.finditer(path.read_text())
    ]
    assert found == []


LAYOUT_ROW = re.compile(r"^\| `([^`]+)/` \| (?:`([\w.]+)`|—) \|", flags=re.MULTILINE)


def layout_table() -> dict[str, str | None]:
    """README.md's "Repository layout": folder -> import name (None where the folder is not a package)."""
    section = (REPO / "README.md").read_text().split("\n## Repository layout\n", 1)[1].split("\n## ", 1)[0]
    return {folder: name or None for folder, name in LAYOUT_ROW.findall(section)}


def test_the_readme_layout_table_matches_the_tree():
    table = layout_table()
    tracked = [path.relative_to(REPO) for path in tracked_files()]
    top_level = {path.parts[0] for path in tracked if len(path.parts) > 1}
    packages = {str(path.parent) for path in tracked if path.name == "__init__.py" and path.parts[0] != "tests"}
    assert sorted(top_level - table.keys()) == []  # every top-level folder is described
    assert sorted(packages - table.keys()) == []  # and every package and subpackage
    assert sorted(folder for folder in table if not (REPO / folder).is_dir()) == []  # nothing that is gone
    for folder, name in table.items():  # packages by their installed import name (pyproject.toml's package-dir)
        top, *inner = Path(folder).parts
        installed = ".".join(("babyvlm" if top == "babyvlm" else f"babyvlm.{top}", *inner))
        assert name == (installed if folder in packages else None), folder

"""Which layer may import which: checked on the source, so a stray import fails here, not in a user's install."""

import ast
import importlib
import re
import subprocess
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


TEST_HELPERS = ("babyvlm.testing",)


@pytest.mark.parametrize(
    "folder", ["babyvlm", "dataset_builders", "evaluate_metrics", "modeling", "processing", "recipes"]
)
def test_runtime_code_never_imports_the_test_helpers(folder):
    """Tiny models and synthetic DevCV folders are for tests and benchmarks: the demo, the runner, the builders and
    the recipes never import them (the helpers themselves are exempt)."""
    found = [
        line for line in offenders(folder, TEST_HELPERS) if "testing" not in Path(line.split(" imports ")[0]).parts
    ]
    assert found == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("babyvlm.dataset_builders.devcv.tasks", "babyvlm.evaluate_metrics.devcv.tasks"),
        ("babyvlm.dataset_builders.chat", "babyvlm.chat"),
        ("babyvlm.evaluate_metrics.testing", "babyvlm.testing.devcv"),
        ("babyvlm.tiny", "babyvlm.testing.babyllava"),
    ],
)
def test_each_module_has_one_name(old, new):
    """Nothing was released under the modules' earlier places, so no second name is kept for them."""
    importlib.import_module(new)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_the_collator_has_one_name():
    from babyvlm.training import collator

    assert not hasattr(collator, "BabyLlavaV2Collator")


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
    # .mkdocs/api/ links to real packages for the API reference (docs/development.md); links are not packages.
    packages = {
        str(path.parent)
        for path in tracked
        if path.name == "__init__.py" and path.parts[0] != "tests" and not (REPO / path).is_symlink()
    }
    assert sorted(top_level - table.keys()) == []  # every top-level folder is described
    assert sorted(packages - table.keys()) == []  # and every package and subpackage
    assert sorted(folder for folder in table if not (REPO / folder).is_dir()) == []  # nothing that is gone
    for folder, name in table.items():  # packages by their installed import name (pyproject.toml's package-dir)
        top, *inner = Path(folder).parts
        installed = ".".join(("babyvlm" if top == "babyvlm" else f"babyvlm.{top}", *inner))
        assert name == (installed if folder in packages else None), folder


# What a task's behaviour is decided on (its name, harness key or file key), and the literals that spell a task.
TASK_TABLE = REPO / "evaluate_metrics" / "devcv" / "tasks.py"
RUNTIME_FOLDERS = ("babyvlm", "dataset_builders", "evaluate_metrics", "recipes", "benchmarks", "modeling", "processing")
IDENTITY_ATTRIBUTES = {"name", "harness_key", "canonical_name", "source_names"}
TESTED = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


def task_spellings() -> set[str]:
    from babyvlm.evaluate_metrics.devcv.tasks import TASK_FAMILIES, TASKS

    return {alias for task in TASKS.values() for alias in (task.name, task.harness_key, *task.source_names)} | set(
        TASK_FAMILIES
    )


def _names_a_task(node: ast.AST) -> bool:
    """A task's identity: ``x.name`` (``.harness_key``...), ``row["task"]``, or a variable called ``task...``."""
    if isinstance(node, ast.Attribute):
        return node.attr in IDENTITY_ATTRIBUTES
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "task"
    return isinstance(node, ast.Name) and "task" in node.id.lower()


def _task_literal(node: ast.AST, spellings: set[str], constants: dict[str, ast.AST]) -> bool:
    """A string spelling a task, a tuple/list/set of them, or a module constant bound to one."""
    if isinstance(node, ast.Name) and node.id in constants:
        return _task_literal(constants[node.id], spellings, {})
    if isinstance(node, ast.Constant):
        return node.value in spellings
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(_task_literal(element, spellings, constants) for element in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset"):
        return len(node.args) == 1 and _task_literal(node.args[0], spellings, constants)
    return False


def module_constants(path: Path) -> dict[str, ast.AST]:
    """The values of a file's module-level assignments, by name."""
    return {
        target.id: node.value
        for node in ast.parse(path.read_text(), filename=str(path)).body
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }


def task_name_tests(path: Path, spellings: set[str], imported: dict[str, ast.AST] | None = None) -> list[str]:
    """Where a file decides behaviour by testing a task's identity against literal task names (its own module
    constants, and ``imported``: other modules' constants it may import, count as literals)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = {**(imported or {}), **module_constants(path)}
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands, operands[1:]):
                pairs = ((left, right), (right, left))
                if isinstance(op, TESTED) and any(
                    _names_a_task(a) and _task_literal(b, spellings, constants) for a, b in pairs
                ):
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
            and _names_a_task(node.func.value)
            and any(_task_literal(argument, spellings, constants) for argument in node.args)
        ):
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_outside_the_task_table_decides_behaviour_by_a_task_name():
    """How a task is asked and scored is declared in the DevCV task table (evaluate_metrics/devcv/tasks.py) and
    dispatched on: no other module compares a task's name, harness key or file key with a literal task name."""
    spellings = task_spellings()
    paths = [path for folder in RUNTIME_FOLDERS for path in sorted((REPO / folder).rglob("*.py")) if path != TASK_TABLE]
    constants = {name: value for path in paths for name, value in module_constants(path).items()}
    found = [line for path in paths for line in task_name_tests(path, spellings, constants)]
    assert found == []


def test_the_task_name_scan_catches_each_way_of_testing_a_name(tmp_path):
    spellings = task_spellings()
    sample = tmp_path / "sample.py"
    cases = [
        'if task.name == "memory": pass',
        'limit = a if task.name != "memory" else b',
        'if entry["task"] == "count": pass',
        'if row["task"] in ("leftright", "spatialdetails"): pass',
        'if task.name.startswith("vdr"): pass',
        'if task_name == "baby_pv": pass',
        'QUERY = ("leftright", "spatialdetails")\nif row["task"] in QUERY: pass',
        'LWL = "looking_while_listening"\nif task.name == LWL: pass',
        'from .release import LWL_TASK\nif row["task"] == LWL_TASK: pass',
    ]
    allowed = [
        'if path.name == "__init__.py": pass',
        'if task.protocol == "dialogue": pass',
        'MAKERS = {"memory": 1}\nif task.name in MAKERS: pass',
        'if mode == "open": pass',
    ]
    for case in cases:
        sample.write_text(case + "\n")
        assert task_name_tests(sample, spellings, {"LWL_TASK": ast.Constant("looking_while_listening")}), case
    for case in allowed:
        sample.write_text(case + "\n")
        assert task_name_tests(sample, spellings) == [], case

"""The documentation's shape: a short front page, product facts only, one version and one title everywhere.

The site itself (dead links and anchors, missing API names) is checked by `make docs` (`mkdocs build --strict`)."""

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def tracked_markdown(*patterns: str) -> list[Path]:
    """Tracked files matching ``patterns`` (Markdown by default), links left out (their targets are listed)."""
    listed = subprocess.run(
        ["git", "ls-files", *(patterns or ("*.md",))], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [REPO / name for name in listed.stdout.split() if not (REPO / name).is_symlink()]


def test_the_readme_is_a_front_page_of_at_most_200_lines_in_the_documented_order():
    headings = re.findall(r"^## (.+)$", re.sub(r"```.*?```", "", README, flags=re.DOTALL), flags=re.MULTILINE)
    assert len(README.splitlines()) <= 200
    assert headings == [
        "Install",
        "Two commands on a fresh machine",
        "Quickstart",
        "What the main job prints",
        "Repository layout",
        "Documentation",
    ]


# Work-tracking vocabulary that says nothing to a user: issue numbers, who measured a figure. ("Round" stays a
# Memory dialogue's word.)
PROCESS_WORDS = re.compile(
    r"(?<![\w&/])#\d{1,3}(?![\w])|\bissue #?\d+|\bthe lead\b|\bhelper h\d|\bh\d{2}[a-z]\b", re.IGNORECASE
)


def test_the_docs_and_the_code_speak_of_the_product_not_of_how_it_was_made():
    found = [
        f"{path.relative_to(REPO)}: {match.group()}"
        for path in tracked_markdown("*.md", "*.py", "*.yaml")
        if path != Path(__file__)
        for match in PROCESS_WORDS.finditer(path.read_text())
    ]
    assert found == []


def test_every_benchmark_row_has_its_figure_machine_date_and_command():
    table = [line for line in (REPO / "benchmarks/RESULTS.md").read_text().splitlines() if line.startswith("| ")]
    header, _, *rows = table
    assert [cell.strip() for cell in header.strip("|").split(" | ")] == [
        "figure",
        "result",
        "target",
        "machine",
        "date",
        "command",
    ]
    for row in rows:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|"))]
        assert len(cells) == 6, row
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[4]), row


def test_the_version_and_the_paper_are_named_alike_everywhere():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    releases = re.findall(r"^## (\d+\.\d+\.\d+)", (REPO / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    assert citation["version"] == version == releases[0]
    assert citation["license"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    bibtex_title = re.search(r"title\s*=\s*\{(.+)\},", README).group(1)
    assert citation["preferred-citation"]["title"] == bibtex_title

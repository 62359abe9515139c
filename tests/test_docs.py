"""The README and the documentation pages: the README's limits, its runnable examples, and every
relative link of the README and of docs/ pointing at a file that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))

_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
# A code block that runs as a test: every python block of the README, and in docs/ the blocks
# right after this marker.
_MARK = "<!-- runs as a test: tests/test_docs.py -->"
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links outside code, without URLs and in-page anchors."""
    prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
    return [t for t in _LINK.findall(prose) if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t)]


def broken_links(path: Path) -> list[str]:
    return [t for t in relative_links(path.read_text()) if not (path.parent / t.split("#")[0]).exists()]


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = [("README.md", code) for code in _PYTHON.findall(README.read_text())]
    for page in PAGES:
        for part in page.read_text().split(_MARK)[1:]:
            blocks.append((str(page.relative_to(ROOT)), _PYTHON.search(part).group(1)))
    return blocks


def test_link_check_finds_a_missing_file(tmp_path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text("[a](there.md) [b](missing.md#x) [c](https://example.org/y.md) [d](#top) `[e](no.md)`\n"
                    "```\n[f](nope.md)\n```\n")
    assert broken_links(page) == ["missing.md#x"]


def test_readme_is_short_and_keeps_the_set_up_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    for needed in ("make demo", "make test", "pip install .", "## Python API"):
        assert needed in text, needed
    assert "this machine" not in text.lower()
    assert "../shared" not in text


def test_license_is_mit_as_pyproject_says():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(path):
    assert broken_links(path) == []


def _run(code: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("code", [c for src, c in runnable_blocks() if src == "README.md"])
def test_readme_python_example_runs(code, tmp_path):
    _run(code, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("source,code", [b for b in runnable_blocks() if b[0] != "README.md"])
def test_docs_python_example_runs(source, code, tmp_path):
    _run(code, tmp_path)


def _design_layout() -> tuple[list[str], str]:
    """The paths the architecture page's layout block names (first column), and the block."""
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    paths, parent = [], ""
    for line in block.splitlines()[1:]:
        indent = len(line) - len(line.lstrip())
        names = [n.strip() for n in line.strip().split("  ")[0].split(",")]
        if line.strip() and indent == 0:
            parent = names[0]
            paths.append(parent)
        elif line.strip() and indent == 2:  # deeper lines continue a description
            paths += [parent + n for n in names]
    return paths, block


def test_architecture_layout_names_only_paths_that_exist():
    paths, _ = _design_layout()
    assert len(paths) > 40
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_architecture_layout_names_every_module_of_the_unnas_package():
    _, block = _design_layout()
    modules = [p.name for p in (ROOT / "unnas").iterdir()
               if (p.suffix == ".py" or (p / "__init__.py").is_file())]
    missing = [m for m in modules if m not in block and m + "/" not in block]
    assert missing == []

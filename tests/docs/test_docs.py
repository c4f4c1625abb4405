"""Every code block of the documentation runs here, so the docs cannot drift from the code.

The convention (also in `docs/README.md`):

- Every ```` ```python ```` block of a page runs, in page order, in one fresh namespace per
  page, as a script would (`__name__ == "__main__"`, so tasks defined on a page travel to
  worker processes by value, as a user's script's would), in a temporary working directory
  with default settings.
- An HTML comment on the line right before a block changes what happens to it (it is invisible
  in the rendered site):
  - `<!-- docs-test: skip -->` the block is not run (say in the text why it cannot be);
  - `<!-- docs-test: file=NAME -->` the block is written to `NAME` in the working directory
    (which is on `sys.path`) instead of being run, for later blocks to import or run;
  - `<!-- docs-test: run -->` on a ```` ```bash ```` block: run it with bash in the working
    directory (`python` is this interpreter); it must exit with 0;
  - `<!-- docs-test: output -->` on the block right after a `run` block: the command's
    standard output must equal it;
  - `<!-- docs-test: requires=MODULE ... -->` the block is skipped unless every module
    named is importable (for pages about plugins or features not installed everywhere).
  Directives combine with commas: `<!-- docs-test: run, requires=daglite.cli -->`.
- Other blocks (shell commands without `run`, TOML, text) are not executed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daglite.settings import set_global_settings

DOCS = Path(__file__).resolve().parents[2] / "docs"

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<ticks>```+)(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=ticks)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(?P<what>.*?)\s*-->")


class Block:
    """One fenced code block of a page."""

    def __init__(self, page: Path, line: int, language: str, body: str, directive: str) -> None:
        self.page = page
        self.line = line  # line number of the block's first code line
        self.language = language
        self.body = body
        self.directive = directive

    @property
    def where(self) -> str:
        page = self.page.relative_to(DOCS) if self.page.is_relative_to(DOCS) else self.page.name
        return f"{page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of `page`, with the docs-test directive right before each."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        directive = DIRECTIVE.search(before)
        info = match.group("info").strip()
        language = info.split()[0].lower() if info else ""
        body = textwrap.dedent(match.group("body"))
        line = text.count("\n", 0, match.start()) + 2
        found.append(
            Block(page, line, language, body, directive.group("what") if directive else "")
        )
    return found


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def run_page(page: Path, workdir: Path) -> int:
    """Run every block of `page` as the convention says; returns how many blocks ran."""
    namespace = {"__name__": "__main__", "__file__": str(workdir / f"{page.stem}.py")}
    ran = 0
    last_output: str | None = None
    for block in blocks(page):
        options = parse_directive(block)
        if "skip" in options or not all(map(importable, options.get("requires", "").split())):
            continue
        if "file" in options:
            (workdir / options["file"]).write_text(block.body, encoding="utf-8")
            ran += 1
        elif "output" in options:
            assert last_output is not None, f"{block.where}: `output` must follow a `run` block"
            assert last_output.strip() == block.body.strip(), (
                f"{block.where}: the command printed\n{last_output}"
            )
            last_output = None
        elif "run" in options:
            last_output = run_shell(block, workdir)
            ran += 1
        elif block.language in ("python", "py"):
            # Pad so that tracebacks point at the Markdown file's own line numbers.
            source = "\n" * (block.line - 1) + block.body
            exec(compile(source, str(block.page), "exec"), namespace)
            ran += 1
    return ran


KNOWN = {"skip", "file", "run", "output", "requires"}


def parse_directive(block: Block) -> dict[str, str]:
    """`"run, requires=a b"` -> `{"run": "", "requires": "a b"}`; unknown keys are errors."""
    options = {}
    for part in filter(None, (p.strip() for p in block.directive.split(","))):
        key, _, value = part.partition("=")
        key = key.strip()
        assert key in KNOWN, f"{block.where}: unknown docs-test directive {key!r}"
        options[key] = value.strip()
    return options


def importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def run_shell(block: Block, workdir: Path) -> str:
    assert block.language in ("bash", "sh", "console"), f"{block.where}: `run` needs a bash block"
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(workdir)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.body],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"{block.where}: exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working directory with default settings, importable, restored after."""
    for name in list(os.environ):
        if name.startswith("DAGLITE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    set_global_settings(None)
    yield tmp_path
    set_global_settings(None)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_runs(page, workdir):
    run_page(page, workdir)


def test_the_plugin_pages_run_here_when_the_env_says_so():
    """The docs env installs the plugins (`DOCS_REQUIRE_PLUGINS`): their blocks must run."""
    required = os.environ.get("DOCS_REQUIRE_PLUGINS", "").split()
    if not required:
        pytest.skip("DOCS_REQUIRE_PLUGINS is not set (only the docs env installs the plugins)")
    missing = [module for module in required if not importable(module)]
    assert not missing, f"the docs env lacks {missing}: their pages' blocks would be skipped"


def test_every_page_is_found():
    assert (DOCS / "index.md") in pages()
    assert len(pages()) >= 20


# -- the harness itself ---------------------------------------------------------------------


@pytest.fixture
def scratch_page(workdir):
    folder = workdir / "pages"
    folder.mkdir()
    return folder / "_harness_check.md"


def test_blocks_share_a_namespace_and_skip_is_honoured(scratch_page, workdir):
    scratch_page.write_text(
        "```python\nx = 1\n```\n\n<!-- docs-test: skip -->\n```python\nraise SystemExit\n```\n"
        "\n```python\nassert x == 1\n```\n\n```toml\nnot = python\n```\n",
        encoding="utf-8",
    )
    assert run_page(scratch_page, workdir) == 2


def test_a_failing_block_names_its_page_line(scratch_page, workdir):
    scratch_page.write_text("intro\n\n```python\n\nraise ValueError('broken')\n```\n")
    with pytest.raises(ValueError, match="broken") as info:
        run_page(scratch_page, workdir)
    last = info.traceback[-1]
    assert Path(str(last.path)).name == "_harness_check.md"
    assert last.lineno + 1 == 5  # pytest counts from 0


def test_indented_blocks_in_admonitions_run(scratch_page, workdir):
    scratch_page.write_text(
        "!!! note\n\n    ```python\n    y = 2\n    ```\n\n```python\nassert y == 2\n```\n"
    )
    assert run_page(scratch_page, workdir) == 2


def test_file_run_and_output_directives(scratch_page, workdir):
    scratch_page.write_text(
        "<!-- docs-test: file=hello.py -->\n```python\nprint('hi there')\n```\n\n"
        "<!-- docs-test: run -->\n```bash\npython hello.py\n```\n\n"
        "<!-- docs-test: output -->\n```text\nhi there\n```\n"
    )
    assert run_page(scratch_page, workdir) == 2
    assert (workdir / "hello.py").exists()


def test_wrong_output_fails(scratch_page, workdir):
    scratch_page.write_text(
        "<!-- docs-test: run -->\n```bash\necho one\n```\n\n"
        "<!-- docs-test: output -->\n```text\ntwo\n```\n"
    )
    with pytest.raises(AssertionError, match=r"the command printed\n\s*one"):
        run_page(scratch_page, workdir)


def test_failing_command_fails(scratch_page, workdir):
    scratch_page.write_text("<!-- docs-test: run -->\n```bash\necho oops >&2; exit 3\n```\n")
    with pytest.raises(AssertionError, match="exit code 3"):
        run_page(scratch_page, workdir)


def test_unknown_directive_fails(scratch_page, workdir):
    scratch_page.write_text("<!-- docs-test: skipp -->\n```python\npass\n```\n")
    with pytest.raises(AssertionError, match="unknown docs-test directive 'skipp'"):
        run_page(scratch_page, workdir)


def test_requires_skips_blocks_of_missing_modules(scratch_page, workdir):
    scratch_page.write_text(
        "<!-- docs-test: requires=no_such_module_here -->\n```python\nraise SystemExit\n```\n\n"
        "<!-- docs-test: requires=json os -->\n```python\nimport json\n```\n"
    )
    assert run_page(scratch_page, workdir) == 1


def test_page_tasks_travel_to_worker_processes_by_value(scratch_page, workdir):
    scratch_page.write_text(
        "```python\nimport cloudpickle\nfrom daglite import task\n\n\n@task\n"
        "def square(x):\n    return x * x\n\n\n"
        "with open('square.pkl', 'wb') as fh:\n    cloudpickle.dump(square, fh)\n```\n\n"
        "<!-- docs-test: run -->\n```bash\n"
        "python -c \"import pickle; print(pickle.load(open('square.pkl', 'rb'))(3))\"\n```\n\n"
        "<!-- docs-test: output -->\n```text\n9\n```\n"
    )
    assert run_page(scratch_page, workdir) == 2


ROOT = DOCS.parent
#: An install command, and a daglite distribution named by the package index's name.
INSTALL = re.compile(r"\b(?:pip install|uv add|uv pip install)\b(?P<args>.*)")
BY_NAME = re.compile(r"(?<![\w./-])[\"']?daglite(?:-[a-z0-9]+)?(?:\[[^\]]*\])?(?=[\s\"'<>=~!]|$)")


def _install_lines():
    readmes = sorted(ROOT.glob("plugins/*/README.md"))
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md")), *readmes]
    for page in pages:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            found = INSTALL.search(line)
            if found:
                args = re.split(r"#|&&|;|\|", found["args"])[0]  # the install command's own
                yield f"{page.relative_to(ROOT)}:{number}", args


def test_install_commands_take_daglite_from_the_clone():
    # The index's `daglite` is another project: ours install from paths of the clone.
    lines = list(_install_lines())
    assert len(lines) > 10
    wrong = [f"{where}: {args.strip()}" for where, args in lines if BY_NAME.search(args)]
    assert wrong == []


def test_the_install_check_catches_an_index_name():
    assert BY_NAME.search(' "daglite-arrow[pandas,polars]"')
    assert BY_NAME.search(" daglite-ray daglite-s3")
    assert BY_NAME.search(" daglite")
    assert not BY_NAME.search(' "./plugins/daglite-arrow[pandas,polars]"')
    assert not BY_NAME.search(" ./core ./plugins/daglite-ray")
    assert not BY_NAME.search(" -e .[dev]")
    assert not BY_NAME.search(" pyarrow")

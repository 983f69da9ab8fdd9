"""Every file and symbol the documentation names exists: README.md, docs/*.md and examples/README.md
(relative markdown links and their #anchors, file paths in backticks, `models.x` / `metrics.x` /
`benchmarks.x` names in backticks), and the file paths in the code's docstrings and comments. A
moved or renamed file fails here instead of leaving a dead pointer for the reader."""
import importlib
import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]
CODE = sorted(p for top in ("benchmarks", "models", "metrics", "tests", "examples") for p in (ROOT / top).rglob("*.py")
              if p != Path(__file__).resolve())  # this file's made-up page names missing files on purpose
SKIP = {".git", ".tox", "runs", "__pycache__", ".pytest_cache"}
EXTENSIONS = ("py", "md", "yaml", "yml", "toml", "ini", "sh", "sbatch")
# A path in backticks: words joined by /, ending in one of EXTENSIONS or in / (a folder).
PATH = re.compile(r"^(?:\.\./)*[\w.-]+(?:/[\w.-]+)*(?:\.(?:%s)|/)$" % "|".join(EXTENSIONS))
# A dotted name of the project's packages: `models.search_space(name)`, `metrics.cache.read_entry`;
# not a file a run writes (`metrics.json`).
SYMBOL = re.compile(r"^((?:models|metrics|benchmarks)(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?$")
FILE_SUFFIXES = {"json", "csv", "md", "png", "pt", "txt", "npy", "tex", "yaml", "py"}
OUTPUTS = ("runs/",)  # what the commands write (git ignores it): named in the docs, absent from a checkout
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
# In code: a path under a folder of the project (benchmarks/ or a stage of it) naming a file.
PROJECT_DIRS = ("benchmarks", "models", "metrics", "tests", "docs", "examples", "results",
                "core", "data", "training", "evaluation", "reporting", "perf", "study", "configs")
CODE_PATH = re.compile(r"(?<![\w/.-])((?:%s)/[\w./-]*\.(?:%s))\b" % ("|".join(PROJECT_DIRS), "|".join(EXTENSIONS)))


def _repository_paths():
    """Every file and folder of the working tree, relative to the root, as posix strings."""
    out = set()
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT)
        if not SKIP & set(rel.parts) and not any(part.endswith(".egg-info") for part in rel.parts):
            out.add(rel.as_posix())
    return out


PATHS = _repository_paths()


def _resolves(doc, ref):
    """A path from `doc`: relative to the document's folder, or a trailing part of a path of the
    repository (`core/io.py` is benchmarks/core/io.py; `final/pairwise.md` a study folder's)."""
    ref = ref.rstrip("/")
    if (doc.parent / ref).exists():
        return True
    ref = ref.lstrip("./")
    return any(p == ref or p.endswith("/" + ref) for p in PATHS)


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    text = _without_code_blocks(path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def _without_code_blocks(text):
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _symbol_exists(name):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def broken_references(doc, text):
    """[(kind, reference)] of what `text` (the content of `doc`) names that does not exist."""
    text = _without_code_blocks(text)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file) if file else doc
        if not path.exists():
            broken.append(("link", target))
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(("anchor", target))
    for code in re.findall(r"`([^`\n]+)`", text):
        code = code.strip()
        if PATH.match(code) and not code.startswith("/"):
            if not code.startswith(OUTPUTS) and not _resolves(doc, code):
                broken.append(("path", code))
            continue
        symbol = SYMBOL.match(code)
        if symbol and symbol.group(1).rpartition(".")[2] not in FILE_SUFFIXES and not _symbol_exists(symbol.group(1)):
            broken.append(("symbol", code))
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_reference_of_the_docs_exists(doc):
    assert broken_references(doc, doc.read_text()) == []


def test_every_file_path_in_the_code_exists():
    missing = [f"{p.relative_to(ROOT)}:{i}: {m}" for p in CODE for i, line in enumerate(p.read_text().splitlines(), 1)
               for m in CODE_PATH.findall(line) if not _resolves(p, m)]
    assert missing == []


def test_the_checker_reports_what_is_missing():
    """The checker itself, on a made-up page beside README.md: each dead reference is reported,
    the live ones are not."""
    page = ("[ok](docs/models.md#search-spaces) [gone](docs/nowhere.md) [bad anchor](docs/models.md#no-such-part)\n"
            "`benchmarks/core/io.py` `core/stats.py` `models/nothing.py` `docs/` `final/pairwise.md`\n"
            "`models.search_space(name)` `models.search.NoSuch` `metrics.json` `python -m benchmarks run`\n"
            "```\n`models/in_a_code_block.py`\n```\n")
    assert broken_references(ROOT / "README.md", page) == [
        ("link", "docs/nowhere.md"), ("anchor", "docs/models.md#no-such-part"), ("path", "models/nothing.py"),
        ("symbol", "models.search.NoSuch")]
    assert slug("Using a trained model") == "using-a-trained-model" and slug("What `run` writes") == "what-run-writes"

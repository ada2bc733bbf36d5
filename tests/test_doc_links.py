"""Every relative link of README.md and docs/*.md points at a file of the repository, and a
``#fragment`` at a heading of that file. The README is short and links into docs/, and text
moves between pages: a moved section must not leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:...


def links(text: str) -> list[str]:
    """The targets of the markdown links and images of ``text``, outside code."""
    prose = _CODE.sub("", _FENCE.sub("", text))
    return [target for target in _LINK.findall(prose) if not _EXTERNAL.match(target)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings (a repeated heading gets ``-1``, ``-2``...)."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _FENCE.sub("", text), re.M):
        base = anchor = slug(heading)
        n = 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return found


def broken(page: Path, text: str) -> list[str]:
    """The links of ``page`` (its content ``text``) that resolve to nothing."""
    dead = []
    for target in links(text):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (
            fragment
            and file.suffix == ".md"
            and fragment not in anchors(file.read_text() if path else text)
        ):
            dead.append(target)
    return dead


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken(page, page.read_text()) == []


def test_the_readme_links_into_docs():
    targets = {t.partition("#")[0] for t in links((REPO / "README.md").read_text())}
    assert {"docs/settings.md", "docs/architecture.md", "docs/daemon.md"} <= targets


def test_a_dead_link_is_found():
    """The check can fail: a missing file, a missing heading; code and URLs are not links."""
    page = REPO / "docs" / "settings.md"
    text = (
        "# Title\n\nSee [api](api.md), [gone](gone.md), [top](#title), [nowhere](#nowhere),\n"
        "[a heading](storage.md#polling-costs), [no heading](storage.md#no-such-part),\n"
        "[web](https://example.org/x.md) and `[code](code.md)`.\n\n```\n[fenced](f.md)\n```\n"
    )
    assert broken(page, text) == ["gone.md", "#nowhere", "storage.md#no-such-part"]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Model backends (`MODEL_BACKEND`)", "model-backends-model_backend"),
        (
            "The people library: one person across every video",
            "the-people-library-one-person-across-every-video",
        ),
        (
            "What changed, and the figures that chose it",
            "what-changed-and-the-figures-that-chose-it",
        ),
    ],
)
def test_anchors_are_githubs(heading, anchor):
    assert slug(heading) == anchor

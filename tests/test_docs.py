"""The README stays a short front door, and every relative link of the documentation leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
DOC_PAGES = sorted((REPO / "docs").glob("*.md"))
LINKING_PAGES = [README, *DOC_PAGES, REPO / "config/README.md", REPO / "profiles/slurm/README.md"]
FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """Markdown without its fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of ``page``, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), flags=re.M):
        slug = github_slug(heading)
        result.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return result


def relative_links(page: Path) -> list[str]:
    return [link for link in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z]+:", link)]


def test_readme_is_a_short_front_door():
    assert README.stat().st_size <= 20_000


@pytest.mark.parametrize("page", LINKING_PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page):
    broken = []
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no file {target}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in relative_links(README)}
    assert [page.name for page in DOC_PAGES if page.resolve() not in linked] == []


def test_the_link_check_sees_broken_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A `b` title: here\n\n## A b title here\n\n[ok](#a-b-title-here-1) [gone](missing.md)\n"
                    "```\n# not a heading\n[not a link](nowhere.md)\n```\n")
    assert anchors(page) == {"a-b-title-here", "a-b-title-here-1"}
    assert relative_links(page) == ["#a-b-title-here-1", "missing.md"]

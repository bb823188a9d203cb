"""The README is short (what the project is, the quick start, features, results, links into the docs); what it
used to hold is in docs/, tested by tests/test_docs.py."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
QUICK_START = [
    "pip install -e . && python -m scripts.train --algo ppo --env MiniGrid-DoorKey-5x5-v0 --model DoorKey "
    "--save-interval 10 --frames 150000",
    'pip install -e ".[test]" && ruff check . && ruff format --check . && python -m pytest -q',
]


def read():
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_the_readme_is_at_most_200_lines():
    assert len(read().splitlines()) <= 200


def test_the_quick_start_is_the_two_set_up_commands():
    text = read()
    section = text[text.index("## Quick start") : text.index("\n## ", text.index("## Quick start") + 1)]
    assert re.findall(r"```bash\n(.*?)\n```", section, re.S) == QUICK_START


def test_the_ci_runs_the_readme_test_command():
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        assert QUICK_START[1] in f.read()


def test_every_link_of_the_readme_into_the_repository_exists():
    links = [target for target in re.findall(r"\]\(([^)]+)\)", read()) if "://" not in target]
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert os.path.exists(os.path.join(REPO, link.split("#")[0])), f"README links to a missing {link}"


def test_the_readme_links_to_every_page_of_the_site():
    with open(os.path.join(REPO, "mkdocs.yml"), encoding="utf-8") as f:
        nav = re.findall(r":\s+([\w/-]+\.md)\s*$", f.read(), re.M)
    reports = {"RESULTS.md", "SUITE.md", "suite_findings.md"}  # the benchmarks' reports, linked from results.md
    own = [page for page in nav if not page.startswith("api/") and page not in reports]
    text = read()
    missing = [page for page in own if f"(docs/{page})" not in text]
    assert not missing, f"the README does not link to {missing}"

"""MkDocs hook: the docstrings are numpy-style with prose between the parameters ("Keyword-only:", a closing
paragraph), which griffe reports as lines it "could not parse". Those lines are rendered as text all the same,
so that one warning is dropped; every other warning (a broken link, a missing page, an object that cannot be
found) still fails `mkdocs build --strict`."""

import logging


class _DropProseLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Could not parse line" not in record.getMessage()


def on_startup(command, dirty):
    logging.getLogger("mkdocs.plugins.griffe").addFilter(_DropProseLines())

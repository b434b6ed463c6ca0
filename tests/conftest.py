import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


@pytest.fixture(autouse=True)
def english_messages(monkeypatch):
    """Run every test in English unless it sets a locale itself, since assertions match English text."""
    for name in LOCALE_VARIABLES:
        monkeypatch.delenv(name, raising=False)

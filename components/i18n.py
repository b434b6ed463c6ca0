"""Message catalogs for user-facing text (configuration errors, policy violations, CLI output).

The language comes from LANGUAGE, LC_ALL, LC_MESSAGES or LANG, in the order gettext reads them;
English is used when none is set or no catalog matches.
"""

from __future__ import annotations

import gettext
import pathlib

DOMAIN = "tkg-gpu"
LOCALE_DIR = pathlib.Path(__file__).resolve().parent.parent / "locale"


def translation() -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), fallback=True)


def _(message: str) -> str:
    """Translate a message into the user's language; the lookup follows the environment at call time."""
    return translation().gettext(message)

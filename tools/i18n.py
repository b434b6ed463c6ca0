"""Extract, merge and compile the gettext catalogs of the ``tkg-gpu`` domain with Babel.

Usage, from any directory, with the project's virtualenv (Babel is a development requirement):

    .venv/bin/python tools/i18n.py extract   # rewrite locale/tkg-gpu.pot, merge it into every .po
    .venv/bin/python tools/i18n.py compile   # build each locale/<lang>/LC_MESSAGES/tkg-gpu.mo

``compile`` fails, and leaves that language's .mo as it was, when a catalog has an untranslated or fuzzy
message or a translation whose ``{placeholders}`` differ from its msgid. A missing translation then
shows up in ``make`` instead of as English text, and a lost placeholder instead of a KeyError, at run time.
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import string
import sys

from babel.messages import frontend, mofile, pofile
from babel.messages.catalog import Message

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOMAIN = "tkg-gpu"
LOCALE_DIR = ROOT / "locale"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
HEADER_COMMENT = "# Messages that tkg-gpu shows to users, for translation into each language.\n#"
# Every file whose strings are wrapped in _() for users to read.
SOURCES = ("components", "policies/rules.py")


def extract() -> int:
    """Rewrite the template from the sources, then merge it into each language's catalog."""
    status = frontend.CommandLineInterface().run([
        "pybabel", "--quiet", "extract",
        "--project", DOMAIN,
        "--copyright-holder", "the tkg-gpu authors",
        "--header-comment", HEADER_COMMENT,
        "--add-comments", "TRANSLATORS:",
        "--sort-by-file",
        "--output-file", str(TEMPLATE.relative_to(ROOT)),
        *SOURCES,
    ])
    if status:
        return int(status)

    if not any(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        return 0

    # "update" keeps existing translations and marks changed messages fuzzy, which blocks "compile".
    status = frontend.CommandLineInterface().run([
        "pybabel", "--quiet", "update",
        "--domain", DOMAIN,
        "--input-file", str(TEMPLATE.relative_to(ROOT)),
        "--output-dir", str(LOCALE_DIR.relative_to(ROOT)),
        "--ignore-obsolete",
    ])

    return int(status or 0)


def _as_tuple(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def _is_complete(message: Message) -> bool:
    return not message.fuzzy and all(_as_tuple(message.string))


def _placeholders(text: str) -> set[tuple[str, str | None, str]]:
    return {(name, conversion, spec) for _text, name, spec, conversion in string.Formatter().parse(text) if name is not None}


def _placeholders_match(message: Message) -> bool:
    """Check that a translation keeps the str.format fields of its msgid, which .format() fills at run time."""
    expected = set().union(*(_placeholders(text) for text in _as_tuple(message.id)))

    return all(_placeholders(text) == expected for text in _as_tuple(message.string))


def compile_catalogs() -> int:
    """Compile every ``.po`` into the ``.mo`` that gettext loads, rejecting incomplete catalogs."""
    failed = False
    for po_path in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        with po_path.open("rb") as stream:
            catalog = pofile.read_po(stream, domain=DOMAIN)

        problems = [
            f"{po_path.relative_to(ROOT)}: {'fuzzy' if message.fuzzy else 'untranslated'}: {message.id!r}"
            for message in catalog
            if message.id and not _is_complete(message)
        ]
        problems += [
            f"{po_path.relative_to(ROOT)}: placeholders differ from the msgid: {message.id!r}"
            for message in catalog
            if message.id and _is_complete(message) and not _placeholders_match(message)
        ]
        for message, errors in catalog.check():
            problems += [f"{po_path.relative_to(ROOT)}: {error}: {message.id!r}" for error in errors]

        if problems:
            print("\n".join(problems), file=sys.stderr)
            failed = True
            continue

        compiled = io.BytesIO()
        mofile.write_mo(compiled, catalog)
        po_path.with_suffix(".mo").write_bytes(compiled.getvalue())

    if failed:
        print("fix the messages above in the .po files, then run tools/i18n.py compile again", file=sys.stderr)

    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Manage the tkg-gpu gettext catalogs under locale/.")
    parser.add_argument("command", choices=("extract", "compile"))
    args = parser.parse_args()
    # Babel writes the source locations into the template relative to the working directory.
    os.chdir(ROOT)

    if args.command == "extract":
        return extract()

    return compile_catalogs()


if __name__ == "__main__":
    sys.exit(main())

"""Progress and status messages, written to stderr as the Tanzu CLI does (tkg/log/writer.go)."""

from __future__ import annotations

import sys


class ProgressLog:
    """Writes messages to stderr and, when --log-file is given, appends them to that file."""

    def __init__(self, log_file: str | None = None):
        self.log_file = log_file

    def info(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        if self.log_file:
            try:
                with open(self.log_file, "a", encoding="utf-8") as stream:
                    stream.write(message + "\n")
            except OSError as error:
                sys.stderr.write(f"Warning: unable to write to log file {self.log_file!r}: {error.strerror}\n")
                self.log_file = None

    def warning(self, message: str) -> None:
        self.info(f"Warning: {message}")

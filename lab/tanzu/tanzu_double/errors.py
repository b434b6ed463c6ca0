"""Exception types that end a command with exit code 1."""


class CliError(Exception):
    """A failed command. main() prints `Error: <message>` on stderr and exits with 1."""


class UsageError(CliError):
    """Bad flags or arguments, reported in cobra's wording."""

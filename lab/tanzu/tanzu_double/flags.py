"""Command tree and flag parsing with cobra/pflag behaviour on top of argparse.

The real plugin is a cobra program, so callers see pflag's rules. Flags may come before or
after positional arguments. `--flag=value`, `--flag value`, `-f value` and `-fvalue` all work,
and boolean flags also take `--flag=true|false`. Unknown flags are errors, and `-h/--help`
prints help to stdout with exit code 0. Error texts use cobra's wording because scripts
that drive the real CLI match on them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable

from .errors import UsageError
from .godur import GoDurationError, format_go_duration, parse_go_duration

# strconv.ParseBool accepts exactly these spellings.
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

_TYPE_NAMES = {"string": "string", "int": "int", "int32": "int32", "duration": "duration", "bool": ""}


@dataclass(frozen=True)
class Flag:
    """One pflag-style flag. `kind` is string, bool, int, int32 or duration."""

    name: str
    shorthand: str = ""
    kind: str = "string"
    default: object = None
    usage: str = ""
    hidden: bool = False
    required: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def display(self) -> str:
        """The flag as pflag names it in errors: `-t, --timeout` or `--tkr`."""
        if self.shorthand:
            return f"-{self.shorthand}, --{self.name}"
        return f"--{self.name}"


@dataclass
class Invocation:
    """Parsed flag values (by Flag.dest) and positional arguments of one command."""

    command: "Command"
    values: dict[str, object]
    args: list[str]

    def get(self, dest: str) -> object:
        return self.values.get(dest)


ArgsRule = Callable[[list[str]], "str | None"]


def exact_args(count: int) -> ArgsRule:
    def check(args: list[str]) -> str | None:
        if len(args) != count:
            return f"accepts {count} arg(s), received {len(args)}"
        return None

    return check


@dataclass
class Command:
    """A node of the command tree. Nodes without `run` only group subcommands."""

    name: str
    use: str
    short: str
    long: str = ""
    example: str = ""
    aliases: tuple[str, ...] = ()
    flags: tuple[Flag, ...] = ()
    persistent_flags: tuple[Flag, ...] = ()
    args_rule: ArgsRule | None = None
    run: Callable[[Invocation], int] | None = None
    children: list["Command"] = field(default_factory=list)
    parent: "Command | None" = None

    def add(self, *commands: "Command") -> "Command":
        for command in commands:
            command.parent = self
            self.children.append(command)
        return self

    def find_child(self, word: str) -> "Command | None":
        for child in self.children:
            if word == child.name or word in child.aliases:
                return child
        return None

    @property
    def path(self) -> str:
        if self.parent is None:
            return self.name
        return f"{self.parent.path} {self.name}"

    def all_flags(self) -> list[Flag]:
        """Local flags, then persistent flags inherited from ancestors."""
        result = list(self.flags)
        node = self
        while node is not None:
            result.extend(node.persistent_flags)
            node = node.parent
        return result

    def inherited_flags(self) -> list[Flag]:
        """Persistent flags of the ancestors (the command's own ones count as local)."""
        result: list[Flag] = []
        node = self.parent
        while node is not None:
            result.extend(node.persistent_flags)
            node = node.parent
        return result


class _RaisingParser(argparse.ArgumentParser):
    """argparse parser that raises UsageError with pflag wording instead of exiting."""

    def __init__(self, flags: list[Flag]):
        super().__init__(add_help=False, allow_abbrev=False, prog="tanzu")
        self._flags_by_option: dict[str, Flag] = {}
        for flag in flags:
            self._flags_by_option[f"--{flag.name}"] = flag
            if flag.shorthand:
                self._flags_by_option[f"-{flag.shorthand}"] = flag

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse formats errors as "argument -f/--file: <detail>".
        if message.startswith("argument "):
            option_part, _, detail = message[len("argument ") :].partition(": ")
            long_option = option_part.split("/")[-1]
            flag = self._flags_by_option.get(long_option)
            name = f"--{flag.name}" if flag else long_option
            if detail.startswith("expected one argument"):
                raise UsageError(f"flag needs an argument: {name}")
            raise UsageError(detail)
        raise UsageError(message)


def _int_parser(flag: Flag, bits: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'invalid argument "{text}" for "{flag.display}" flag: '
                f'strconv.ParseInt: parsing "{text}": invalid syntax'
            ) from None
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise argparse.ArgumentTypeError(
                f'invalid argument "{text}" for "{flag.display}" flag: '
                f'strconv.ParseInt: parsing "{text}": value out of range'
            )
        return value

    return parse


def _duration_parser(flag: Flag) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_go_duration(text)
        except GoDurationError as error:
            raise argparse.ArgumentTypeError(
                f'invalid argument "{text}" for "{flag.display}" flag: {error}'
            ) from None

    return parse


def _normalize_bool_values(argv: list[str], flags: list[Flag]) -> list[str]:
    """Rewrite `--flag=true|false` of boolean flags, which argparse cannot take."""
    bool_names = {f"--{flag.name}": flag for flag in flags if flag.kind == "bool"}
    result: list[str] = []
    for word in argv:
        option, equals, value = word.partition("=")
        if equals and option in bool_names:
            if value in _GO_TRUE:
                result.append(option)
                continue
            if value in _GO_FALSE:
                continue
            flag = bool_names[option]
            raise UsageError(
                f'invalid argument "{value}" for "{flag.display}" flag: '
                f'strconv.ParseBool: parsing "{value}": invalid syntax'
            )
        result.append(word)
    return result


def _unknown_flag_message(word: str) -> str:
    if word.startswith("--"):
        return f"unknown flag: {word.split('=', 1)[0]}"
    return f"unknown shorthand flag: '{word[1]}' in {word}"


def wants_help(argv: list[str]) -> bool:
    for word in argv:
        if word == "--":
            return False
        if word in ("-h", "--help"):
            return True
    return False


def parse_command_line(command: Command, argv: list[str]) -> Invocation:
    """Parse flags and positional arguments of `command`, raising UsageError like cobra."""
    flags = command.all_flags()
    positional_tail: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, positional_tail = argv[:cut], argv[cut + 1 :]
    argv = _normalize_bool_values(argv, flags)

    parser = _RaisingParser(flags)
    for flag in flags:
        options = [f"--{flag.name}"]
        if flag.shorthand:
            options.insert(0, f"-{flag.shorthand}")
        if flag.kind == "bool":
            parser.add_argument(*options, dest=flag.dest, action="store_true", default=bool(flag.default))
        elif flag.kind in ("int", "int32"):
            bits = 32 if flag.kind == "int32" else 64
            parser.add_argument(*options, dest=flag.dest, type=_int_parser(flag, bits), default=flag.default)
        elif flag.kind == "duration":
            parser.add_argument(*options, dest=flag.dest, type=_duration_parser(flag), default=flag.default)
        else:
            parser.add_argument(*options, dest=flag.dest, type=str, default=flag.default)

    namespace, extras = parser.parse_known_args(argv)
    positional: list[str] = []
    for word in extras:
        if word.startswith("-") and len(word) > 1:
            raise UsageError(_unknown_flag_message(word))
        positional.append(word)
    positional.extend(positional_tail)

    values = vars(namespace)
    values["__set__"] = _flags_present(argv, flags)

    # cobra checks the argument count before required flags.
    if command.args_rule is not None:
        problem = command.args_rule(positional)
        if problem:
            raise UsageError(problem)

    missing = [flag.name for flag in flags if flag.required and flag.dest not in values["__set__"]]
    if missing:
        quoted = ", ".join(f'"{name}"' for name in missing)
        raise UsageError(f"required flag(s) {quoted} not set")
    return Invocation(command=command, values=values, args=positional)


def _flags_present(argv: list[str], flags: list[Flag]) -> set[str]:
    present: set[str] = set()
    for word in argv:
        for flag in flags:
            if word == f"--{flag.name}" or word.startswith(f"--{flag.name}="):
                present.add(flag.dest)
            elif flag.shorthand and word.startswith(f"-{flag.shorthand}") and not word.startswith("--"):
                present.add(flag.dest)
    return present


def _flag_usage_lines(flags: list[Flag]) -> list[str]:
    rows: list[tuple[str, str]] = []
    for flag in flags:
        if flag.hidden:
            continue
        left = f"  -{flag.shorthand}, --{flag.name}" if flag.shorthand else f"      --{flag.name}"
        type_name = _TYPE_NAMES.get(flag.kind, flag.kind)
        if type_name:
            left += f" {type_name}"
        usage = flag.usage
        if flag.kind == "duration" and flag.default is not None:
            usage += f" (default {format_go_duration(float(flag.default))})"
        elif flag.kind == "string" and flag.default:
            usage += f' (default "{flag.default}")'
        rows.append((left, usage))
    if not rows:
        return []
    width = max(len(left) for left, _ in rows)
    return [f"{left.ljust(width)}   {usage}".rstrip() for left, usage in rows]


def render_help(command: Command) -> str:
    """Help text in the layout of cobra's default help template."""
    lines: list[str] = [command.long or command.short, "", "Usage:"]
    if command.run is not None:
        lines.append(f"  {_use_line(command)} [flags]")
    if command.children:
        lines.append(f"  {command.path} [command]")
    if command.aliases:
        lines += ["", "Aliases:", f"  {', '.join((command.name,) + command.aliases)}"]
    if command.example:
        lines += ["", "Examples:", command.example.rstrip("\n")]
    visible_children = [child for child in command.children]
    if visible_children:
        lines += ["", "Available Commands:"]
        width = max(len(child.name) for child in visible_children)
        for child in visible_children:
            lines.append(f"  {child.name.ljust(width)}  {child.short}")
    help_flag = Flag("help", "h", "bool", False, f"help for {command.name}")
    local = _flag_usage_lines(list(command.flags) + list(command.persistent_flags) + [help_flag])
    if local:
        lines += ["", "Flags:"] + local
    inherited = _flag_usage_lines(command.inherited_flags())
    if inherited:
        lines += ["", "Global Flags:"] + inherited
    if command.children:
        lines += ["", f'Use "{command.path} [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"


def _use_line(command: Command) -> str:
    prefix = command.parent.path + " " if command.parent else ""
    return prefix + command.use

"""What every command shares: the exit-code table, --json output, --env-file, one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import Database

PROG = "privacy-middleware"
# Optional packages, by the extra that installs them (pyproject.toml).
EXTRAS = {"rich": "cli", "uvicorn": "server", "asyncpg": "postgres", "django": "django"}


class ExitCode(IntEnum):
    """The one exit-code table (docs/cli.md). `audit verify` keeps its own finer table."""

    OK = 0
    FINDING = 1  # a check found problems, or the work could not be done
    USAGE = 2  # bad arguments or bad configuration: nothing was done
    INTERRUPTED = 130


class OperatorError(Exception):
    """A mistake the operator can fix (target exists, no tables, unknown name): one line, no traceback."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FINDING) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Output:
    """Human text on the console, or with --json one JSON document on stdout for scripts."""

    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode

    @classmethod
    def of(cls, args: argparse.Namespace) -> Output:
        return cls(bool(getattr(args, "json", False)))

    def result(self, data: Any, text: str | Iterable[str] | None = None) -> None:
        """The command's result: `data` with --json, otherwise `text` (or `data` rendered as lines)."""
        if self.json_mode:
            sys.stdout.buffer.write(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2) + b"\n")
            sys.stdout.flush()
            return
        if text is None:
            text = _lines(data)
        for line in [text] if isinstance(text, str) else text:
            print(line)

    def note(self, message: str) -> None:
        """Progress or a hint: stderr, so stdout stays the result."""
        if not self.json_mode:
            print(message, file=sys.stderr)

    def error(self, message: str, exit_code: int) -> None:
        print(f"{PROG}: error: {message}", file=sys.stderr)
        if self.json_mode:
            sys.stdout.buffer.write(orjson.dumps({"error": message, "exit_code": exit_code}) + b"\n")
            sys.stdout.flush()


def _lines(data: Any, indent: str = "") -> list[str]:
    if isinstance(data, Mapping):
        lines = []
        for key, value in data.items():
            if isinstance(value, Mapping | list) and value:
                lines.append(f"{indent}{key}:")
                lines.extend(_lines(value, indent + "  "))
            else:
                lines.append(f"{indent}{key}: {value}")
        return lines
    if isinstance(data, list):
        out: list[str] = []
        for item in data:
            out.extend(_lines(item, indent) if isinstance(item, Mapping | list) else [f"{indent}{item}"])
        return out
    return [f"{indent}{data}"]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Give every leaf command `--json` and `--env-file` (they may also come before the command)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                add_common_options(child)
            return
    if parser.prog == PROG:
        return
    options = {a for action in parser._actions for a in action.option_strings}
    if "--json" not in options:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
    if "--env-file" not in options:
        parser.add_argument(
            "--env-file",
            action="append",
            default=argparse.SUPPRESS,
            metavar="FILE",
            help="read PRIVACY_* settings from this file first (repeatable; later files win)",
        )


def group(subparsers: Any, name: str, help: str) -> Any:
    """The sub-command parsers of group `name`, created if no module registered it yet."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
        return parser.add_subparsers(dest=f"{name}_command", required=True)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError(f"{name} is a command, not a group")


def parse_time(value: str) -> Any:
    """An ISO 8601 date or time (UTC when no offset is given), for --since/--until options."""
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date or time (2026-12-01T10:00)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def load_env_files(paths: Iterable[str]) -> list[str]:
    """Put the KEY=VALUE lines of each file into the environment (a named file wins); the names set."""
    from dotenv import dotenv_values

    names: list[str] = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise OperatorError(f"--env-file {path}: no such file", ExitCode.USAGE)
        for key, value in dotenv_values(file).items():
            if value is None:
                raise OperatorError(f"--env-file {path}: {key} has no value (write {key}=...)", ExitCode.USAGE)
            os.environ[key] = value
            names.append(key)
    return names


def settings() -> Settings:
    """The settings for a command; every configuration problem becomes one ConfigError."""
    from ..settings import Settings

    return Settings()


@asynccontextmanager
async def open_store(config: Settings, *, require_tables: bool = True) -> AsyncIterator[Database]:
    """The privacy store, reachable and (unless asked otherwise) migrated; disposed afterwards."""
    import sqlalchemy as sa

    from ..store import Database
    from ..store.tables import schema_version

    db = Database(config.database_url)
    try:
        await db.check()
        if require_tables:
            async with db.connect() as conn:
                present = await conn.run_sync(lambda sync: sa.inspect(sync).has_table(schema_version.name))
            if not present:
                raise OperatorError(
                    f"the privacy store at {db.display_url} has no tables: run `{PROG} db upgrade` first "
                    "(or point PRIVACY_DATABASE_URL at the right database)"
                )
        yield db
    finally:
        await db.dispose()


def run_command(func: Any, args: argparse.Namespace) -> int:
    """Run one command; operator mistakes become one line on stderr and an exit code from the table."""
    out = Output.of(args)
    try:
        load_env_files(getattr(args, "env_file", None) or [])
        return int(func(args))
    except OperatorError as exc:
        out.error(str(exc), exc.exit_code)
        return exc.exit_code
    except ConfigError as exc:
        out.error(str(exc), ExitCode.USAGE)
        return ExitCode.USAGE
    except FileExistsError as exc:
        out.error(str(exc) if exc.filename is None else f"{exc.filename} already exists", ExitCode.FINDING)
        return ExitCode.FINDING
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        out.error(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), ExitCode.FINDING)
        return ExitCode.FINDING
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        message = f"this command needs {exc.name}: pip install 'privacy-middleware[{extra}]'"
        out.error(message, ExitCode.USAGE)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED

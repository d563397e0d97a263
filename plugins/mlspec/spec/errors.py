"""SpecError: the one exception type a user sees for a bad spec. Every problem carries its location."""

from __future__ import annotations

from dataclasses import asdict, dataclass

QUOTE_CHARS = 60  # the most of a value a message quotes
MESSAGE_CHARS = 300  # where shorten() cuts a message that may quote a value in full (a library's)
MAX_MESSAGE_CHARS = 600  # no problem carries more, whoever wrote it: a safety net under quote()


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """repr(value), or a short prefix of it: a message never carries a whole long value (a 900 KB string in a
    message costs as much as the string, once per problem and once more per line printed)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, list | tuple | dict) and len(value) > 20:
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit + 2 else f"{text[:limit]}... ({len(text)} characters)"


def shorten(message: str, limit: int = MESSAGE_CHARS) -> str:
    """A message cut to `limit` characters (for text that may quote a value in full, e.g. a library's)."""
    return message if len(message) <= limit else message[: limit - 3] + "..."


@dataclass(frozen=True, order=True)
class SpecProblem:
    file: str
    line: int  # 1-based; 0 when the file could not be read at all
    column: int  # 1-based
    path: str  # dotted field path, e.g. "training.epochs" or "model.layers[2].conv2d"; "" for the document
    message: str
    severity: str = "error"  # "error" | "warning"

    def __post_init__(self) -> None:
        if len(self.message) > MAX_MESSAGE_CHARS:
            object.__setattr__(self, "message", shorten(self.message, MAX_MESSAGE_CHARS))
        if len(self.path) > MAX_MESSAGE_CHARS:
            object.__setattr__(self, "path", shorten(self.path, MAX_MESSAGE_CHARS))

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        severity = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {severity}{where}{self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


class SpecError(Exception):
    """One or more problems in a spec file, one `file:line:col: path: message` line each."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file if self.problems else ""

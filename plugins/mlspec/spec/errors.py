"""SpecError: the one exception type a user sees for a bad spec. Every problem carries its location."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class SpecProblem:
    file: str
    line: int  # 1-based; 0 when the file could not be read at all
    column: int  # 1-based
    path: str  # dotted field path, e.g. "training.epochs" or "model.layers[2].conv2d"; "" for the document
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"

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

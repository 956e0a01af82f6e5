"""The two kinds of failure a user sees: bad input (exit 2) and an infeasible instance (exit 1)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

MAX_PROBLEMS_SHOWN = 20
MAX_PROBLEM_CHARS = 300


def printable(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    """One line of `text` safe to print: control characters, lone surrogates and the like escaped
    (a newline in a YAML key or a stray byte stays visible but cannot break the terminal), cut at `limit`."""
    safe = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    safe = safe.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


class PlannerInputError(Exception):
    """Bad input: a file or a flag that cannot be used. Carries every problem found, each naming the field."""

    exit_code = 2

    def __init__(self, source: str | Path, problems: list[str]):
        self.source = str(source)
        self.problems = problems
        super().__init__(self.message())

    def message(self) -> str:
        """One short paragraph: the source, then one line per problem (the first MAX_PROBLEMS_SHOWN)."""
        lines = [f"{printable(self.source)}: {len(self.problems)} problem(s):"]
        lines += [f"  - {printable(p)}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"  ... and {len(self.problems) - MAX_PROBLEMS_SHOWN} more")
        return "\n".join(lines)


class InfeasibleError(Exception):
    """No plan satisfies the instance; `binding` names the limit and `explanation` the shortfall in user units."""

    exit_code = 1

    def __init__(self, explanation: str, binding: str = "unknown"):
        self.explanation = explanation
        self.binding = binding
        super().__init__(explanation)


def problems_from_validation(error: ValidationError) -> list[str]:
    """Turn a pydantic ValidationError into one readable line per problem: field, value, what is expected."""
    problems = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        elif item["type"] == "missing":
            message = "required field is missing"
        value = item.get("input")
        shown = "" if item["type"] in ("missing",) or isinstance(value, dict) else f" (got {value!r:.60})"
        problems.append(f"{field}: {message}{shown}")
    return problems


class SolverFailure(Exception):
    """HiGHS (or its interface) failed: not the user's input and not a proof of infeasibility (exit 3)."""

    exit_code = 3

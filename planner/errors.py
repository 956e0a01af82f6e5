"""The two kinds of failure a user sees: bad input (exit 2) and an infeasible instance (exit 1)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class PlannerInputError(Exception):
    """Bad input: a file or a flag that cannot be used. Carries every problem found, each naming the field."""

    exit_code = 2

    def __init__(self, source: str | Path, problems: list[str]):
        self.source = str(source)
        self.problems = problems
        super().__init__(self.message())

    def message(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
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

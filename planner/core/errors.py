"""The two kinds of failure a user sees: bad input (exit 2) and an infeasible instance (exit 1)."""

from __future__ import annotations

import datetime
import re
import reprlib
from pathlib import Path

from pydantic import ValidationError

MAX_PROBLEMS_SHOWN = 20
MAX_PROBLEM_CHARS = 300
MAX_VALUE_CHARS = 60  # a value quoted in a message


class _BoundedRepr(reprlib.Repr):
    """reprlib with small limits that never builds a large string: containers show their first items
    (so an alias-expanded YAML value costs a few dozen steps), strings and bytes are cut before quoting,
    and an integer of many digits is described by its size (repr() of one past 4,300 digits raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxtuple, self.maxlist, self.maxarray = 2, 4, 4, 4
        self.maxdict, self.maxset, self.maxfrozenset, self.maxdeque = 4, 4, 4, 4
        self.maxstring = self.maxother = self.maxlong = MAX_VALUE_CHARS

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1:,} digits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x: bytes, level: int) -> str:
        return repr(x[: self.maxstring]) + ("..." if len(x) > self.maxstring else "")

    def repr_instance(self, x: object, level: int) -> str:
        if isinstance(x, (bool, float, complex, type(None), datetime.date, datetime.time)):  # small reprs
            return repr(x)
        return f"<{type(x).__name__}>"  # anything else: its type, not a repr of unknown size


_REPR = _BoundedRepr()


def bounded_repr(value: object) -> str:
    """A short repr of any input value (at most about MAX_VALUE_CHARS characters), in time that does not
    depend on the value's size: the one way a message quotes a value it did not build itself."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def printable(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    """One line of `text` safe to print: control characters, lone surrogates and the like escaped
    (a newline in a YAML key or a stray byte stays visible but cannot break the terminal), cut at `limit`."""
    safe = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[: limit + 1])
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
    proven = True  # False when the search stopped on a limit (time, work) before proving it (planner.solve)

    def __init__(self, explanation: str, binding: str = "unknown"):
        self.explanation = explanation
        self.binding = binding
        super().__init__(explanation)


_UNION_TAG = re.compile(
    r"(int|float|str|bool|bytes|none|list|dict"
    r"|(literal|list|dict|tuple|set|frozenset|function-(before|after|plain|wrap)|is-instance|chain)\[.*\])",
    re.DOTALL,
)


def _is_union_tag(part, item: dict, position: int) -> bool:
    """Whether a pydantic error location part names a member of a union ("int", "list[int]",
    "literal['tdp','none']", "function-before[convert(), float]") rather than a
    field, a key or an index. An unknown field's own name (the last part) is the user's: never a tag."""
    if item["type"] == "extra_forbidden" and position == len(item["loc"]) - 1:
        return False
    return isinstance(part, str) and _UNION_TAG.fullmatch(part) is not None


def _union_merged(errors: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """Errors grouped by their location before its first union tag, in order. A value that fits no
    member of a union gets one error per member; in a group, only the members that got furthest into
    the value are kept (a list of one bad item: that item, not "not an integer"), so they say one thing."""
    groups: dict[tuple, list[tuple[tuple, dict]]] = {}
    for k, item in enumerate(errors):
        loc = tuple(item["loc"])
        tags = [_is_union_tag(part, item, j) for j, part in enumerate(loc)]
        if True not in tags:  # not a union member's: a problem of its own
            groups[(loc, k)] = [((), item)]
            continue
        cut = tags.index(True)
        rest = tuple(p for p, tag in zip(loc[cut:], tags[cut:]) if not tag)
        groups.setdefault((loc[:cut], None), []).append((rest, item))
    out = []
    for (head, _), members in groups.items():
        deepest = max(len(rest) for rest, _ in members)
        by_rest: dict[tuple, list[dict]] = {}
        for rest, item in members:
            if len(rest) == deepest:
                by_rest.setdefault(rest, []).append(item)
        out += [(head + rest, items) for rest, items in by_rest.items()]
    return out


def problems_from_validation(error: ValidationError, flags: bool = False) -> list[str]:
    """Turn a pydantic ValidationError into one readable line per problem: field, value, what is expected.

    With `flags` the values came from command-line flags: each line names the flag too, taken from the
    field's last name ("workload.min_tokens_per_s" -> "--min-tokens-per-s (workload.min_tokens_per_s)").
    A value that fits no member of a union (a power limit that is neither 'tdp' nor watts) is one line
    whose message lists what each member expects, and its location has no pydantic member tags."""
    problems = []
    for loc, items in _union_merged(error.errors()):
        field = ".".join(str(p) for p in loc) or "(top level)"
        names = [str(p) for p in loc if not isinstance(p, int)]
        if flags and names:
            field = f"--{names[-1].replace('_', '-')} ({field})"
        messages = []
        for item in items:
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field; remove it or check its spelling"
            elif item["type"] == "missing":
                message = "required field is missing"
            if message not in messages:
                messages.append(message)
        message = messages[0] if len(messages) == 1 else "; or ".join(messages)
        value = items[0].get("input")
        shown = (
            ""
            if items[0]["type"] in ("missing",) or isinstance(value, dict)
            else f" (got {bounded_repr(value)})"
        )
        problems.append(f"{field}: {message}{shown}")
    return problems


class SolverFailure(Exception):
    """HiGHS (or its interface) failed: not the user's input and not a proof of infeasibility (exit 3)."""

    exit_code = 3

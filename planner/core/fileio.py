"""Reading input files safely, checking output paths before work starts, and writing results atomically.

Every input file (YAML, JSON, CSV) is read by `read_text`: a regular file of at most MAX_INPUT_BYTES,
UTF-8. YAML and JSON mappings go through `read_mapping`, which also bounds YAML alias expansion and
rejects any number that is not finite or beyond MAX_MAGNITUDE, naming the field. Every JSON the planner
writes goes through `json_text`, which refuses NaN and infinity. Catalog names and paths are told apart
by `catalog_file`, and every output path of a command is checked by `check_output` before any work.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from planner.core.errors import PlannerInputError, bounded_repr, printable

MAX_INPUT_BYTES = 16_000_000  # 16 MB: a plan of 2,000 groups is about 3 MB; anything larger is not ours
MAX_ALIAS_VALUES = 1_000_000  # values of a YAML document once its aliases are written out
MAX_NESTING = 500  # levels of lists and mappings in a YAML document (ours use fewer than 10)
MAX_MAGNITUDE = 1e300  # the largest number accepted anywhere (its square root keeps products finite)
MAX_NAME_BYTES = 255  # one path component, as Linux, macOS and Windows file systems allow

# the C parser when PyYAML has it (7x faster, and libyaml caps nesting at 1,000 levels); same constructor
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---------------------------------------------------------------------------------------------- input


def read_text(path: str | Path) -> str:
    """The UTF-8 text of an input file; a missing, unreadable, oversized or non-UTF-8 file is a
    PlannerInputError naming it. At most MAX_INPUT_BYTES are read, whatever the file claims its size is."""
    path = Path(path)
    if not is_file(path):
        raise PlannerInputError(path, ["file not found (or not a regular file); check the path"])
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise PlannerInputError(path, [f"cannot read: {exc.strerror}"]) from None
    if len(data) > MAX_INPUT_BYTES:
        raise PlannerInputError(
            path,
            [
                f"larger than {MAX_INPUT_BYTES:,} bytes, the limit for an input file; "
                "check that this is the file you meant"
            ],
        )
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as exc:
        raise PlannerInputError(
            path, [f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"]
        ) from None


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML or JSON file that must hold a mapping; every failure becomes a PlannerInputError.

    Beyond the syntax: YAML aliases may expand to at most MAX_ALIAS_VALUES values (a "billion laughs"
    file is refused before anything walks it), and every number must be finite and at most MAX_MAGNITUDE
    in size (NaN, .inf, 1e999 or a 400-digit integer is refused, naming its field)."""
    path = Path(path)
    text = read_text(path)
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if path.suffix == ".json" else _load_yaml(text)
    except yaml.YAMLError as exc:
        where = " ".join(str(exc).split())
        if "maximum nesting depth" in where:  # libyaml's limit
            where = f"nested too deeply ({where})"
        raise PlannerInputError(path, [f"not valid {kind}: {where}"]) from None
    except ValueError as exc:
        # json's syntax errors, and values the parsers reject while building them: an integer of more
        # than 4300 digits, a YAML timestamp such as 2020-13-45; and our alias bound
        where = " ".join(str(exc).split())
        raise PlannerInputError(path, [f"not valid {kind}: {where}"]) from None
    except RecursionError:
        raise PlannerInputError(path, [f"not valid {kind}: nested too deeply"]) from None
    if data is None:
        raise PlannerInputError(path, ["the file is empty (or only comments); expected a mapping of fields"])
    if not isinstance(data, dict):
        raise PlannerInputError(
            path, [f"expected a mapping of fields at the top level, got {type(data).__name__}"]
        )
    problems = number_problems(data)
    if problems:
        raise PlannerInputError(path, problems)
    return data


def _load_yaml(text: str) -> Any:
    """yaml.safe_load, with the composed document's alias expansion bounded before it is constructed."""
    loader = _YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Raise ValueError if the document nests more than MAX_NESTING levels, or its aliases expand to more
    than MAX_ALIAS_VALUES values or refer to a value that contains them. Linear in the number of distinct nodes (sizes are memoized)."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, children_done, depth = stack.pop()
        if depth > MAX_NESTING:  # not every libyaml build caps it; construction recurses per level
            raise ValueError(
                f"nested too deeply (more than {MAX_NESTING} levels at line {node.start_mark.line + 1})"
            )
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_ALIAS_VALUES:
                raise ValueError(
                    f"its aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values "
                    f"(line {node.start_mark.line + 1}); write the values out instead"
                )
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise ValueError(
                f"an alias (*name) refers to a value that contains it (line {node.start_mark.line + 1})"
            )
        open_nodes.add(key)
        stack.append((node, True, depth))
        stack.extend((c, False, depth + 1) for c in children if id(c) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def number_problems(data: Any, where: str = "") -> list[str]:
    """One problem per number in `data` (nested dicts and lists) that is not finite or exceeds
    MAX_MAGNITUDE, each naming its field as pydantic does ("memory.0.capacity"). Linear in its size."""
    problems: list[str] = []
    stack: list[tuple[str, Any]] = [(where, data)]
    while stack:
        field, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                name = f"{field}.{k}" if field else str(k)
                stack.append((name, v))
                stack.append((f"{name} (the key)", k))
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend((f"{field}.{i}" if field else str(i), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{field or '(top level)'}: {value} is not a finite number; give a number")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_MAGNITUDE:
            problems.append(
                f"{field or '(top level)'}: {bounded_repr(value)} is out of range (numbers are accepted "
                f"up to {MAX_MAGNITUDE:g} in size); check the value"
            )
    return sorted(problems)


def is_file(path: str | Path) -> bool:
    """Path.is_file that answers False, rather than raising, for a name the OS rejects (too long, say)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


# A catalog name: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit.
CATALOG_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def catalog_file(directory: Path, name_or_path: str | Path, what: str, suffixes: Sequence[str]) -> Path:
    """The file a catalog name or a path refers to.

    A *name* matches CATALOG_NAME (so it holds no path separator and cannot be '..') and does not end in
    one of `suffixes`; it is looked up only in `directory`, as NAME + suffixes[0], so it never reaches
    outside that folder. Anything else is a *path*: it must end in one of `suffixes` and exist (for model
    configs, suffixes (".json",), a folder holding a config.json is accepted too). A miss is a
    PlannerInputError that names the value and says what would work."""
    text = str(name_or_path)
    names = ", ".join(sorted(p.stem for p in directory.glob(f"*{suffixes[0]}")))
    endings = either(suffixes)
    if CATALOG_NAME.fullmatch(text) and not text.endswith(tuple(suffixes)):
        shipped = directory / f"{text}{suffixes[0]}"
        if is_file(shipped):
            return shipped
        raise PlannerInputError(
            text,
            [
                f"no such {what}: expected one of {names}, or a path to a {endings} file "
                f"(./{text}{suffixes[0]} for a file in this folder)"
            ],
        )
    path = Path(text)
    if suffixes[0] == ".json" and is_file(path / "config.json"):
        return path / "config.json"
    if not text.endswith(tuple(suffixes)):
        raise PlannerInputError(
            text,
            [
                f"no such {what}: not a name in the catalog ({names}; a name has lowercase letters, digits, "
                f"'.', '_', '-') and not a path to a {endings} file (a path must end in {endings})"
            ],
        )
    if not is_file(path):
        raise PlannerInputError(text, [f"no such {what} file (or not a regular file); check the path"])
    return path


def either(choices: Sequence[str]) -> str:
    """'.yaml, .yml or .json'."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def relative_to_file(value: str, base: Path | None) -> str:
    """A relative path written in an input file, taken relative to that file's folder (`base`) when it
    exists there; names and absolute paths are returned as they are."""
    if base is not None and ("/" in value or value.endswith((".json", ".yaml", ".yml"))):
        candidate = base / value
        if is_file(candidate) or is_file(candidate / "config.json"):
            return str(candidate)
    return value


def project_root() -> Path:
    """The repository root (where graphs/ and instances/ live)."""
    return Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- output


def check_output(
    path: str | Path | None,
    flag: str,
    directory: bool = False,
    suffixes: Sequence[str] = (),
    files: Sequence[str] = (),
) -> None:
    """Raise PlannerInputError (naming `flag` and the path) now, before any work, if a result could not
    be written to `path`: a name too long, a folder where a file is meant (or a file where a folder is),
    something that is not a regular file, a folder that cannot be written (read-only, /proc, missing
    permissions), a wrong suffix. With `directory`, `path` is a folder and `files` the names written in it.
    Checked by writing and removing a small temporary file in the folder that will receive the result."""
    if path is None:
        return
    path = Path(path)
    problem = _output_problem(path, directory, suffixes)
    for name in files if directory and problem is None else ():
        problem = _output_problem(path / name, False, ())
    if problem is not None:
        raise PlannerInputError(flag, [f"{printable(str(path), 200)}: {problem}"])


def _output_problem(path: Path, directory: bool, suffixes: Sequence[str]) -> str | None:
    """Why `path` cannot receive an output (a file, or with `directory` a folder), or None."""
    if suffixes and not directory and path.suffix not in suffixes:
        return f"the file name must end in {either(suffixes)}"
    text = str(path)
    if "\x00" in text:
        return "the path contains a NUL character"
    long = [p for p in path.parts if len(os.fsencode(p)) > MAX_NAME_BYTES]
    if long:
        return f"a name of {len(os.fsencode(long[0])):,} bytes; file systems allow {MAX_NAME_BYTES} per name"
    try:
        if path.exists() or path.is_symlink():
            if directory and not path.is_dir():
                return "exists and is not a folder; give a folder"
            if not directory and path.is_dir():
                return "is a folder; give a file name (inside it, say)"
            if not directory and not path.is_file():
                return "exists and is not a regular file (a device, a pipe or a broken link)"
        folder = path if directory else path.parent
        existing = folder
        while not existing.exists():  # the folders that write_*_atomic will create
            if existing.is_symlink():
                return f"{existing} is a broken link"
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is a file, so no folder can be made under it"
        fd, probe = tempfile.mkstemp(prefix=".planner-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write there: {exc.strerror or exc}"
    except ValueError as exc:  # a name the OS API rejects outright
        return f"not a usable path: {exc}"
    return None


def json_text(data: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """JSON of `data` for output: NumPy scalars as numbers, never NaN or Infinity (not JSON). A non-finite
    number is a bug here, since every input is finite: raise ValueError naming where it is. Where a value is
    legitimately undefined the caller writes None (null)."""
    try:
        return json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=False, default=_plain)
    except ValueError:
        found = number_problems(_plain_tree(data))
        raise ValueError(f"output holds a number JSON cannot carry: {'; '.join(found[:3])}") from None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plain_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_tree(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` atomically (see write_bytes_atomic)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename: never a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temp name stays short whatever the target's length (a 250-byte name plus a suffix would not fit)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

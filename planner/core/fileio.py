"""Reading YAML/JSON safely and writing result files atomically (temp file + rename)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from planner.core.errors import PlannerInputError


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML or JSON file that must hold a mapping; every failure becomes a PlannerInputError."""
    path = Path(path)
    if not is_file(path):
        raise PlannerInputError(path, ["file not found (or not a regular file); check the path"])
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as exc:
        raise PlannerInputError(
            path, [f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"]
        ) from None
    except OSError as exc:
        raise PlannerInputError(path, [f"cannot read: {exc.strerror}"]) from None
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = " ".join(str(exc).split())
        raise PlannerInputError(path, [f"not valid {kind}: {where}"]) from None
    except ValueError as exc:
        # json's syntax errors, and values the parsers reject while building them: an integer of more
        # than 4300 digits, a YAML timestamp such as 2020-13-45
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
    return data


def is_file(path: str | Path) -> bool:
    """Path.is_file that answers False, rather than raising, for a name the OS rejects (too long, say)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` atomically (see write_bytes_atomic)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename: never a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
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


def project_root() -> Path:
    """The repository root (where graphs/ and instances/ live)."""
    return Path(__file__).resolve().parents[2]

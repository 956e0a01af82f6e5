"""Readable unit strings ("3.35 TB/s", "80 GiB", "3.9 pJ/bit") to SI floats, in one place.

Prefixes are SI (1 GB = 1e9 B) unless the string says GiB/MiB/KiB (powers of two), as pint does.
Plain numbers are taken to be in the field's base unit (bytes, bytes/s, pJ/bit, FLOP/s, pJ/FLOP, W, s).
"""

from __future__ import annotations

import math
import re
import sys
from functools import lru_cache
from typing import Annotated

from pydantic import BeforeValidator

from planner.core.errors import bounded_repr


@lru_cache(maxsize=1)
def _registry():
    """One pint registry for the whole program, built on first use (pint takes ~0.3 s to import, which
    commands that read no unit string, such as `planner model info`, need not pay). FLOP is added as its
    own dimension, and FLOPS is FLOP per second as on datasheets ("989 TFLOPS"), not a plural of FLOP.

    pint probes for scipy and dask when it is imported (for array functions and dask arrays, which the
    planner does not use); with scipy loaded, Pyomo then loads scipy.stats and more (~0.8 s) when the
    solver starts, and the dask probe alone costs ~0.1 s. Each probe is answered "not installed" while
    pint imports, and only then (`--dask` imports dask.distributed itself, later). The registry is the
    same with or without pint's disk cache (keyed by the content of pint's definition files)."""
    blocked = [name for name in ("scipy", "dask") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import NAME` raise ImportError
    try:
        import pint
    finally:
        for name in blocked:
            del sys.modules[name]

    try:  # pint's own cache of its parsed definitions (~/.cache/pint): 0.3 s less per command
        registry = pint.UnitRegistry(cache_folder=":auto:")
    except Exception:  # noqa: BLE001  (no writable cache folder, a torn cache file: parse them afresh)
        registry = pint.UnitRegistry()
    registry.define("FLOP = [flop] = flop")
    registry.define("FLOPS = FLOP / second")
    return registry


# base unit and an example for each kind of quantity the planner reads
QUANTITY_KINDS: dict[str, tuple[str, str]] = {
    "bytes": ("B", "80 GB"),
    "bytes_per_s": ("B/s", "3.35 TB/s"),
    "pj_per_bit": ("pJ/bit", "3.9 pJ/bit"),
    "flops_per_s": ("FLOP/s", "989 TFLOP/s"),
    "pj_per_flop": ("pJ/FLOP", "0.5 pJ/FLOP"),
    "watts": ("W", "73 W"),
    "seconds": ("s", "2 us"),
}

# Anything larger than these is a typo, not hardware (a memory of 1e30 bytes, say).
ABSURD_LIMITS: dict[str, float] = {
    "bytes": 1e18,  # 1 EB per device or chip
    "bytes_per_s": 1e18,  # 1 EB/s
    "pj_per_bit": 1e4,
    "flops_per_s": 1e20,
    "pj_per_flop": 1e4,
    "watts": 1e9,  # a whole pipeline may draw megawatts
    "seconds": 1e3,
}
# ... and nonzero values smaller than these (a bandwidth of 1e-300 B/s makes every time infinite)
ABSURD_SMALL: dict[str, float] = {"bytes": 1.0, "bytes_per_s": 1.0, "flops_per_s": 1.0}


# The quantity grammar: an optional number, then unit names joined by spaces, "*" or "/", each with an
# optional small integer power. Checked before pint sees the text, since pint evaluates arithmetic
# ("9**9**9" would run for hours) and accepts number/number.
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_TERM = r"(?:[^\W\d]\w*|%)(?:\s*(?:\*\*|\^)\s*[+-]?\d{1,2})?"
_QUANTITY_RE = re.compile(rf"\s*(?:{_NUMBER})?\s*(?:{_TERM}(?:\s*[*/]\s*{_TERM}|\s+{_TERM})*)?\s*")
MAX_QUANTITY_CHARS = 100

# exponent of information (bit, byte) in each kind's base unit: pint takes bits as dimensionless, so
# "3.9 pJ" would otherwise pass for pJ/bit and "1 byte/bit" for watts
_INFORMATION_EXPONENT = {"bytes": 1, "bytes_per_s": 1, "pj_per_bit": -1}


@lru_cache(maxsize=4096)
def parse_quantity(text: str, kind: str) -> float:
    """Parse `text` (e.g. "3.35 TB/s") as a quantity of `kind` and return it in the kind's base unit.

    Raises ValueError with a message that names the expected unit and an example.
    """
    base, example = QUANTITY_KINDS[kind]
    expected = f"a quantity in {base} (e.g. {example!r})"
    if not text.strip() or len(text) > MAX_QUANTITY_CHARS or not _QUANTITY_RE.fullmatch(text):
        raise ValueError(f"cannot read {bounded_repr(text)} as {expected}: expected a number and a unit")
    registry = _registry()
    import pint  # loaded by _registry

    try:
        quantity = registry.Quantity(text)
    except Exception as exc:  # pint raises several error types for garbage
        raise ValueError(f"cannot read {bounded_repr(text)} as {expected}: {str(exc)[:80]}") from None
    if not isinstance(quantity, pint.Quantity):
        quantity = registry.Quantity(quantity)
    try:
        magnitude = float(quantity.magnitude)  # a complex number: TypeError; an int past 1e308: OverflowError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{bounded_repr(text)} is not a real number; give {expected}") from None
    if not list(quantity.unit_items()):  # a bare number in a string: the base unit
        return magnitude
    root = registry.Quantity(1.0, quantity.units).to_root_units()
    information = dict(root.unit_items()).get("bit", 0)
    if information != _INFORMATION_EXPONENT.get(kind, 0):
        raise ValueError(f"{bounded_repr(text)} is not in units of {base} (e.g. {example!r})")
    try:
        return float((magnitude * quantity.units).to(base).magnitude)
    except (pint.DimensionalityError, OverflowError):
        raise ValueError(f"{bounded_repr(text)} is not in units of {base} (e.g. {example!r})") from None


def check_magnitude(value: float, kind: str) -> float:
    """Reject NaN, infinite, negative and absurdly large (or tiny nonzero) values of `kind`; return it."""
    base, example = QUANTITY_KINDS[kind]
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{value} is not a finite number; give a value in {base} like {example!r}")
    if value < 0:
        raise ValueError(f"{value:g} {base} is negative; give a positive value like {example!r}")
    if value > ABSURD_LIMITS[kind]:
        raise ValueError(
            f"{value:g} {base} is implausibly large (limit {ABSURD_LIMITS[kind]:g} {base}); check the unit"
        )
    if 0 < value < ABSURD_SMALL.get(kind, 0.0):
        raise ValueError(
            f"{value:g} {base} is implausibly small (below {ABSURD_SMALL[kind]:g} {base}); check the unit"
        )
    return value


def _validator(kind: str):
    def convert(value: object) -> float:
        if isinstance(value, bool):
            raise ValueError(f"expected a quantity in {QUANTITY_KINDS[kind][0]}, got a boolean")
        if isinstance(value, (int, float)):
            if isinstance(value, int) and abs(value) > 10**300:  # float() of it overflows (or nearly)
                raise ValueError(
                    f"{bounded_repr(value)} is out of range; give a value like {QUANTITY_KINDS[kind][1]!r}"
                )
            number = float(value)
        elif isinstance(value, str):
            number = parse_quantity(value.strip(), kind)
        else:
            raise ValueError(
                f"expected a number or a string like {QUANTITY_KINDS[kind][1]!r}, got {type(value).__name__}"
            )
        return check_magnitude(number, kind)

    return BeforeValidator(convert)


Bytes = Annotated[float, _validator("bytes")]
BytesPerSecond = Annotated[float, _validator("bytes_per_s")]
PicojoulesPerBit = Annotated[float, _validator("pj_per_bit")]
FlopsPerSecond = Annotated[float, _validator("flops_per_s")]
PicojoulesPerFlop = Annotated[float, _validator("pj_per_flop")]
Watts = Annotated[float, _validator("watts")]
Seconds = Annotated[float, _validator("seconds")]

DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}


def dtype_bytes(name: str) -> float:
    """Bytes per value of a dtype name (bf16 -> 2.0)."""
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        raise ValueError(
            f"unknown dtype {bounded_repr(name)}; expected one of {', '.join(DTYPE_BYTES)}"
        ) from None


def human_bytes(n: float) -> str:
    """Format a byte count with an SI prefix: 2.1e12 -> '2.10 TB'."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"

"""The base of every schema the planner reads its own files with."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Frozen, unknown fields rejected, and no float field accepts NaN or infinity (given as .nan, "NaN",
    "inf" or 1e999): every number the planner reads must be finite (planner.core.fileio also checks the
    raw file for numbers out of range)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

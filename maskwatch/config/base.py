"""The strict base every config section is built on: unknown keys are errors, assignments are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config section: ``extra="forbid"`` and validated assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

"""What every benchmark's JSON says about where it ran, and how it is written."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on: platform, CPU count, Python version."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def write_report(path: Path | str, report: dict[str, Any], indent: int = 2) -> None:
    """Write ``report`` as JSON to ``path`` (folders made as needed) and say so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=indent) + "\n")
    print(f"wrote {path}")

"""The one exception the CLI turns into a one-sentence message and a non-zero exit, and the JSON file reader that
says in it what is wrong with a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ConveyorError(Exception):
    """A user-facing failure: bad input, bad config or a refused operation. Its message is one sentence."""


def read_json(path: Path, expected: str) -> Any:
    """The JSON in `path`; a missing file or one that is not JSON is a ConveyorError naming the file and, when
    missing, what was `expected` there."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConveyorError(f"{path}: missing; expected {expected}.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConveyorError(f"{path}: not valid JSON ({exc}).") from None

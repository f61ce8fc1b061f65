"""Export the JSON Schemas of every payload (and the envelope) to ``schemas/json/``.

Run ``leadpipe schemas export`` after adding an optional field; CI fails when the committed
files and the models disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.catalog import PAYLOADS
from schemas.envelope import Envelope

JSON_DIR = Path(__file__).parent / "json"


def rendered() -> dict[str, str]:
    """File name -> JSON Schema text, as the models say now."""
    out: dict[str, str] = {}
    for payload in PAYLOADS:
        schema: dict[str, Any] = payload.model_json_schema()
        schema["$id"] = payload.dataschema()
        schema["x-cloudevents-type"] = payload.ce_type()
        schema["x-topic"] = payload.topic()
        out[f"{payload.EVENT_TYPE}.v{payload.VERSION}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    env = Envelope.model_json_schema()
    out["envelope.json"] = json.dumps(env, indent=2, sort_keys=True) + "\n"
    return out


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names of files that are missing or differ from the models."""
    return [
        name
        for name, text in rendered().items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]

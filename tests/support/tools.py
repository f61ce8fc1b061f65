"""External tools the suite drives (kcat, promtool, prometheus, chromium).

On a developer's machine a missing tool skips its test with the package to install; under
``CI=true`` it fails: CI must never go green by skipping (``make install`` installs them)."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(command: str, debian_package: str) -> str:
    """The tool's path; else skip (developer) or fail (CI) naming the package to install."""
    found = shutil.which(command)
    if found:
        return found
    message = f"{command} is not installed (Debian package {debian_package}; `make install` installs it)"
    if in_ci():
        pytest.fail(f"CI needs {message}", pytrace=False)
    pytest.skip(message)

"""The visitor's preferred language from the browser's ``Accept-Language`` header (RFC 9110
section 12.5.4): language ranges in order of their quality values, the first we have templates
for wins. Chinese written in simplified characters (``zh``, ``zh-CN``, ``zh-Hans``, ``zh-SG``)
is ``zh-CN``; traditional (``zh-TW``, ``zh-HK``, ``zh-Hant``) is not a language we write, so the
next preference decides. Nothing we support (or only ``*``): the form's default language."""

from __future__ import annotations

from collections.abc import Sequence

_SIMPLIFIED = ("zh", "zh-cn", "zh-sg", "zh-hans")
_TRADITIONAL = ("zh-tw", "zh-hk", "zh-mo", "zh-hant")


def _ranges(header: str) -> list[str]:
    """The language ranges with a quality above zero, best first (ties keep the header's order)."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, *params = (part.strip() for part in item.split(";"))
        if not tag:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = -1.0  # a malformed weight: the range is ignored, not guessed at
        if 0.0 < q <= 1.0:
            weighted.append((-q, position, tag.replace("_", "-").lower()))
    return [tag for _, _, tag in sorted(weighted)]


def _supported(tag: str, supported: Sequence[str]) -> str | None:
    if any(tag == t or tag.startswith(t + "-") for t in _TRADITIONAL):
        return None
    by_lower = {s.lower(): s for s in supported}
    if any(tag == s or tag.startswith(s + "-") for s in _SIMPLIFIED) and "zh-cn" in by_lower:
        return by_lower["zh-cn"]
    if tag in by_lower:
        return by_lower[tag]
    primary = tag.split("-", 1)[0]
    return by_lower.get(primary)


def preferred_language(header: str | None, supported: Sequence[str], default: str) -> str | None:
    """The best supported language for an ``Accept-Language`` header; None without a header
    (a server-to-server post says nothing about a person)."""
    if header is None or not header.strip():
        return None
    for tag in _ranges(header):
        if tag == "*":
            return default
        found = _supported(tag, supported)
        if found is not None:
            return found
    return default

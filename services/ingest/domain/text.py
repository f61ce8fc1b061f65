"""Blank text, the same for the server and for the published contract.

The contract's patterns are JSON Schema (ECMAScript) regexes, whose ``\\s`` differs from
Python's: Python's also takes U+001C..U+001F and U+0085, ECMAScript's also U+FEFF. A value is
stripped of both sets, and the patterns name both, so a client's validator and this server
agree on what is blank.
"""

from __future__ import annotations

#: Inside a character class: every character either regex flavour calls whitespace.
WS = r"\s\x1c-\x1f\x85\ufeff"
#: A value with this somewhere is not blank.
NONBLANK = f"[^{WS}]"
BLANKS = "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + "\ufeff"


def strip(value: str) -> str:
    return value.strip(BLANKS)

"""Errors of the notifier's domain.

::

    NotifierError
    └── RenderError            a message cannot be built from its template
        ├── TemplateMissing    no template file for the name (and no locale fallback)
        └── VariableMissing    the template uses a variable the request did not supply
"""

from __future__ import annotations


class NotifierError(Exception):
    """Base of the notifier's own errors."""


class RenderError(NotifierError):
    """A message cannot be rendered; the request ends as ``failed`` with this message."""


class TemplateMissing(RenderError):
    def __init__(self, template: str, locale: str):
        super().__init__(f"template {template!r} not found for locale {locale!r}")
        self.template = template
        self.locale = locale


class VariableMissing(RenderError):
    def __init__(self, template: str, detail: str):
        super().__init__(f"template {template!r}: missing variable ({detail})")
        self.template = template

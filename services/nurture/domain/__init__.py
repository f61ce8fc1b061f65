"""Pure rules of the nurture service: no I/O library is imported here."""

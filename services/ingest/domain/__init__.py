"""Pure rules of the ingest service: no I/O library is imported here."""

"""Pure rules of the notifier service: no I/O library is imported here."""

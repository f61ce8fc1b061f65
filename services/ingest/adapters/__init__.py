"""Adapters of the ingest service: Redis stores, senders, metrics (one class per port)."""

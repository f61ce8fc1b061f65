"""Adapters of the scoring service: Redis stores, senders, metrics (one class per port)."""

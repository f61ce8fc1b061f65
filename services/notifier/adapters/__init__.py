"""Adapters of the notifier service: Redis stores, senders, metrics (one class per port)."""

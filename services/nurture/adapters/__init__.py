"""Adapters of the nurture service: Redis stores, senders, metrics (one class per port)."""

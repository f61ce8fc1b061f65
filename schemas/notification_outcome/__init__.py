"""``notification.outcome``: what happened to a requested notification."""

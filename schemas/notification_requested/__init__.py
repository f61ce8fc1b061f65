"""``notification.requested``: nurture asks the notifier to send one message."""

"""``person.erased``: one service's receipt for an erasure, with no personal data in it."""

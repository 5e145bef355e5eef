"""Subscribers and their consent live here (see the subscriptions issue)."""

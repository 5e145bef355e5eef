"""Matching papers to interests. Pure and database-free: the database layer feeds it."""

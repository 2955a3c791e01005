"""Helpers shared by the test tiers (imported as ``tests.support.*``; nothing here is a fixture)."""

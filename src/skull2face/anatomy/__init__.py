"""Anatomy: landmark names and definitions, and published soft-tissue thickness values."""

"""Craniofacial superimposition: a skull tested against a face photograph (layer 6)."""

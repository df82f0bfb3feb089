"""Scoring a predicted face against the true skin.

``region``
    The face region that is scored (fixed by the truth and its face landmarks alone) and its
    sub-regions.
``metrics``
    Area-weighted surface errors in both directions over that region.
"""

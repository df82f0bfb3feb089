"""Write ``tests/pinned/outputs.npz``: today's outputs on the bundled real data, pinned.

Run once before a refactor that must not change behaviour (``python tests/pinned/make_pins.py``);
``tests/test_pinned.py`` recomputes the same figures and compares them. A deliberate change
re-pins only what it changes (``--only KEY ...``, the others are kept as they are) and says
so in ``tests/test_pinned.py``. What is pinned:

- skull and skin landmarks of both bundled real CTs and of the Arothron skull (mm);
- the face map (mm, every 2nd pixel) of every method on both bundled CTs with the bundled
  default model, and the same prediction scored against the CT's real skin (RMSE etc., mm).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinning import HEADS, METHODS, compute  # noqa: E402

if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="+", metavar="KEY", help="re-pin these arrays only")
    only = ap.parse_args().only
    out = Path(__file__).with_name("outputs.npz")
    with tempfile.TemporaryDirectory() as tmp:
        arrays = compute(Path(tmp))
    if only:
        with np.load(out) as z:
            kept = {k: z[k] for k in z.files}
        arrays = {**kept, **{k: arrays[k] for k in only}}
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB): {len(arrays)} arrays over {HEADS} x {METHODS}")

"""Pseudo-T1 MR heads of the bundled CTs, to look at: NIfTI files and per-tissue mean intensities.

For each bundled head CT (``headsq``, ``cranium_ct0051``) and each voxel size (2 mm and 1 mm
isotropic) writes ``<head>_t1_<s>mm.nii.gz`` (float32, arbitrary units, the CT's LPS box;
`skull2face.dataset.pseudo_mr.pseudo_t1` with its defaults: seed 0, bias 0.2, noise 0.03)
and ``<head>_tissues_<s>mm.nii.gz`` (the tissue each voxel was taken for, nearest-neighbour
resampled; labels in ``tissues.json``), then prints the mean +- SD intensity of each tissue,
over all its voxels and over its core (voxels whose six neighbours are the same tissue: less
partial volume).

    python benchmarks/pseudo_t1.py --out runs/pseudo_t1 [--seed 0] [--bias 0.2] [--noise 0.03]

Open a file with its CT in any viewer (3D Slicer, ITK-SNAP): they overlay exactly.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scipy import ndimage

from skull2face.dataset import pseudo_mr as pm
from skull2face.io.volumes import Volume, read_volume, write_volume
from skull2face.samples import path as sample_path

HEADS = {"headsq": "ct/headsq.nii.gz", "cranium_ct0051": "ct/cranium_ct0051.nii.gz"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bias", type=float, default=0.2)
    ap.add_argument("--noise", type=float, default=0.03)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = pm.PseudoT1Settings()
    summary = {"labels": list(pm.TISSUES), "heads": {}}
    for name, rel in HEADS.items():
        ct = read_volume(sample_path(rel))
        masks, _ = pm.compartments(ct, settings)
        labels = pm.tissue_labels(ct, masks, settings)
        for s in (2.0, 1.0):
            t0 = time.perf_counter()
            t1 = pm.pseudo_t1(ct, (s, s, s), seed=args.seed, bias=args.bias, noise=args.noise, settings=settings)
            seconds = time.perf_counter() - t0
            lab = pm.resample(ct, labels, (s, s, s), order=0)
            tag = f"{name}_{s:g}mm"
            write_volume(t1, args.out / f"{name}_t1_{s:g}mm.nii.gz")
            write_volume(Volume(voxels=lab.voxels.astype(np.int16), spacing=lab.spacing, origin=lab.origin,
                                direction=lab.direction), args.out / f"{name}_tissues_{s:g}mm.nii.gz")
            print(f"\n{tag}: grid {t1.shape}, {seconds:.1f} s, bias field "
                  f"{t1.info['pseudo_t1']['bias_field_range'][0]:.3f}..{t1.info['pseudo_t1']['bias_field_range'][1]:.3f}, "
                  f"cranial cavity {t1.info['pseudo_t1']['cranial_cavity_ml']:.0f} mL")
            print(f"  {'tissue':<16} {'voxels':>8} {'mean':>6} {'SD':>6} {'core':>8} {'mean':>6} {'SD':>6}")
            rows = {}
            for k, tissue in enumerate(pm.TISSUES):
                sel = lab.voxels == k
                v = t1.voxels[sel]
                c = t1.voxels[ndimage.binary_erosion(sel)]
                if v.size:
                    rows[tissue] = {"voxels": int(v.size), "mean": round(float(v.mean()), 3),
                                    "sd": round(float(v.std()), 3), "core_voxels": int(c.size),
                                    "core_mean": round(float(c.mean()), 3) if c.size else None,
                                    "core_sd": round(float(c.std()), 3) if c.size else None}
                    core = f"{c.size:>8} {c.mean():>6.3f} {c.std():>6.3f}" if c.size else f"{0:>8}"
                    print(f"  {tissue:<16} {v.size:>8} {v.mean():>6.3f} {v.std():>6.3f} {core}")
            summary["heads"][tag] = {"seconds": round(seconds, 2), "tissues": rows, "pseudo_t1": t1.info["pseudo_t1"]}
    (args.out / "tissues.json").write_text(json.dumps(summary, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

"""Agreement of the dataset build's quality gate with the eye-grading of the OpenKBP heads.

Runs the build's own gate (`skull2face.dataset.heads.prepare_heads`: extraction, landmarks,
`skull2face.dataset.quality`) on every ``pt_N.nii.gz`` of the OpenKBP folder, no dataset
written, and compares it with ``cases.csv`` (grade A/B and the named defects): one confusion
table per defect, the grade against the gate's status, and every disagreement.

    python benchmarks/quality_gate_agreement.py [--data ../shared/data/ct/openkbp_rt] [--workers 2]
        [--json out.json]

Defects compared (cases.csv's ``defects`` text -> the gate's own rule on its measures):

* vault cut      "vault cut"                        top-slice skin > VAULT_CUT_CM2
* shell          "object in front of face"/"shell"  shell_fraction > SHELL_FRACTION
* dental metal   "dental metal"                     metal at the teeth > METAL_MIN_MM3
* mouth device   "mouthpiece", "bite block", "stent", "mouth open", "intraoral"
                                                    lips ahead of the nose tip, or an open mouth
* no mandible    "no mandible"                      no Gn and no Pog detected
* coarse         "very coarse in-plane"             in-plane > COARSE_INPLANE_MM (3.5 mm; the grader wrote
                                                    "very coarse" from 4.6 mm: a difference of definition)

A head whose skull head frame could not be placed has no measures: "n/a", counted apart.
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from skull2face.dataset import quality as Q
from skull2face.dataset.heads import prepare_heads

DEFECTS = {
    "vault cut": (("vault cut",), lambda m: m.get("top_slice_skin_cm2", 0.0) > Q.VAULT_CUT_CM2),
    "shell": (("object in front of face", "shell"), lambda m: m.get("shell_fraction", 0.0) > Q.SHELL_FRACTION),
    "dental metal": (("dental metal",), lambda m: m.get("dental_metal_mm3", 0.0) > Q.METAL_MIN_MM3),
    "mouth device": (("mouthpiece", "bite block", "stent", "mouth open", "intraoral"),
                     lambda m: ((m.get("mouth") or {}).get("lip_vs_nose_mm") or -1e9) > Q.LIP_AHEAD_OF_NOSE_MM
                     or ((m.get("mouth") or {}).get("stomion_notch_mm") or 0.0) > Q.STOMION_NOTCH_MM),
    "no mandible": (("no mandible",), lambda m: m.get("mandible") is False),
    "coarse": (("very coarse in-plane",), lambda m: m.get("inplane_mm", 0.0) > Q.COARSE_INPLANE_MM),
}
# measures that exist before the skull frame (the others need it)
NEEDS_FRAME = {"vault cut", "shell", "dental metal", "mouth device", "no mandible", "coarse"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/ct/openkbp_rt"),
                    help="folder of pt_N.nii.gz and cases.csv (default: ../shared/data/ct/openkbp_rt beside the checkout)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="write every head's gate result here")
    args = ap.parse_args()
    data = Path(args.data)
    cases = {r["case"]: r for r in csv.DictReader(open(data / "cases.csv", encoding="utf-8"))}
    paths = [data / f"{c}.nii.gz" for c in cases if (data / f"{c}.nii.gz").exists()]
    t = time.perf_counter()
    heads = prepare_heads(paths, 120_000, args.workers)
    print(f"gated {len(heads)} heads in {time.perf_counter() - t:.0f} s with {args.workers} workers\n")
    if args.json:
        Path(args.json).write_text(json.dumps({n: h["quality"] for n, h in heads.items()}, indent=1, default=str))

    status = {n: h["quality"]["status"] for n, h in heads.items()}
    print("grade (cases.csv) x gate status")
    print(f"{'':8s}" + "".join(f"{s:>10s}" for s in ("used", "partial", "rejected")))
    for g in ("A", "B"):
        row = [sum(1 for n in heads if cases[n]["grade"] == g and status[n] == s) for s in ("used", "partial", "rejected")]
        print(f"{g:8s}" + "".join(f"{v:10d}" for v in row))
    print()
    rejected = {n: heads[n]["quality"]["reasons"][0] for n in heads if status[n] == "rejected"}

    print("per defect, over the heads with measures (n/a: no skull frame); 'kept': agreement over the heads the "
          "gate did not reject; * marks a rejected head")
    print(f"{'defect':14s} {'TP':>4s} {'FN':>4s} {'FP':>4s} {'TN':>4s} {'n/a':>4s} {'agree':>7s} {'kept':>6s}  "
          "disagreements")
    for name, (words, rule) in DEFECTS.items():
        tp = fn = fp = tn = na = 0
        kept = [0, 0]
        wrong = []
        for n, h in heads.items():
            truth = any(w in cases[n]["defects"].lower() for w in words)
            m = h["quality"].get("measures", {})
            if name in NEEDS_FRAME and "inplane_mm" not in m:
                na += 1
                continue
            got = bool(rule(m))
            tp += truth and got
            fn += truth and not got
            fp += got and not truth
            tn += not truth and not got
            if status[n] != "rejected":
                kept[0] += truth == got
                kept[1] += 1
            if truth != got:
                wrong.append(f"{n}{'*' if status[n] == 'rejected' else ''}({'missed' if truth else 'extra'})")
        n_ok = tp + tn
        n_all = tp + fn + fp + tn
        print(f"{name:14s} {tp:4d} {fn:4d} {fp:4d} {tn:4d} {na:4d} {100 * n_ok / max(n_all, 1):6.0f}% "
              f"{100 * kept[0] / max(kept[1], 1):5.0f}%  " + " ".join(wrong))
    print(f"\nrejected ({len(rejected)}):")
    for n, why in rejected.items():
        print(f"  {n} [{cases[n]['grade']}]: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

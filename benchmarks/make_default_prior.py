"""Put the thickness prior of the bundled real heads into the bundled default model file.

The `face-model` method (and a ``--base fit`` generator) pulls the fitted head onto the filled
skull plus the soft-tissue thickness measured on real heads
(`skull2face.statistics.thickness_prior`). `skull2face export` bundles a dataset's prior with
the model; the default model file predates that, so this script measures the prior on both
bundled CT heads exactly as `skull2face dataset build` does for its training split (extract,
landmarks, head frame, 256 x 256 maps at 1 mm centred 40 mm below nasion) and stores it in
``src/skull2face/data/model/skull2face_default.pt`` under ``references["prior"]``.

    python benchmarks/make_default_prior.py [--model PATH]

Because the prior has seen both bundled heads, accuracy on them must come from
`benchmarks/accuracy.py` (leave one head out), never from the default model.
"""

import argparse
from pathlib import Path

import torch
import trimesh

from skull2face import samples
from skull2face.dataset.build import DatasetSettings, _spec, prepare_head
from skull2face.dataset.fitted import training_prior
from skull2face.geometry.depthmap import render
from skull2face.geometry.frame import head_frame
from skull2face.io.atomic import atomic_path
from skull2face.stages.predict import default_model_path, prior_to_refs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(default_model_path()))
    args = ap.parse_args()
    s = {k: getattr(DatasetSettings(), k) for k in ("size", "mm_per_px", "z_near", "z_far")}
    pairs = []
    for name in ("headsq", "cranium"):
        h = prepare_head(samples.path(name), DatasetSettings().target_faces)
        spec = _spec(s, head_frame(h["skull_landmarks"].points, "skull").matrix, {"ct": h["sha256"]})
        skull = render(trimesh.Trimesh(*h["skull"], process=False), spec)
        skin = render(trimesh.Trimesh(*h["skin"], process=False), spec)
        pairs.append((h["name"], skull, skin, h["skull_landmarks"].points))
    import numpy as np

    prior = training_prior(pairs, _spec(s, np.eye(4), {}))
    payload = torch.load(args.model, map_location="cpu", weights_only=True)
    payload.setdefault("references", {})["prior"] = prior_to_refs(prior)
    with atomic_path(args.model) as tmp:
        torch.save(payload, tmp)
    print(f"{args.model}: prior of {', '.join(prior.heads)} stored "
          f"({Path(args.model).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

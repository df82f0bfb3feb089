"""Does the true skull fit its own photographs best? Each bundled head's skull against photos
rendered from every bundled head at several camera angles (issue 12).

For each bundled head CT (headsq, cranium_ct0051): the skull and skin are extracted, their
landmarks detected; "photographs" of the skin are rendered in perspective through known
cameras (600 mm away, focal 2400 px, 960 x 1200 px; yaw toward the subject's left and pitch
from above, degrees) and the skin landmarks the camera sees are projected into them. Every
skull is then superimposed on every photo by the ``superimpose`` stage itself (focal length
unknown, no face, no pictures). The table gives the grade, the residual SD at the face (mm),
the landmark pairs used and, for the true skull, the rotation error of the solved camera; the
last column says whether the true skull ranks first (smallest residual SD).

    python benchmarks/superimpose_discrimination.py [--known-focal]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from skull2face import samples
from skull2face.anatomy.locate import PoseSettings, locate
from skull2face.geometry.frame import head_frame
from skull2face.geometry.surfaces import extract_surfaces
from skull2face.io.atomic import write_bytes
from skull2face.io.landmarks import write_landmarks
from skull2face.io.meshes import save_mesh
from skull2face.io.photo import write_photo_landmarks
from skull2face.io.volumes import read_volume
from skull2face.stages.superimpose import SuperimposeSettings, superimpose
from skull2face.superimposition.register import rotation_error_deg
from skull2face.superimposition.synthetic import photo_landmarks, photograph, portrait_camera

HEADS = ("headsq", "cranium")
ANGLES = ((0, 0), (20, 5), (-20, -5), (35, 0), (-35, 10))
FOCAL_PX = 2400.0


def prepare_head(name: str, folder: Path) -> dict:
    """Extract a bundled CT's skull and skin, detect their landmarks, write them to ``folder``."""
    surf = extract_surfaces(read_volume(samples.path(name)))
    out = {"name": name}
    for kind, mesh, surface in (("skull", surf.skull, "skull"), ("skin", surf.skin, "face")):
        path = save_mesh(mesh, folder / f"{name}_{kind}.ply")
        lms, _ = locate(mesh, path, surface, None, PoseSettings(pose="lps"))
        out[kind] = mesh
        out[f"{kind}_path"] = path
        out[f"{kind}_landmarks"] = lms
        out[f"{kind}_landmarks_path"] = write_landmarks(lms, folder / f"{name}_{kind}_landmarks.json")
    return out


def make_photo(head: dict, yaw: float, pitch: float, folder: Path) -> tuple[Path, Path, object]:
    """Render the head's skin through a known camera; write the PNG and its landmark CSV."""
    import cv2

    frame = head_frame(head["skin_landmarks"].points, "face")
    cam = portrait_camera(frame.matrix, yaw, pitch, focal_px=FOCAL_PX)
    img = photograph(head["skin"], cam)
    stem = folder / f"{head['name']}_y{yaw:+d}_p{pitch:+d}"
    ok, png = cv2.imencode(".png", img[:, :, ::-1])
    photo = write_bytes(stem.with_suffix(".png"), png.tobytes())
    lms = write_photo_landmarks(photo_landmarks(head["skin"], head["skin_landmarks"].points, cam),
                                stem.with_suffix(".csv"))
    return photo, lms, cam


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--known-focal", action="store_true", help="give the solver the true focal length")
    args = ap.parse_args()
    settings = SuperimposeSettings(face=False, picture=False, focal_px=FOCAL_PX if args.known_focal else None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        heads = {n: prepare_head(n, tmp) for n in HEADS}
        print(f"focal length {'given' if args.known_focal else 'solved'}; cells: grade, residual SD at the face "
              f"(mm), pairs; rotation error of the true skull's camera")
        print(f"{'photo (yaw, pitch)':<24}" + "".join(f"{'skull ' + n:<40}" for n in HEADS) + "true first")
        firsts, times = [], []
        for pn in HEADS:
            for yaw, pitch in ANGLES:
                photo, lm, cam = make_photo(heads[pn], yaw, pitch, tmp)
                cells, sds = [], {}
                for sn in HEADS:
                    t = time.perf_counter()
                    rec = superimpose(heads[sn]["skull_path"], photo, tmp / f"out_{pn}_{sn}", lm,
                                      heads[sn]["skull_landmarks_path"], settings)
                    times.append(time.perf_counter() - t)
                    c = rec["conclusion"]
                    sds[sn] = c["residual_sd_mm"]
                    cell = f"{c['grade'].replace(' support', ''):<9}{c['residual_sd_mm']:5.2f} mm n={c['pairs']}"
                    if sn == pn:
                        rot = rotation_error_deg(np.asarray(rec["camera"]["rotation"]), cam.rotation)
                        cell += f" rot {rot:4.1f} deg"
                    cells.append(f"{cell:<40}")
                first = min(sds, key=sds.get) == pn
                firsts.append(first)
                print(f"{pn + f' ({yaw:+d}, {pitch:+d})':<24}" + "".join(cells) + ("yes" if first else "NO"))
        print(f"true skull first on {sum(firsts)} of {len(firsts)} photos; "
              f"{np.median(times):.2f} s median per skull-photo pair (stage, skull landmarks given, no face, "
              f"no pictures)")


if __name__ == "__main__":
    main()

"""Before/after pictures of the dental-metal repair (`skull2face.geometry.metal`) on head CTs.

For each head: the skull from the front and from the left without the repair and with it,
then an axial slice (the one holding most metal) and a sagittal slice (through the metal's
centre), zoomed on the mouth, with the bone mask without the repair and with it
(red), the skin mask (cyan) and the metal (yellow). Prints each head's metal record.

    python benchmarks/metal_pictures.py OUT_DIR VOLUME [VOLUME ...]

VOLUME is a CT file, a bundled sample name (``headsq``, ``cranium``), or ``phantom``: the
streak phantom of tests/test_metal.py (`skull2face.phantoms.dental_metal`).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from skull2face import samples
from skull2face.geometry import metal
from skull2face.geometry.surfaces import SurfaceSettings, bone_mask, extract_surfaces, skin_mask
from skull2face.io.volumes import read_volume
from skull2face.phantoms import dental_metal, head_phantom
from skull2face.report.pictures import VIEWS, new_figure, save_png, shade


def masks(vol):
    """(skin, bone) masks without and with the repair, and the Metal found, as extraction makes them."""
    skin0, _ = skin_mask(vol, -300.0)
    bone0, _ = bone_mask(vol, 300.0, skin0)
    found = metal.find_metal(vol.voxels, vol.spacing, vol.direction, skin0, 300.0)
    if found is None:
        return skin0, bone0, skin0, bone0, None
    skin1, _, _ = metal.repair_skin(skin0, found, vol.spacing)
    bone1, _ = bone_mask(vol, 300.0, skin1)
    bone1, _ = metal.drop_streak_bone(bone1, found, vol.spacing)
    return skin0, bone0, skin1, bone1, found


def _slice(a, axis, k, box):
    sl = [slice(None)] * 3
    sl[axis] = k
    for ax, s in box.items():
        sl[ax] = s
    return a[tuple(sl)]


def crop(mesh, centre, half=(90.0, 1e9, 80.0)):
    """The faces whose centres lie within ``half`` mm (L, P, S) of ``centre``: the head around the mouth."""
    keep = np.all(np.abs(mesh.triangles_center - centre) <= np.asarray(half), axis=1)
    return mesh.submesh([np.nonzero(keep)[0]], append=True)


def figure(vol, name):
    before = extract_surfaces(vol, SurfaceSettings(metal="off"))
    after = extract_surfaces(vol)
    skin0, bone0, skin1, bone1, found = masks(vol)
    if found is not None:  # zoom the skull pictures on the mouth
        centre = vol.to_lps(np.argwhere(found.mask).mean(axis=0)[None])[0] + np.array([0.0, 0.0, 30.0])
        before.skull, after.skull = crop(before.skull, centre), crop(after.skull, centre)
    fig = new_figure((22, 11))
    axes = fig.subplots(2, 4).ravel()
    bone_c = (0.95, 0.93, 0.85)
    for ax, (title, surf, view) in zip(axes[:4], [("skull, front, repair off", before, "front"),
                                                  ("skull, front, repair on", after, "front"),
                                                  ("skull, left, repair off", before, "left"),
                                                  ("skull, left, repair on", after, "left")]):
        ax.imshow(shade([surf.skull], [bone_c], *VIEWS[view], px=420))
        ax.set_title(title)
        ax.axis("off")
    rec = after.record["metal"]
    if found is not None:
        idx = np.argwhere(found.mask)
        c = np.round(idx.mean(axis=0)).astype(int)
        axis = found.axis
        k = int(np.argmax(found.mask.sum(axis=tuple(a for a in range(3) if a != axis))))
        plane = [a for a in range(3) if a != axis]
        half = [int(70 / vol.spacing[a]) for a in range(3)]
        box = {a: slice(max(c[a] - half[a], 0), c[a] + half[a]) for a in plane}
        sag = {plane[1]: box[plane[1]], axis: slice(max(c[axis] - half[axis], 0), c[axis] + half[axis])}
        panels = [(f"axial slice {k} (most metal)", axis, k, box, plane),
                  (f"sagittal slice {c[plane[0]]} (through the metal)", plane[0], c[plane[0]], sag, [plane[1], axis])]
        for i, (title, cut_axis, cut_k, bx, (a0, a1)) in enumerate(panels):
            img = _slice(vol.voxels, cut_axis, cut_k, bx).astype(np.float32)
            for j, (skin_m, bone_m, which) in enumerate([(skin0, bone0, "repair off"), (skin1, bone1, "repair on")]):
                ax = axes[4 + 2 * i + j]
                ax.imshow(img.T, cmap="gray", vmin=-1000, vmax=2000, origin="lower", interpolation="nearest",
                          aspect=vol.spacing[a1] / vol.spacing[a0])
                for m, col in [(bone_m, "red"), (skin_m, "cyan"), (found.mask, "yellow")]:
                    part = _slice(m, cut_axis, cut_k, bx).astype(float)
                    if part.any():
                        ax.contour(part.T, [0.5], colors=col, linewidths=1.2)
                if cut_axis == axis:
                    ax.invert_yaxis()  # anterior (low P) at the top
                ax.set_title(f"{title}, {which}")
                ax.set_xticks([])
                ax.set_yticks([])
    else:
        for ax in axes[4:]:
            ax.axis("off")
    fig.suptitle(f"{name}: metal {rec.get('metal_voxels', 0)} voxels ({rec.get('metal_volume_mm3', 0)} mm3), "
                 f"bone dropped {rec.get('bone_voxels_dropped_as_streak_debris', 0)} voxels "
                 f"({rec.get('bone_mm3_dropped', 0)} mm3), skin filled {rec.get('skin_voxels_filled', 0)}, "
                 f"cut {rec.get('skin_voxels_cut', 0)}  |  \nred: bone mask, cyan: skin mask, yellow: metal (> 2500 HU)")
    fig.tight_layout()
    return fig, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("volumes", nargs="+")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for v in args.volumes:
        if v == "phantom":
            name = "phantom"
            head = head_phantom(shape=(104, 104, 84), spacing=(2.0, 2.0, 2.5), skin_radius=95.0,
                                bone_radii=(62.0, 70.0))
            vol, _ = dental_metal(head, centre=(0.0, -66.0, 0.0), amplitude=1500.0, reach_mm=70.0)
        else:
            path = samples.path(v) if v in samples.names() else Path(v)
            name = path.name.split(".")[0]
            vol = read_volume(path)
        fig, rec = figure(vol, name)
        save_png(fig, out / f"metal_{name}.png")
        print(name, json.dumps(rec))


if __name__ == "__main__":
    main()

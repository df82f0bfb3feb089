"""Automatic detection of the paper's skull (Table 1) and face (Table 2) landmarks on a mesh.

`detect_landmarks` takes a skull or skin mesh in any coordinates and a rough rigid pose (the
``coarse`` input -> head-frame matrix, which may be off by ~10 degrees and ~20 mm) and returns
the landmarks in the mesh's own coordinates, each with a note of how it was found and how far
to trust it. Landmarks that cannot exist on the input (a CT cut at the upper lip has no chin;
a dry skull without mandible has no gonion) are reported missing, with the reason, instead
of being invented.

Method, in millimetres, in a working head frame (+x subject's left, +y up, +z anterior,
mid-sagittal plane x = 0; see `skull2face.geometry.frame`):

1. **Scan cuts** ("lids", `skull2face.geometry.lids.find_lids`): marching cubes closes a surface where the scan
   ends with a flat lid. A lid is a large area hugging the mesh's support plane in some direction
   whose walls meet it steeply (a natural extreme curves away gently). Points on lids are
   never taken for anatomy, and a landmark whose region lies beyond a lid is reported missing.
2. **Mid-sagittal plane** by symmetry (`.work._refine_by_symmetry`): the front 80 mm of the
   head (lids excluded) is mirrored across candidate planes and the plane with the smallest
   trimmed mirror residual wins (grid search, Nelder-Mead, then mirror matching:
   `skull2face.geometry.symmetry.search_plane`, which the coarse pose uses too).
3. **Midline profile** (`.profile._profile`): rays cast through a slab |x| <= 3..4 mm give
   the anterior outline z_front(y) every 0.5 mm, and the outline seen from below (the chin's
   underside). Midline landmarks are notches, bumps and extremes of this outline, measured
   against chords so that they do not depend on the head's pitch (per landmark: see
   `.skull_midline`, `.face_midline`, `.midline`). The outline is read twice: in the coarse
   pitch, then after tilting the frame so that +y runs from the lower to the upper midline
   landmarks as `skull2face.geometry.frame.head_frame` defines "up" (sn -> n, g' on the face;
   Ns, Pr -> N, G on the skull; `.landmarks._midline`). The frame's origin then moves to
   nasion.
4. **Paired landmarks** (`.bilateral`): extremes of the vertices in boxes
   placed relative to nasion with typical adult dimensions (cited where used), and features
   of front or side depth maps (`skull2face.geometry.depthmap.render`) for dacryon, the eye
   corners, the alae and tragion.

5. **Parts of a skull** (`.parts`): in the working frame at nasion, the share of each part's
   expected region (midface, each orbit, each side, mandible, braincase; sized from Howells
   1973) that holds bone. A landmark whose part is missing is reported missing with the reason
   (``meta["absent"]``), not placed on the bone that is left.

Every step works on the mesh in the coarse frame (lids are also looked for along the input's
own axes, which a CT-derived mesh shares with the scanner), so moving the mesh and the coarse
matrix together by a rigid motion moves the landmarks with them.

Modules, in the order the method uses them: `skull2face.geometry.lids` (step 1), `.work` (the working frame and
step 2), `.profile` (step 3), `.midline` (rules both midlines share), `.skull_midline`,
`.face_midline`, `.bilateral` (step 4), `.parts` (step 5) and `.landmarks` (the entry point).
"""

from ...geometry.symmetry import symmetry_plane
from .landmarks import detect_landmarks
from .plausible import NotAnatomy, anatomy_problem

__all__ = ["NotAnatomy", "anatomy_problem", "detect_landmarks", "symmetry_plane"]

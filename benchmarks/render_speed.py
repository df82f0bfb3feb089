"""How fast are depth maps rendered and turned back into meshes?

Renders a bumpy head-sized ellipsoid of about 500k triangles at 256x256 and 512x512 (1 mm and
0.5 mm per pixel) and prints wall-clock seconds: the Embree BVH build on its own (trimesh caches
it on the mesh, so it is paid once per mesh, not per render), each render with the BVH already
built (best of 3 after a warm-up), and depth_to_mesh. It also times the
two trimesh ray queries `render` could use, to back the choice made there.

Run: ``python benchmarks/render_speed.py``
"""

from __future__ import annotations

import os
import time

import numpy as np
import trimesh

from skull2face.geometry.depthmap import RenderSpec, depth_to_mesh, render


def bumpy_head(count: int = 354, seed: int = 0) -> trimesh.Trimesh:
    """UV sphere with ~4*count^2 triangles (~500k by default), scaled to a head (150 x 220 x 190 mm) and bumped."""
    mesh = trimesh.creation.uv_sphere(radius=1.0, count=[count, count])
    v = mesh.vertices.copy()
    rng = np.random.default_rng(seed)
    # a few smooth random bumps (a few mm) so the BVH sees an irregular surface
    bumps = np.zeros(len(v))
    for _ in range(12):
        f = rng.normal(scale=4.0, size=3)
        bumps += 0.01 * np.sin(v @ f + rng.uniform(0, 2 * np.pi))
    v *= (1.0 + bumps)[:, None]
    v *= [75.0, 110.0, 95.0]
    return trimesh.Trimesh(v, mesh.faces, process=False)


def best_of(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    mesh = bumpy_head()
    print(f"mesh: {len(mesh.faces):,} triangles, {len(mesh.vertices):,} vertices; "
          f"embree: {trimesh.ray.has_embree}; CPUs: {os.cpu_count()}")

    builds = []
    for _ in range(3):
        fresh = mesh.copy()
        t = time.perf_counter()
        fresh.ray.intersects_first([[0.0, 0.0, 500.0]], [[0.0, 0.0, -1.0]])  # builds the BVH
        builds.append(time.perf_counter() - t)
    print(f"BVH build (one-off per mesh, best of 3): {min(builds):.3f} s")
    fresh = mesh.copy()
    t = time.perf_counter()
    render(fresh, RenderSpec(size=(256, 256)))
    print(f"first render of a new mesh at 256x256, BVH build included: {time.perf_counter() - t:.3f} s")

    for size, s in ((256, 1.0), (512, 0.5)):
        spec = RenderSpec(size=(size, size), mm_per_px=s)
        t_render = best_of(lambda spec=spec: render(mesh, spec))
        dm = render(mesh, spec)
        t_mesh = best_of(lambda dm=dm: depth_to_mesh(dm))
        print(f"{size}x{size}: render {t_render:.3f} s ({dm.mask.sum():,} hits), "
              f"depth_to_mesh {t_mesh:.3f} s ({len(depth_to_mesh(dm).faces):,} triangles)")

    # The choice inside render(): first-hit triangle ids vs trimesh's hit locations.
    spec = RenderSpec(size=(512, 512), mm_per_px=0.5)
    x, y = spec.xy_grid()
    origins = np.column_stack([x.ravel(), y.ravel(), np.full(x.size, 200.0)])
    directions = np.broadcast_to([0.0, 0.0, -1.0], origins.shape)
    t_first = best_of(lambda: mesh.ray.intersects_first(origins, directions))
    t_loc = best_of(lambda: mesh.ray.intersects_location(origins, directions, multiple_hits=False))
    print(f"512x512 rays: intersects_first {t_first:.3f} s, "
          f"intersects_location(multiple_hits=False) {t_loc:.3f} s")


if __name__ == "__main__":
    main()

"""Pictures and reports a forensic user can read without a notebook.

``pictures``   shaded meshes, mesh-on-slice overlays, depth maps with landmarks (Agg figures)
``heatmap``    the truth coloured by its distance to a prediction
``dataset``    the picture of a dataset's samples
``tables``     plain-text metrics tables
``collect``    gathering predict/evaluate folders into a report's content
``html``       the self-contained HTML page (and its Chromium screenshot)
"""

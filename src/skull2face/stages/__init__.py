"""The pipeline stages: one thin module per command (settings dataclass + a plain function).

Each stage reads files, writes its outputs and a JSON of its resolved settings into its own
folder. Stages import the libraries below them (io, geometry, anatomy, model, dataset,
methods, training, evaluation, report), never each other's internals.
"""

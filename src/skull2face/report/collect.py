"""Gather a report's context from stage folders (predict/, evaluate/ or a whole demo run).

`context_from_dirs` accepts any mix of: a ``predict`` folder (``predict.json``), an
``evaluate`` folder (``evaluate.json``), or a run folder holding ``predict/<method>/`` and
``evaluate/<method>/`` (what ``skull2face demo`` writes). Methods are matched by name: the
``method`` of ``predict.json``, and for an evaluation the method of the ``predict.json`` beside
its predicted face, else the evaluate folder's name.

The page's headline picture and its 3D view show one method's prediction (`headline_method`):
the one asked for, else the only method with a predict folder, else the caller's default (the
``report`` stage and the demo pass predict's default method), else the first in registry order.
The metrics table keeps every method.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import InputError
from ..anatomy.tissue import TABLE_SOURCE
from ..methods import registry

log = logging.getLogger(__name__)

TISSUE_SOURCE = (f"Facial soft-tissue thickness over each bony landmark: pooled adult means and standard "
                 f"deviations of {TABLE_SOURCE}, International Journal of Legal Medicine 138: 519-535. The "
                 "tissue-depth and face-model methods place the skin with it, and the synthetic training heads are "
                 "made with it.")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None


def _expand(dirs: list[Path]) -> list[Path]:
    out = []
    for d in dirs:
        if not d.is_dir():
            raise InputError(d, "not a folder")
        if (d / "predict.json").is_file() or (d / "evaluate.json").is_file():
            out.append(d)
        else:
            found = sorted(p.parent for p in list(d.glob("predict/*/predict.json")) + list(d.glob("evaluate/*/evaluate.json")))
            if not found:
                raise InputError(d, "holds no predict.json or evaluate.json (nor predict/*/, evaluate/*/)")
            out.extend(found)
    return out


def headline_method(predicted: list[str], method: str | None = None, default_method: str | None = None
                    ) -> tuple[str | None, str]:
    """The method whose face the report's headline picture and 3D view show, and why.

    Parameters
    ----------
    predicted : list of str
        The methods with a predict folder among the report's inputs, in display order.
    method : str, optional
        Asked for (``skull2face report --method``); it must be among ``predicted``.
    default_method : str, optional
        Taken when several methods were predicted and none was asked for (predict's default).

    Returns
    -------
    (str or None, str)
        The method (None when no predict folder was given) and the reason, in words.

    Raises
    ------
    skull2face.errors.InputError
        ``method`` has no predict folder among the inputs.
    """
    if method is not None:
        if method not in predicted:
            held = ", ".join(predicted) or "none"
            raise InputError(None, f"--method {method}: no predict folder of that method among the inputs "
                                   f"(they hold predictions of: {held})")
        return method, "the method asked for"
    if not predicted:
        return None, ""
    if len(predicted) == 1:
        return predicted[0], "the only method predicted"
    if default_method in predicted:
        return default_method, "predict's default method; skull2face report --method NAME shows another"
    return predicted[0], "the first method predicted; skull2face report --method NAME shows another"


def context_from_dirs(dirs: list[str | Path], title: str | None = None, settings: dict | None = None,
                      method: str | None = None, default_method: str | None = None) -> dict:
    """Report context (see `skull2face.report.html.write_report`) from stage folders.

    ``method`` / ``default_method``: which prediction the headline picture and the 3D view show
    (`headline_method`); an asked-for ``method`` without a predict folder: `InputError`.
    """
    methods: dict[str, dict] = {}
    hashes, region, subject = {}, None, None
    runs: dict[str, dict] = {}  # method -> {"predict": folder, "record": predict.json, "evaluate": folder}
    for d in _expand([Path(p) for p in dirs]):
        if (d / "predict.json").is_file():
            rec = _read(d / "predict.json")
            runs.setdefault(rec["method"], {}).update(predict=d, record=rec)
            m = methods.setdefault(rec["method"], {})
            if (d / "predict.png").is_file():
                m["picture"] = str(d / "predict.png")
            hashes[f"input ({Path(rec['input']['path']).name})"] = rec["input"]["sha256"]
            given = rec["input"].get("landmarks")  # the --landmarks file (older records: no key)
            if given:
                hashes[f"landmarks ({Path(given['path']).name})"] = given["sha256"]
            subject = subject or Path(rec["input"]["path"]).name
            m["summary"] = f"{rec['method']}: {rec['face']['vertices']} vertices in {rec['timings']['total_s']:.2f} s"
            if rec.get("measurements"):  # the skull's standard measurements
                m["measurements"] = rec["measurements"]
            if rec.get("samples"):  # predict --samples: the plausible heads and the uncertainty map
                m["samples"] = samples_of(d, rec)
        if (d / "evaluate.json").is_file():
            rec = _read(d / "evaluate.json")
            pred = Path(rec.get("inputs", {}).get("prediction", {}).get("path", "")) if isinstance(rec.get("inputs"), dict) else Path("")
            name = d.name
            if pred and (pred.parent / "predict.json").is_file():
                name = _read(pred.parent / "predict.json")["method"]
            runs.setdefault(name, {})["evaluate"] = d
            m = methods.setdefault(name, {})
            m["metrics"] = rec["truth_to_prediction"]
            if rec.get("band"):
                m["band"] = rec["band"]
            if (d / "heatmap.png").is_file():
                m["heatmap"] = str(d / "heatmap.png")
            region = region or rec.get("region")
    ordered = {k: methods[k] for k in registry.names() if k in methods}
    ordered.update({k: v for k, v in methods.items() if k not in ordered})
    predicted = [k for k in ordered if runs.get(k, {}).get("record") is not None]
    main, why = headline_method(predicted, method, default_method)
    if main is None:  # evaluations only: no face to show; the table's first row leads
        main = next(iter(ordered), None)
    run = runs.get(main, {})
    card = model_card(run["record"]) if run.get("record") else None
    if card and card.get("sha256"):
        hashes[f"model ({Path(card['file']).name})"] = card["sha256"]
    # no separate input picture: each predict.png starts with the skull, and the headline is the
    # chosen method's (another method's figure beside it would show a second face)
    return {"title": title or f"skull2face report{f': {subject}' if subject else ''}", "subject": subject,
            "input_picture": None, "methods": ordered, "settings": settings or {},
            "hashes": hashes, "region": region, "main_method": main, "main_method_why": why,
            "scene": scene_of(run),
            "model_card": card, "tissue": tissue_of(run.get("record")) if ordered else None}


def tissue_of(record: dict | None) -> tuple[list, str]:
    """The thickness table a prediction used and its source in words, from its ``predict.json``
    (``tissue``: `skull2face.anatomy.tissue.TissueTable.record`); the bundled table, as read,
    for a record without one (an evaluation only, or a run older than the key).

    Returns
    -------
    (list of skull2face.anatomy.tissue.Thickness, str)
    """
    from ..anatomy.tissue import TissueTable, choose_table

    d = (record or {}).get("tissue")
    tt = TissueTable.from_record(d) if d else choose_table()
    if tt.path is None:
        words = TISSUE_SOURCE
    else:
        words = (f"Facial soft-tissue thickness over each bony landmark from the user's population table "
                 f"{tt.path} (sha256 {tt.sha256}).")
    stratum = ", ".join(f"{k} {v}" for k, v in (("sex", tt.sex), ("age group", tt.age_group)) if v)
    words += f" Rows of {stratum}." if stratum else ""
    words += f" Build: {tt.build_note()}."
    if d and d.get("used_by_method") is False:
        words += f" The method {record.get('method')} does not use the table."
    return list(tt.rows), words


def samples_of(d: Path, rec: dict) -> dict:
    """What the report shows of ``predict --samples`` (`skull2face.stages.predict_samples`): the
    record's figures and the pictures' paths (None where missing)."""
    drawn, outs = rec["samples"], rec.get("outputs", {})
    pics = {k: (str(d / outs[k]) if outs.get(k) and (d / outs[k]).is_file() else None)
            for k in ("samples_picture", "uncertainty_picture")}
    return {**{k: drawn.get(k) for k in ("n", "seed", "sd_scale", "face_sd_mm", "face_band_mm", "band_percent",
                                         "calibration")}, **pics}


def scene_of(run: dict) -> dict | None:
    """Mesh paths of the 3D view for one method's run (see `skull2face.report.scene3d.layers_from_files`)."""
    d, rec = run.get("predict"), run.get("record")
    if d is None or rec is None or not (d / "face.ply").is_file():
        return None
    skull = d / "skull.ply" if (d / "skull.ply").is_file() else Path(rec["input"]["path"])
    if rec["input"].get("kind") != "mesh" and not (d / "skull.ply").is_file():
        skull = None
    scene = {"skull": str(skull) if skull and skull.is_file() else None, "face": str(d / "face.ply"),
             "frame": (rec.get("frame") or {}).get("matrix"), "method": rec.get("method")}
    if rec.get("samples") and (d / "uncertainty.ply").is_file():
        scene["uncertainty"] = str(d / "uncertainty.ply")
    ev = run.get("evaluate")
    if ev is not None and (ev / "error_on_truth.ply").is_file():
        scene["error_mesh"] = str(ev / "error_on_truth.ply")
    elif rec.get("truth") and (d / rec["truth"]).is_file():
        scene["truth"] = str(d / rec["truth"])
    return scene


def model_card(rec: dict) -> dict | None:
    """The model card of a prediction's model file (None when the method used none).

    Reads the file's meta (epoch, grid, validation figures, training settings) and its reference
    ids (which training heads, real or synthetic); the bundled default model adds its README's
    first paragraph.
    """
    info = rec.get("model")
    if not info or not info.get("path"):
        return None
    path = Path(info["path"])
    card: dict = {"file": str(path), "trained": {"epochs": info.get("epoch"), "resolution (px)": info.get("resolution"),
                                                "depth exponent k": info.get("k")}}
    try:
        from ..io.volumes import file_sha256
        from ..training.checkpoints import load_checkpoint

        card["sha256"] = file_sha256(path)
        ck = load_checkpoint(path)
    except (OSError, InputError) as exc:
        card["about"] = f"model file not readable now: {exc}"
        return card
    meta = ck.get("meta") or {}
    card["trained"].update({"checkpoint": meta.get("checkpoint"), "mm per px": meta.get("mm_per_px"),
                            "output": "soft-tissue thickness above the filled skull" if meta.get("residual")
                            else "normalised face height", "torch": meta.get("torch")})
    refs = ck.get("references") or {}
    ids = list(refs.get("ids") or [])
    real = sorted({i.rsplit("-", 1)[0] for i in ids if i.endswith("-real")})
    data = {"dataset map size (px)": meta.get("dataset_size"), "dataset mm per px": meta.get("dataset_mm_per_px")}
    if ids:
        data.update({"reference pairs kept in the file": len(ids), "real heads among them": ", ".join(real) or "none",
                     "synthetic pairs among them": len(ids) - sum(i.endswith("-real") for i in ids)})
    card["training_data"] = data
    val = meta.get("validation") or {}
    card["validation"] = {k: v for k, v in val.items() if not isinstance(v, dict)}
    card["settings"] = meta.get("settings")
    from .. import samples

    readme = samples.data_dir() / "model" / "README.md"
    if path.resolve() == (samples.data_dir() / "model" / "skull2face_default.pt").resolve() and readme.is_file():
        card["about"] = readme.read_text(encoding="utf-8").split("\n\n")[1].replace("\n", " ")
    return card

"""Gather a report's context from stage folders (predict/, evaluate/ or a whole demo run).

`context_from_dirs` accepts any mix of: a ``predict`` folder (``predict.json``), an
``evaluate`` folder (``evaluate.json``), or a run folder holding ``predict/<method>/`` and
``evaluate/<method>/`` (what ``skull2face demo`` writes). Methods are matched by name: the
``method`` of ``predict.json``, and for an evaluation the method of the ``predict.json`` beside
its predicted face, else the evaluate folder's name.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..methods import registry


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


def context_from_dirs(dirs: list[str | Path], title: str | None = None, settings: dict | None = None) -> dict:
    """Report context (see `skull2face.report.html.write_report`) from stage folders."""
    methods: dict[str, dict] = {}
    hashes, region, subject, input_picture = {}, None, None, None
    for d in _expand([Path(p) for p in dirs]):
        if (d / "predict.json").is_file():
            rec = _read(d / "predict.json")
            m = methods.setdefault(rec["method"], {})
            if (d / "predict.png").is_file():
                m["picture"] = str(d / "predict.png")
                input_picture = input_picture or str(d / "predict.png")
            hashes[f"input ({Path(rec['input']['path']).name})"] = rec["input"]["sha256"]
            subject = subject or Path(rec["input"]["path"]).name
            m["summary"] = f"{rec['method']}: {rec['face']['vertices']} vertices in {rec['timings']['total_s']:.2f} s"
        if (d / "evaluate.json").is_file():
            rec = _read(d / "evaluate.json")
            pred = Path(rec.get("inputs", {}).get("prediction", {}).get("path", "")) if isinstance(rec.get("inputs"), dict) else Path("")
            method = d.name
            if pred and (pred.parent / "predict.json").is_file():
                method = _read(pred.parent / "predict.json")["method"]
            m = methods.setdefault(method, {})
            m["metrics"] = rec["truth_to_prediction"]
            if (d / "heatmap.png").is_file():
                m["heatmap"] = str(d / "heatmap.png")
            region = region or rec.get("region")
    ordered = {k: methods[k] for k in registry.names() if k in methods}
    ordered.update({k: v for k, v in methods.items() if k not in ordered})
    return {"title": title or f"skull2face report{f': {subject}' if subject else ''}", "subject": subject,
            "input_picture": input_picture, "methods": ordered, "settings": settings or {},
            "hashes": hashes, "region": region}

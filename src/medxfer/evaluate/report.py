"""The evaluation report: one self-contained HTML page (images base64-embedded) and a markdown twin.

Both are rendered from one ``context`` dict built by :func:`medxfer.inference.evaluation.evaluate_run`:

- ``title``, ``run_dir``, ``name``, ``split``, ``created`` (str)
- ``result``: the ``metrics.json`` content (``metrics``, ``ci``, ``class_names``, optional ``at_0.5``...)
- ``figures``: list of ``(caption, file name in the eval folder)``
- ``worst``: list of rows ``{file, true, pred, p_true, p_pred, loss}``; ``gallery``: file name or None
- ``counts``: ``{table title: {key: count}}``; ``warnings``: list of str; ``config_text``: str;
  ``summary_text`` (optional): the run's ``summary.txt`` layer table
- optional ``about`` (what the images are: "external (...): 624 images, 0 seen in training") and
  ``leaks`` (external images left out because the run trained on them: path, match, seen_path, seen_split)
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from medxfer.evaluate.monitors import headline
from medxfer.io import markdown_table

DISCLAIMER = (
    "Not for clinical use. This model and report are for research and education only: they have not been "
    "validated for diagnosis, and a good score here does not mean the model is safe for patients."
)
HEADLINE = headline()
STRESS_CAPTION = "stress test: ROC AUC per shift and severity (dashed: clean)"
PER_CLASS = ["precision", "recall", "specificity", "f1", "roc_auc", "average_precision"]


def fmt_ci(ci: dict[str, Any] | None) -> str:
    """``0.912 (0.880-0.940)``; ``n/a`` when undefined."""
    if not ci or ci.get("value") is None:
        return "n/a"
    if ci.get("low") is None:
        return f"{ci['value']:.3f}"
    return f"{ci['value']:.3f} ({ci['low']:.3f}-{ci['high']:.3f})"


def _rules(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Decision rules reported: the model's (threshold from model.json) and, for binary, 0.5 when that
    differs from the model's threshold (the same rule is never shown twice)."""
    rules = [(result.get("rule", "model"), {"metrics": result["metrics"], "ci": result["ci"]})]
    if "at_0.5" in result and result.get("threshold") != 0.5:
        rules.append(("threshold 0.5", result["at_0.5"]))
    return rules


def _headline_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rules = _rules(result)
    header = ["metric"] + [name for name, _ in rules]
    rows = [[label] + [fmt_ci(r["ci"].get(key)) for _, r in rules] for key, label in HEADLINE]
    return header, rows


def _per_class_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["class", "support"] + PER_CLASS
    rows = []
    for name in result["class_names"]:
        support = result["metrics"]["per_class"][name]["support"]
        rows.append([name, str(support)] + [fmt_ci(result["ci"].get(f"{s}/{name}")) for s in PER_CLASS])
    return header, rows


def _worst_rows(worst: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["file", "true", "predicted", "P(true)", "P(predicted)", "loss"]
    rows = [
        [w["file"], w["true"], w["pred"], f"{w['p_true']:.3f}", f"{w['p_pred']:.3f}", f"{w['loss']:.3f}"]
        for w in worst
    ]
    return header, rows


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _img_tag(folder: Path, file: str, caption: str) -> str:
    data = base64.b64encode((folder / file).read_bytes()).decode("ascii")
    cap = html.escape(caption)
    return (
        f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>'
    )


def _sections(ctx: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(section id, title, content)``; content is a table tuple, a list of figures, or text."""
    result = ctx["result"]
    bootstrap = result.get("bootstrap", {})
    secs: list[tuple[str, str, Any]] = [
        (
            "summary",
            "Summary (95% bootstrap CI, resampling " + bootstrap.get("unit", "image") + "s)",
            _headline_rows(result),
        ),
        ("per-class", "Per class", _per_class_rows(result)),
        ("figures", "Confusion matrix, ROC, precision-recall, calibration, training curves", ctx["figures"]),
        (
            "worst",
            f"The {len(ctx['worst'])} worst predictions (highest loss) with Grad-CAM",
            (_worst_rows(ctx["worst"]), ctx.get("gallery")),
        ),
    ]
    if ctx.get("leaks"):
        header = ["image (excluded)", "match", "training image", "its split"]
        rows = [[w["path"], w["match"], w["seen_path"], w["seen_split"]] for w in ctx["leaks"]]
        secs.append(("leaks", f"{len(rows)} images seen in training: left out of the score", (header, rows)))
    if ctx.get("stress"):
        secs.append(_stress_section(ctx["stress"]))
    for title, counts in ctx["counts"].items():
        secs.append(
            ("data", f"Data: {title}", (["value", "images"], [[k, str(v)] for k, v in counts.items()]))
        )
    secs.append(("warnings", "Data check warnings", ctx["warnings"] or ["none recorded"]))
    secs.append(("config", "Run configuration", ctx["config_text"] or "(no config.yaml in the run)"))
    if ctx.get("summary_text"):
        secs.append(
            ("model", "Model summary (layers, parameters, what each stage trained)", ctx["summary_text"])
        )
    return secs


def _stress_section(stress: dict[str, Any]) -> tuple[str, str, Any]:
    """The stress-test section (evaluate.stress_report): summary line, plot, one row per shifted set."""
    from medxfer.evaluate.stress_report import stress_table, summary_text

    title = "Stress test under acquisition shifts: " + summary_text(stress["summary"])
    return ("stress", title, (stress_table(stress), "stress.png"))


CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;overflow-wrap:break-word}"
    ".scroll{max-width:100%;overflow-x:auto}"
    "th{background:#f0f0f0}figure{display:inline-block;margin:.5em;vertical-align:top}"
    "img{max-width:100%}figcaption{font-size:.85em;color:#555}"
    ".disclaimer{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em;font-weight:600}"
    "pre{background:#f7f7f7;padding:.8em;overflow:auto}"
)


def render_html(ctx: dict[str, Any], folder: str | os.PathLike[str]) -> str:
    """Self-contained HTML report; PNGs named in ``ctx`` are read from ``folder`` and embedded."""
    folder = Path(folder)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(ctx['title'])}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(ctx['title'])}</h1>",
        f"<p class='disclaimer' id='disclaimer'>{html.escape(DISCLAIMER)}</p>",
        f"<p>Run <code>{html.escape(str(ctx['run_dir']))}</code>, "
        f"split <b>{html.escape(str(ctx['split']))}</b>, {ctx['result']['n_images']} images, "
        f"{ctx['result']['n_patients']} patients; {html.escape(ctx['created'])}</p>",
    ]
    if ctx.get("about"):
        parts.append(f"<p id='about'><b>{html.escape(ctx['about'])}</b></p>")
    if ctx.get("generalisation"):
        link = html.escape(ctx["generalisation"])
        parts.append(f"<p>Against the internal evaluations: <a href='{link}'>generalisation table</a></p>")
    for sid, title, content in _sections(ctx):
        parts.append(f"<section id='{sid}'><h2>{html.escape(title)}</h2>")
        if sid == "figures":
            parts += [_img_tag(folder, f, cap) for cap, f in content]
        elif sid == "stress":
            parts += [_img_tag(folder, content[1], STRESS_CAPTION), _html_table(*content[0])]
        elif sid == "worst":
            table, gallery = content
            if gallery:
                parts.append(
                    _img_tag(folder, gallery, "worst predictions: image and Grad-CAM of the predicted class")
                )
            parts.append(_html_table(*table))
        elif sid == "warnings":
            parts.append("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in content) + "</ul>")
        elif sid in ("config", "model"):
            parts.append(f"<pre>{html.escape(content)}</pre>")
        else:
            parts.append(_html_table(*content))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(ctx: dict[str, Any]) -> str:
    """Markdown report (images linked by relative file name) for a terminal or a pull request."""
    out = [f"# {ctx['title']}", "", f"> **{DISCLAIMER}**", ""]
    out.append(
        f"Run `{ctx['run_dir']}`, split **{ctx['split']}**, {ctx['result']['n_images']} images, "
        f"{ctx['result']['n_patients']} patients; {ctx['created']}"
    )
    if ctx.get("about"):
        out += ["", f"**{ctx['about']}**"]
    if ctx.get("generalisation"):
        md_link = ctx["generalisation"].replace(".html", ".md")
        out += ["", f"Against the internal evaluations: [generalisation table]({md_link})"]
    for sid, title, content in _sections(ctx):
        out += ["", f"## {title}", ""]
        if sid == "figures":
            out += [f"![{cap}]({f})" for cap, f in content]
        elif sid == "stress":
            out += [f"![{STRESS_CAPTION}]({content[1]})", "", markdown_table(*content[0])]
        elif sid == "worst":
            table, gallery = content
            if gallery:
                out += [f"![worst predictions]({gallery})", ""]
            out.append(markdown_table(*table))
        elif sid == "warnings":
            out += [f"- {w}" for w in content]
        elif sid in ("config", "model"):
            out += ["```yaml" if sid == "config" else "```text", content.rstrip(), "```"]
        else:
            out.append(markdown_table(*content))
    return "\n".join(out) + "\n"


def write_reports(ctx: dict[str, Any], folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` atomically into ``folder``; returns their paths."""
    from medxfer.io import atomic_write_text

    folder = Path(folder)
    html_path, md_path = folder / "report.html", folder / "report.md"
    atomic_write_text(html_path, render_html(ctx, folder))
    atomic_write_text(md_path, render_markdown(ctx))
    return html_path, md_path


def check_warnings(run_dir: Path) -> list[str]:
    """Every list under a ``warnings`` key of ``RUN/check.json`` (incl. shortcut_probe), as text."""
    path = run_dir / "check.json"
    if not path.is_file():
        return ["no check.json in the run: `medxfer check` was not run on this data"]
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "warnings" and isinstance(value, list):
                    found.extend(
                        w.get("message", json.dumps(w)) if isinstance(w, dict) else str(w) for w in value
                    )
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    try:
        walk(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        return [f"{path}: unreadable ({exc})"]
    return list(dict.fromkeys(found))  # check copies the probe's warnings to the top level: once each

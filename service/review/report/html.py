"""render_html: the batch report as ONE self-contained HTML file, readable offline in any browser.
Charts and thumbnails are inlined as data: URIs, the CSS is inline, there is no script and no URL;
every piece of user text (names, notes, ids) goes through html.escape.
"""
from __future__ import annotations

from datetime import datetime
from html import escape

from service.review.checklist import CRITERIA, batch_checklist
from service.review.checks import CHECKS
from service.review.report.charts import CHARTS, skip_reason
from service.review.report.data import ImageRow, ReportInput
from service.review.report.derive import effort_by_class, effort_overall, flag_counts, gallery, hardest, open_flags
from service.review.report.inline import data_uri, thumb_uri
from service.review.report.style import CSS

# No script may run and nothing may load from outside, even if some text slipped past escaping.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CRITERION_LABELS = {"all_segments_present": "All segments present", "clean_overlaps": "Clean overlaps",
                    "no_margins": "No empty margins", "no_islands": "No stray islands",
                    "left_right_ok": "Left/right consistent", "no_disagreement": "No confident disagreement"}
assert set(CRITERION_LABELS) == {"all_segments_present", *CRITERIA}  # a new criterion needs a label
SECTIONS = {"checklist": "Checklist", "classes": "Class distribution", "flags": "QA flags",
            "effort": "Correction effort", "agreement": "Agreement", "hardest": "Hardest images",
            "gallery": "Gallery", "images": "All images"}


def e(value) -> str:
    return escape("" if value is None else str(value))


def _when(v) -> str:
    return v.strftime("%Y-%m-%d %H:%M %Z").strip() if isinstance(v, datetime) else str(v or "")


def _pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _img(blob: bytes | None, alt: str, missing: str = "no thumbnail") -> str:
    uri = thumb_uri(blob)
    return f'<img src="{uri}" alt="{e(alt)}">' if uri else f'<div class="noimg">{e(missing)}</div>'


def _swatch(data: ReportInput, name: str) -> str:
    r, g, b = data.color(name)
    return f'<span class="cls"><span class="sw" style="background:rgb({r},{g},{b})"></span>{e(name)}</span>'


def _pill(text: str, kind: str) -> str:
    return f'<span class="pill {kind}">{e(text)}</span>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    """Cells are HTML already (escaped by the caller); `numeric` columns are right-aligned."""
    th = "".join(f'<th class="n">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _chart(name: str, data: ReportInput, charts: dict[str, bytes], caption: str = "") -> str:
    uri = data_uri(charts.get(name))
    if uri is None:
        reason = skip_reason(name, data) or "The chart could not be drawn."
        return f'<p class="empty">{e(CHARTS[name].title)}: {e(reason)}</p>'
    cap = f"<figcaption>{e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{e(CHARTS[name].title)}">{cap}</figure>'


def _section(key: str, lead: str, body: str) -> str:
    return f'<section id="{key}"><h2>{e(SECTIONS[key])}</h2><p class="lead">{e(lead)}</p>{body}</section>'


def _checklist(data: ReportInput) -> dict | None:
    if data.batch_checklist:
        return data.batch_checklist
    named = {r.image_id: r.checklist for r in data.images if r.checklist}
    return batch_checklist(named) if named else None


def _header(data: ReportInput) -> str:
    b = data.batch
    facts = [("Batch", b.id), ("Created", _when(b.created_at)), ("Model version", b.model_version or "–"),
             ("Taxonomy", b.taxonomy or "–"), ("Annotators", ", ".join(b.annotators) or "–")]
    facts += [(k.replace("_", " ").capitalize(), v) for k, v in b.counts.items()]
    dl = "".join(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>" for k, v in facts)
    nav = "".join(f'<a href="#{k}">{e(v)}</a>' for k, v in SECTIONS.items())
    return (f'<header><div class="wrap"><h1>{e(b.name)}</h1><div class="sub">Batch summary report · generated '
            f'{e(_when(data.generated_at))}</div><dl class="facts">{dl}</dl></div></header><nav>{nav}</nav>')


def _kpis(data: ReportInput, cl: dict | None) -> str:
    eff, flags = effort_overall(data), flag_counts(data)
    raised = sum(c["total"] for c in flags.values())
    still_open = sum(c["open"] for c in flags.values())
    items = [(str(len(data.images)), "images in the report", "neutral")]
    if cl:
        items.append((f"{cl['passed']} / {cl['images']}", "passed the QA checklist",
                      "good" if cl["passed"] == cl["images"] else "bad"))
    items.append((f"{raised - still_open} / {raised}", "QA flags resolved", "good" if not still_open else "bad"))
    items.append((_pct(eff["changed_fraction"]), "pixels changed vs the draft (mean)", "neutral"))
    if data.agreement and data.agreement.get("pixel_agreement") is not None:
        items.append((_pct(data.agreement["pixel_agreement"]), "pixel agreement of annotators", "neutral"))
    cards = "".join(f'<div class="kpi {k}"><div class="v">{e(v)}</div><div class="l">{e(label)}</div></div>'
                    for v, label, k in items)
    return f'<div class="kpis">{cards}</div>'


def _checklist_section(data: ReportInput, cl: dict | None) -> str:
    if not cl or not cl["images"]:
        return _section("checklist", "", '<p class="empty">No image has a QA checklist yet.</p>')
    n = cl["images"]
    rows = []
    for line, label in CRITERION_LABELS.items():
        ok = n - cl["failing_by_criterion"].get(line, 0)
        bar = f'<div class="bar"><span style="width:{100 * ok / n:.1f}%"></span></div>'
        rows.append([e(label), f"{ok} / {n}", _pill("all pass", "ok") if ok == n else _pill(f"{n - ok} fail", "bad"),
                     bar])
    rows.append(["<b>Flags resolved</b>", f"{cl['flags_resolved']} / {cl['flags_total']}",
                 _pill("none open", "ok") if not cl["flags_open"] else _pill(f"{cl['flags_open']} open", "bad"),
                 ""])
    failing = ", ".join(e(i) for i in cl["failing"]) or "none"
    return _section("checklist", f"{cl['passed']} of {n} images pass every line "
                    f"(pass rate {_pct(cl['pass_rate'], 0)}).",
                    _table(["criterion", "images passing", "result", ""], rows, {1}, cls="narrow")
                    + f'<p class="note">Failing images: {failing}</p>')


def _classes_section(data: ReportInput, charts: dict[str, bytes]) -> str:
    total = sum(data.class_pixels.values()) or 1
    n_img = len(data.images) or max(data.class_images.values(), default=0) or 1
    garments = sum(v for c, v in data.class_pixels.items() if c != data.class_names[0]) or 1
    rows = [[_swatch(data, c), f"{data.class_pixels.get(c, 0):,}", _pct(data.class_pixels.get(c, 0) / total),
             "–" if i == 0 else _pct(data.class_pixels.get(c, 0) / garments),
             f"{data.class_images.get(c, 0)}", _pct(data.class_images.get(c, 0) / n_img, 0)]
            for i, c in enumerate(data.class_names)]
    table = _table(["class", "pixels", "share of all pixels", "share of garment pixels", "images",
                    "share of images"], rows, {1, 2, 3, 4, 5})
    return _section("classes", "Final (corrected) masks: how many pixels and how many images hold each class.",
                    _chart("class_distribution", data, charts, "Background is left out of the chart; "
                           "the table lists it.") + table)


def _flags_section(data: ReportInput, charts: dict[str, bytes]) -> str:
    counts = flag_counts(data)
    rows = [[f"<b>{e(name)}</b>", e(CHECKS[name].description if name in CHECKS else ""), str(c["total"]),
             str(c["resolved"]), str(c["open"]),
             _pct(c["resolved"] / c["total"], 0) if c["total"] else "–"] for name, c in counts.items()]
    body = _chart("qa_flags", data, charts) + _table(
        ["check", "what it finds", "raised", "resolved", "open", "resolved share"], rows, {2, 3, 4, 5})
    still = open_flags(data)
    if still:
        sev = {"error": "bad", "warning": "warn"}
        body += "<h3>Flags still open</h3>" + _table(
            ["image", "check", "severity", "classes", "what"],
            [[e(r.image_id), e(f["check"]), _pill(f.get("severity", ""), sev.get(f.get("severity"), "info")),
              " ".join(_swatch(data, c) for c in f.get("classes", [])), e(f.get("message"))] for r, f in still])
    return _section("flags", "Findings of the automatic QA checks on the corrected masks, and whether "
                    "the annotators resolved them.", body)


def _effort_section(data: ReportInput, charts: dict[str, bytes]) -> str:
    versions = [[e(v), str(s.get("images", 0)), _pct(s.get("changed_fraction")), _num(s.get("mean_iou")),
                 _num(s.get("boundary_f"))] for v, s in data.effort.items()]
    per = effort_by_class(data)
    vnames = list(data.effort)
    head = ["class", "images", "IoU", "boundary F"] + [f"IoU {e(v)}" for v in vnames]
    classes = [[_swatch(data, c), str(s["count"]), _num(s["iou"]), _num(s["boundary_f"])]
               + [_num(data.effort[v]["classes"].get(c, {}).get("iou")) for v in vnames] for c, s in per.items()]
    body = "<h3>By class</h3>" + _chart("effort_by_class", data, charts, "Worst class on top; n = images "
                                        "whose draft or final mask has the class.")
    if classes:
        body += _table(head, classes, set(range(1, len(head))))
    table = _table(["model version", "images", "pixels changed", "mean IoU", "boundary F"], versions,
                   {1, 2, 3, 4}) if versions else ""
    body += (f'<h3>By model version</h3><div class="two eq"><div>{table}</div>'
             f'<div>{_chart("effort_by_version", data, charts)}</div></div>')
    body += "<h3>Over time</h3>" + _chart("effort_over_time", data, charts)
    return _section("effort", "How far annotators moved the model's draft: share of pixels changed, and "
                    "draft-vs-final IoU and boundary F (1.0 = the draft was kept as is).", body)


def _agreement_section(data: ReportInput, charts: dict[str, bytes]) -> str:
    ag = data.agreement
    body = _chart("agreement_by_class", data, charts)
    if ag and ag.get("images"):
        body = (f'<p class="note">{ag["images"]} image(s) corrected by two annotators: pixel agreement '
                f'{_pct(ag.get("pixel_agreement"))}, mean IoU {_num(ag.get("mean_iou"))}, boundary F '
                f'{_num(ag.get("boundary_f"))}.</p>') + body
        rows = [[e(p), str(s["images"]), _pct(s.get("pixel_agreement")), _num(s.get("mean_iou")),
                 _num(s.get("boundary_f"))] for p, s in ag.get("by_pair", {}).items()]
        if rows:
            body += "<h3>By annotator pair</h3>" + _table(
                ["annotators", "images", "pixel agreement", "mean IoU", "boundary F"], rows, {1, 2, 3, 4})
    if data.disagreement_samples:
        figs = "".join(f'<figure>{_img(s.png, f"disagreement on {s.image_id}")}<figcaption>{e(s.image_id)}: '
                       f'{e(" vs ".join(s.annotators))} ({_pct(s.pixel_agreement)} agree)</figcaption></figure>'
                       for s in data.disagreement_samples)
        body += ("<h3>Where annotators disagree</h3><p class=\"note\">Magenta: pixels the two annotators "
                 f"labelled differently.</p><div class=\"gallery\">{figs}</div>")
    return _section("agreement", "Images corrected independently by two annotators: how much they agree.", body)


def _image_facts(data: ReportInput, r: ImageRow) -> str:
    eff = r.effort or {}
    n_open = sum(not f.get("resolved") for f in r.flags)
    return (f'<div>difficulty <b>{_num(r.difficulty)}</b> · changed <b>{_pct(eff.get("changed_fraction"))}'
            f'</b></div><div>{e(r.annotator or "unassigned")} · {e(r.qa_status)} · {n_open} open flag(s)</div>'
            f'<div>{"".join(_swatch(data, c) for c in r.classes)}</div>')


def _hardest_section(data: ReportInput, n: int) -> str:
    rows = hardest(data, n)
    if not rows:
        return _section("hardest", "", '<p class="empty">No images.</p>')
    cards = "".join(f'<div class="card">{_img(r.overlay_png, r.image_id)}<div class="body"><div class="rank">'
                    f'#{i}</div><div class="id">{e(r.image_id)}</div><div class="why">'
                    f'{e(r.difficulty_reason or "no reason recorded")}</div>{_image_facts(data, r)}</div></div>'
                    for i, r in enumerate(rows, 1))
    return _section("hardest", f"The {len(rows)} images the model was least sure about, with why.",
                    f'<div class="hard">{cards}</div>')


def _gallery_section(data: ReportInput, n: int) -> str:
    rows = gallery(data, n)
    legend = " ".join(_swatch(data, c) for c in data.class_names[1:] if data.class_pixels.get(c))
    figs = "".join(f'<figure>{_img(r.overlay_png, r.image_id)}<figcaption><b>{e(r.image_id)}</b> · '
                   f'{e(r.annotator or "unassigned")} · {e(r.qa_status)}</figcaption></figure>' for r in rows)
    body = (f'<div class="legend">{legend}</div><div class="gallery">{figs}</div>' if rows
            else '<p class="empty">No overlay thumbnails were supplied for this batch.</p>')
    return _section("gallery", "Final masks over their photos, a sample spread over the batch.", body)


def _images_section(data: ReportInput) -> str:
    status = {"approved": "ok", "rejected": "bad", "submitted": "info"}
    rows = []
    for r in sorted(data.images, key=lambda r: r.image_id):
        eff, cl = r.effort or {}, r.checklist
        n_open = sum(not f.get("resolved") for f in r.flags)
        check = "–" if cl is None else _pill("pass", "ok") if cl["passed"] else _pill(
            "fail" + (f": missing {', '.join(cl['missing_segments'])}" if cl.get("missing_segments") else ""), "bad")
        model = f" · {e(r.draft_model_version)}" if r.draft_model_version else ""
        rows.append([f'<b>{e(r.image_id)}</b><div class="sub">{r.width}×{r.height}{model}</div>',
                     e(r.annotator or "–") + f'<div class="sub">{e(r.reviewer or "no reviewer")}</div>',
                     _pill(r.qa_status, status.get(r.qa_status, "warn")),
                     f'<div class="chips">{"".join(_swatch(data, c) for c in r.classes)}</div>', _num(r.difficulty),
                     _pct(eff.get("changed_fraction")), _num(eff.get("mean_iou")), f"{n_open} / {len(r.flags)}",
                     check, f'<div class="notes">{e(r.notes)}</div>'])
    return _section("images", f"Every image of the batch ({len(rows)}).", _table(
        ["image · draft model", "annotator / reviewer", "status", "classes", "difficulty", "changed", "IoU",
         "open flags", "checklist", "notes"], rows, {4, 5, 6, 7}, cls="dense"))


def render_html(data: ReportInput, charts: dict[str, bytes], hardest_n: int = 8, gallery_n: int = 12) -> str:
    """The whole report as one HTML string; `charts` from charts.render_charts(data)."""
    cl = _checklist(data)
    body = "".join([_kpis(data, cl), _checklist_section(data, cl), _classes_section(data, charts),
                    _flags_section(data, charts), _effort_section(data, charts), _agreement_section(data, charts),
                    _hardest_section(data, hardest_n), _gallery_section(data, gallery_n), _images_section(data)])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(data.batch.name)} · batch report</title><style>{CSS}</style></head><body>"
            f"{_header(data)}<main>{body}</main><footer>Tailor batch report · {e(data.batch.taxonomy)} · "
            f"generated {e(_when(data.generated_at))}</footer></body></html>\n")

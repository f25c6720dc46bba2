"""The report's inline stylesheet: one constant, so the HTML needs no file or URL beside it.
System fonts only (nothing to download); a print rule keeps sections from splitting across pages.
Class colours are not here: they come from the taxonomy's palette, inline on each swatch.
"""

CSS = """
:root { --ink: #1f2328; --muted: #5d6670; --line: #d9dee4; --bg: #f3f5f8; --card: #fff;
        --ok: #1f7a44; --ok-bg: #e3f4ea; --bad: #b42323; --bad-bg: #fbe7e7; --warn: #8a5a00; --warn-bg: #fdf1d8;
        --accent: #2f5fa5; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
       font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
header { background: #1e2a3a; color: #fff; padding: 28px 0 22px; }
header .wrap, main { max-width: 1200px; margin: 0 auto; padding: 0 28px; }
header h1 { margin: 0 0 4px; font-size: 28px; font-weight: 650; letter-spacing: -0.01em; }
header .sub { color: #b8c4d4; margin-bottom: 18px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 10px 24px; margin: 0; }
.facts div { border-left: 3px solid #4f6b8f; padding-left: 10px; }
.facts dt { font-size: 12px; text-transform: uppercase; letter-spacing: 0.05em; color: #9fb0c6; }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
nav { max-width: 1200px; margin: 0 auto; padding: 12px 28px 0; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; white-space: nowrap; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 14px; margin: 18px 0; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.kpi .v { font-size: 26px; font-weight: 700; }
.kpi .l { color: var(--muted); font-size: 13px; }
.kpi.good { border-top: 4px solid var(--ok); } .kpi.bad { border-top: 4px solid var(--bad); }
.kpi.neutral { border-top: 4px solid var(--accent); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 20px 24px 22px;
          margin: 18px 0; break-inside: avoid-page; }
h2 { margin: 0 0 6px; font-size: 21px; }
h3 { margin: 20px 0 8px; font-size: 16px; }
p.lead, p.note { color: var(--muted); margin: 0 0 12px; }
p.empty { background: var(--bg); border: 1px dashed var(--line); border-radius: 8px; padding: 14px 16px;
          color: var(--muted); margin: 10px 0; }
figure { margin: 10px 0 4px; }
figure img { max-width: 100%; height: auto; display: block; border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.two { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 24px; align-items: start; }
.two.eq { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 8px 0 4px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f5; font-size: 12.5px; font-weight: 600; color: #47505a; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
.sw { display: inline-block; width: 12px; height: 12px; border-radius: 3px; border: 1px solid rgba(0,0,0,.35);
      vertical-align: -1px; margin-right: 6px; }
.cls { white-space: nowrap; margin-right: 8px; display: inline-block; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.pill.ok { background: var(--ok-bg); color: var(--ok); } .pill.bad { background: var(--bad-bg); color: var(--bad); }
.pill.warn { background: var(--warn-bg); color: var(--warn); } .pill.info { background: #e8eef8; color: var(--accent); }
table.narrow { max-width: 820px; }
.bar { width: 240px; position: relative; height: 8px; background: var(--bad-bg); border-radius: 4px;
       min-width: 90px; margin-top: 5px; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; background: var(--ok); border-radius: 4px; }
.hard { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 10px; overflow: hidden; display: flex; background: #fff; }
.card img { width: 124px; min-height: 186px; align-self: stretch; object-fit: cover; flex: none; background: #ddd; }
.card .noimg { width: 118px; flex: none; background: var(--bg); color: var(--muted); font-size: 12px;
               display: flex; align-items: center; justify-content: center; text-align: center; padding: 6px; }
.card .body { padding: 10px 12px; font-size: 13px; min-width: 0; }
.card .rank { font-size: 12px; color: var(--muted); }
.card .id { font-weight: 700; font-size: 15px; overflow-wrap: anywhere; }
.card .why { margin: 4px 0; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px; }
.gallery figure { margin: 0; }
.gallery img { width: 100%; aspect-ratio: 2 / 3; object-fit: cover; border: 1px solid var(--line); }
.legend { margin: 6px 0 12px; font-size: 13px; }
table.dense { font-size: 13px; }
table.dense td { padding: 6px 8px; }
table.dense .sub { color: var(--muted); font-size: 12px; }
.chips { display: flex; flex-wrap: wrap; gap: 2px 0; min-width: 180px; max-width: 280px; font-size: 12.5px; }
table.dense .pill { white-space: normal; border-radius: 8px; }
table.dense .sub { white-space: nowrap; }
.pill { white-space: nowrap; }
.notes { min-width: 120px; max-width: 240px; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 13px; text-align: center; padding: 10px 0 30px; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
@media print { body { background: #fff; } section { border: none; } nav { display: none; } }
"""

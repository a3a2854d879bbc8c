"""HTML pages of a dataset's episodes: every camera as a browser-playable H.264 video, every numeric feature
(state, action, ...) as a line plot per joint, a cursor that follows the video, and click/drag on a plot to
seek. Each page is self-contained (the video is inlined), so one file can be mailed; `write_site` adds an
index and prev/next links, and `visualize_serve.serve` renders the same pages on demand over HTTP."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from apprentice.dataset.format import DatasetError
from apprentice.dataset.metadata import DatasetMeta, LocalStore
from apprentice.dataset.reader import LeRobotDataset

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]
# Plot geometry in SVG user units: the left margin holds the y labels, the bottom one the seconds.
MARGIN_LEFT, PLOT_W, PLOT_H, MARGIN_BOTTOM = 48, 640, 160, 16
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def episode_filename(episode: int) -> str:
    """The page name of an episode, the same in a written site and on the server (links work in both)."""
    return f"episode_{episode}.html"


def _h264_bytes(frames: np.ndarray, fps: int) -> bytes:
    """Re-encode decoded frames as H.264 in mp4: Chromium (Debian's included), Firefox and Safari all play it,
    whatever codec the dataset stores (AV1 is not decoded by every Safari), and each frame keeps its pts
    i/fps, so `currentTime * fps` is the frame index the plots show."""
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2  # yuv420p needs even sizes
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            video_frame.pts, video_frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _x(i: int, n: int) -> float:
    """x of frame i of n; the page's script uses the same formula for the cursor."""
    return MARGIN_LEFT + (i / (n - 1) * PLOT_W if n > 1 else 0.0)


def _svg_plot(index: int, key: str, values: np.ndarray, names: list[str], fps: int) -> str:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    span = hi - lo or 1.0
    n = len(values)
    xs = [_x(i, n) for i in range(n)]
    lines = []
    for d in range(values.shape[1]):
        ys = PLOT_H - (values[:, d] - lo) / span * (PLOT_H - 10) - 5
        points = " ".join(f"{x:.2f},{y:.1f}" for x, y in zip(xs, ys))
        lines.append(f'<polyline fill="none" stroke="{COLORS[d % len(COLORS)]}" stroke-width="1.5" '
                     f'points="{points}"><title>{html.escape(names[d])}</title></polyline>')
    legend = " ".join(f'<span style="color:{COLORS[d % len(COLORS)]}">&#9632; {html.escape(name)} '
                      f'<b class="val" id="val-{index}-{d}"></b></span>' for d, name in enumerate(names))
    duration = (n - 1) / fps
    ticks = "".join(f'<text x="{MARGIN_LEFT + f * PLOT_W:.1f}" y="{PLOT_H + MARGIN_BOTTOM - 3}" font-size="10" '
                    f'text-anchor="{anchor}">{f * duration:.2f} s</text>'
                    for f, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")))
    width, height = MARGIN_LEFT + PLOT_W + 8, PLOT_H + MARGIN_BOTTOM
    return (f'<section class="feature"><h3>{html.escape(key)}</h3><div class="legend">{legend}</div>'
            f'<svg class="plot" data-key="{html.escape(key)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">'
            f'<rect x="{MARGIN_LEFT}" y="0" width="{PLOT_W}" height="{PLOT_H}" fill="#fafafa" stroke="#ccc"/>'
            f'<text x="{MARGIN_LEFT - 4}" y="12" font-size="10" text-anchor="end">{hi:.3g}</text>'
            f'<text x="{MARGIN_LEFT - 4}" y="{PLOT_H - 4}" font-size="10" text-anchor="end">{lo:.3g}</text>'
            f'{ticks}{"".join(lines)}<line class="cursor" x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT}" y1="0" '
            f'y2="{PLOT_H}" stroke="black" stroke-width="1.5"/></svg></section>')


def _plotted(ft: dict[str, Any]) -> bool:
    return ft["dtype"].startswith(("float", "int", "uint")) or ft["dtype"] == "bool"


def _names(key: str, ft: dict[str, Any], width: int) -> list[str]:
    names = ft.get("names")
    if isinstance(names, dict):  # lerobot's older {"motors": [...]} form
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == width:
        return [str(n) for n in names]
    return [f"{key}[{i}]" for i in range(width)]


def _nav(episode: int, total: int) -> str:
    links = ['<a href="index.html">all episodes</a>']
    if episode > 0:
        links.append(f'<a id="prev" href="{episode_filename(episode - 1)}">&larr; episode {episode - 1}</a>')
    if episode + 1 < total:
        links.append(f'<a id="next" href="{episode_filename(episode + 1)}">episode {episode + 1} &rarr;</a>')
    return f'<nav>{" · ".join(links)}</nav>'


def episode_html(root: str | Path, episode: int, *, nav: bool = False) -> str:
    """The page of one episode; `nav` adds links to the index and the neighbouring episodes."""
    ds = LeRobotDataset(root, episodes=[episode])
    fps, n = ds.fps, len(ds)
    videos = []
    for i, key in enumerate(ds.camera_keys):
        data = base64.b64encode(_h264_bytes(ds.episode_frames(episode, key), fps)).decode()
        controls = " controls" if i == 0 else ""  # the first camera is the clock; the others follow it
        videos.append(f'<figure><figcaption>{html.escape(key)}</figcaption><video{controls} muted playsinline '
                      f'preload="auto" data-key="{html.escape(key)}" src="data:video/mp4;base64,{data}">'
                      "</video></figure>")
    plots, series, texts = [], [], {}
    for key, ft in ds.features.items():
        if key in BOOKKEEPING or ft["dtype"] in ("video", "image"):
            continue
        if ft["dtype"] == "string":
            texts[key] = [str(s) for s in ds.column(key).reshape(-1)]
        elif _plotted(ft):
            values = ds.column(key).astype(np.float64).reshape(n, -1)
            plots.append(_svg_plot(len(series), key, values, _names(key, ft, values.shape[1]), fps))
            series.append(np.round(values, 6).tolist())
    text_rows = "".join(f'<div>{html.escape(k)}: <span class="text" data-key="{html.escape(k)}"></span></div>'
                        for k in texts)
    tasks = ", ".join(ds.meta.episodes[episode]["tasks"])
    config = {"fps": fps, "n": n, "marginLeft": MARGIN_LEFT, "plotW": PLOT_W, "series": series, "texts": texts}
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>episode {episode}</title>
<style>body{{font-family:sans-serif;margin:12px}} figure{{margin:0}} video{{max-width:480px;min-width:240px}}
svg.plot{{cursor:col-resize;touch-action:none;user-select:none}} .legend{{font-size:12px}} nav{{margin:4px 0}}
#bar{{display:flex;gap:8px;align-items:center;margin:8px 0}} #scrub{{width:{PLOT_W}px}}</style></head>
<body><h2>{html.escape(str(root))} — episode {episode}</h2>{_nav(episode, ds.meta.total_episodes) if nav else ""}
<p>task: {html.escape(tasks)} · {n} frames at {fps} fps · {n / fps:.2f} s</p>
<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(videos)}</div>
<div id="bar"><button id="play">play</button><input id="scrub" type="range" min="0" max="{n - 1}" step="1" value="0">
<span id="readout"></span></div>{text_rows}{"".join(plots)}
<script>const CFG = {json.dumps(config)};</script><script>{_SCRIPT}</script></body></html>"""


# The clock is the first video (its currentTime), or a timer when the episode has no camera. Everything
# else -- cursors, values, the other videos, the slider -- is drawn from that clock on every animation frame,
# so the cursor follows playback, seeks and drags alike.
_SCRIPT = """
const videos = [...document.querySelectorAll("video")], clock = videos[0] || null;
const scrub = document.getElementById("scrub"), playButton = document.getElementById("play");
let timerT = 0, timerPlaying = false, lastTs = null;
const duration = CFG.n / CFG.fps;
const now = () => clock ? clock.currentTime : timerT;
const frameAt = t => Math.max(0, Math.min(CFG.n - 1, Math.floor(t * CFG.fps + 1e-6)));
const xOf = f => CFG.marginLeft + (CFG.n > 1 ? f / (CFG.n - 1) * CFG.plotW : 0);
function seekFrame(f) {
  const t = (Math.max(0, Math.min(CFG.n - 1, f)) + 0.5) / CFG.fps;  // the frame's middle: no boundary doubt
  if (clock) clock.currentTime = t; else timerT = t;
  render();
}
function render() {
  const f = frameAt(now()), x = xOf(f);
  document.querySelectorAll("line.cursor").forEach(l => { l.setAttribute("x1", x); l.setAttribute("x2", x); });
  CFG.series.forEach((s, i) => s[f].forEach((v, d) => {
    document.getElementById(`val-${i}-${d}`).textContent = Number.isInteger(v) ? v : v.toFixed(3); }));
  document.querySelectorAll("span.text").forEach(el => { el.textContent = CFG.texts[el.dataset.key][f]; });
  document.getElementById("readout").textContent = `frame ${f} / ${CFG.n - 1} · ${now().toFixed(3)} s`;
  scrub.value = f;
  playButton.textContent = (clock ? !clock.paused : timerPlaying) ? "pause" : "play";
}
function tick(ts) {
  if (!clock && timerPlaying && lastTs !== null) timerT = (timerT + (ts - lastTs) / 1000) % duration;
  lastTs = ts;
  for (const v of videos.slice(1)) {  // the other cameras follow the first
    if (Math.abs(v.currentTime - clock.currentTime) > 1.5 / CFG.fps) v.currentTime = clock.currentTime;
    if (clock.paused && !v.paused) v.pause();
    if (!clock.paused && v.paused) v.play().catch(() => {});
  }
  render();
  requestAnimationFrame(tick);
}
function togglePlay() {
  if (clock) { if (clock.paused) clock.play(); else clock.pause(); } else timerPlaying = !timerPlaying;
  render();
}
playButton.addEventListener("click", togglePlay);
scrub.addEventListener("input", () => seekFrame(Number(scrub.value)));
if (clock) ["timeupdate", "seeked", "play", "pause"].forEach(e => clock.addEventListener(e, render));
if (clock) clock.loop = true;
document.querySelectorAll("svg.plot").forEach(svg => {
  let dragging = false;
  const seekTo = e => {
    const box = svg.getBoundingClientRect(), x = (e.clientX - box.left) * svg.viewBox.baseVal.width / box.width;
    seekFrame(Math.round((x - CFG.marginLeft) / CFG.plotW * (CFG.n - 1)));
  };
  svg.addEventListener("pointerdown", e => { dragging = true; svg.setPointerCapture(e.pointerId); seekTo(e); });
  svg.addEventListener("pointermove", e => { if (dragging) seekTo(e); });
  svg.addEventListener("pointerup", () => { dragging = false; });
});
document.addEventListener("keydown", e => {
  if (e.target.tagName === "INPUT") return;
  if (e.key === " ") { e.preventDefault(); togglePlay(); }
  if (e.key === "ArrowRight") seekFrame(frameAt(now()) + 1);
  if (e.key === "ArrowLeft") seekFrame(frameAt(now()) - 1);
});
requestAnimationFrame(tick);
"""


def index_html(root: str | Path) -> str:
    """A table of every episode (length, duration, tasks) linking to its page."""
    meta = _meta(root)
    rows = "".join(
        f'<tr><td><a href="{episode_filename(i)}">episode {i}</a></td><td>{ep["length"]}</td>'
        f'<td>{ep["length"] / meta.fps:.2f} s</td><td>{html.escape(", ".join(ep["tasks"]))}</td></tr>'
        for i, ep in enumerate(meta.episodes))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(str(root))}</title>
<style>body{{font-family:sans-serif;margin:12px}} td,th{{padding:2px 10px;text-align:left}}</style></head>
<body><h2>{html.escape(str(root))}</h2><p>{meta.total_episodes} episodes, {meta.total_frames} frames at
{meta.fps} fps · robot_type {html.escape(str(meta.info.get("robot_type")))} · cameras:
{html.escape(", ".join(meta.camera_keys) or "none")}</p>
<table><tr><th>episode</th><th>frames</th><th>duration</th><th>tasks</th></tr>{rows}</table></body></html>"""


def write_episode_html(root: str | Path, episode: int, output: str | Path) -> Path:
    """Write the page of one episode (no links; it stands alone) to `output` and return its path."""
    return _write(Path(output), episode_html(root, episode))


def write_site(root: str | Path, out_dir: str | Path, episodes: Sequence[int] | None = None) -> Path:
    """Write index.html and the linked page of each episode (all by default) into `out_dir`; returns the index."""
    out = Path(out_dir)
    total = _meta(root).total_episodes
    chosen = list(range(total)) if episodes is None else list(episodes)
    if any(not 0 <= e < total for e in chosen):
        raise DatasetError(f"--episodes {chosen}: out of range 0..{total - 1} for {root}")
    index = _write(out / "index.html", index_html(root))
    for e in chosen:
        _write(out / episode_filename(e), episode_html(root, e, nav=True))
    return index


def _meta(root: str | Path) -> DatasetMeta:
    """The metadata of a local root or a Hub repo id (pulled as the reader does)."""
    path = Path(root)
    if path.exists() or str(root).count("/") != 1:
        return DatasetMeta.load(LocalStore(path))
    return LeRobotDataset(root, episodes=[0]).meta


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

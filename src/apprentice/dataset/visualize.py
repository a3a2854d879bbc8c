"""One self-contained HTML page per episode: every camera as a browser-playable H.264 video and every numeric
vector feature (state, action, ...) as a line plot per joint, with a cursor that follows the video."""

from __future__ import annotations

import base64
import html
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from apprentice.dataset.reader import LeRobotDataset

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]
PLOT_W, PLOT_H = 640, 180


def _h264_base64(frames: np.ndarray, fps: int) -> str:
    """Re-encode decoded frames as H.264 (every browser plays it; AV1 support varies)."""
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
    return base64.b64encode(buffer.getvalue()).decode()


def _svg_plot(key: str, values: np.ndarray, names: list[str], fps: int) -> str:
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or 1.0
    n = len(values)
    lines = []
    for d in range(values.shape[1]):
        xs = np.linspace(0, PLOT_W, n) if n > 1 else np.zeros(1)
        ys = PLOT_H - (values[:, d] - lo) / span * (PLOT_H - 10) - 5
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
        color = COLORS[d % len(COLORS)]
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}">'
                     f"<title>{html.escape(names[d])}</title></polyline>")
    legend = " ".join(f'<span style="color:{COLORS[d % len(COLORS)]}">&#9632; {html.escape(name)}</span>'
                      for d, name in enumerate(names))
    return (f"<h3>{html.escape(key)}</h3><div>{legend}</div>"
            f'<svg width="{PLOT_W}" height="{PLOT_H}" style="border:1px solid #ccc">'
            f'<text x="4" y="12" font-size="10">{hi:.3g}</text>'
            f'<text x="4" y="{PLOT_H - 4}" font-size="10">{lo:.3g}</text>{"".join(lines)}'
            f'<line class="cursor" x1="0" x2="0" y1="0" y2="{PLOT_H}" stroke="black"/></svg>'
            f"<div style='font-size:11px'>{n} frames, {n / fps:.2f} s</div>")


def write_episode_html(root: str | Path, episode: int, output: str | Path) -> Path:
    """Write the episode page to `output` and return its path."""
    ds = LeRobotDataset(root, episodes=[episode])
    fps = ds.fps
    videos = []
    for key in ds.meta.video_keys:
        data = _h264_base64(ds.episode_frames(episode, key), fps)
        videos.append(f'<figure><figcaption>{html.escape(key)}</figcaption><video controls loop '
                      f'src="data:video/mp4;base64,{data}"></video></figure>')
    plots = []
    for key, ft in ds.features.items():
        numeric = ft["dtype"].startswith(("float", "int")) and key not in (
            "timestamp", "frame_index", "episode_index", "index", "task_index")
        if numeric:
            values = ds.column(key).astype(np.float64).reshape(len(ds), -1)
            names = ft["names"] if isinstance(ft.get("names"), list) and len(ft["names"]) == values.shape[1] \
                else [f"{key}[{i}]" for i in range(values.shape[1])]
            plots.append(_svg_plot(key, values, [str(n) for n in names], fps))
    tasks = ", ".join(ds.meta.episodes[episode]["tasks"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>episode {episode}</title></head>
<body style="font-family:sans-serif">
<h2>{html.escape(str(root))} — episode {episode}</h2><p>task: {html.escape(tasks)} · {len(ds)} frames at {fps} fps</p>
<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(videos)}</div>{"".join(plots)}
<script>
// Move the plot cursors with the first video's playback position.
const v = document.querySelector("video");
if (v) v.addEventListener("timeupdate", () => {{
  const x = {PLOT_W} * v.currentTime / Math.max(v.duration || 1, 1e-6);
  document.querySelectorAll(".cursor").forEach(l => {{ l.setAttribute("x1", x); l.setAttribute("x2", x); }});
}});
</script></body></html>"""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page)
    return output


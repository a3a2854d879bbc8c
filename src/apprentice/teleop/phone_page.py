"""The phone page (HTML + JS in one string, so it installs with the Python package, no data files)."""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, user-scalable=no">
<title>apprentice teleop</title>
<style>
 body { font-family: sans-serif; margin: 0; padding: 12px; background: #111; color: #eee;
        touch-action: none; user-select: none; -webkit-user-select: none; }
 button { font-size: 20px; padding: 18px; margin: 6px 0; width: 100%; border-radius: 10px; border: 0; }
 .row { display: flex; gap: 8px; } .row button { flex: 1; }
 #deadman { background: #b33; color: #fff; height: 140px; font-size: 26px; }
 button.on { outline: 4px solid #ff0; filter: brightness(1.4); }
 #status { font-family: monospace; font-size: 14px; white-space: pre; }
</style></head>
<body>
<div id="status">connecting…</div>
<button id="motion">enable motion sensors</button>
<button id="deadman" data-hold="deadman">HOLD to move</button>
<div class="row"><button id="gripper_open" data-hold="gripper_open">open</button>
<button id="gripper_close" data-hold="gripper_close">close</button></div>
<div class="row"><button id="start" data-press="start">start</button>
<button id="stop" data-press="stop">save</button></div>
<div class="row"><button id="rerecord" data-press="rerecord">re-record</button>
<button id="discard" data-press="discard">discard</button></div>
<button id="intervention" data-press="intervention">intervention</button>
<script>
"use strict";
const held = new Set();
const pose = { alpha: null, beta: null, gamma: null };
window.apprentice = { sent: 0, open: false, pose: pose };  // for tests and for debugging on the phone
let ws = null;
function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { window.apprentice.open = true; show(); };
  ws.onclose = () => { window.apprentice.open = false; show(); setTimeout(connect, 500); };
}
function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); window.apprentice.sent++; }
}
function sendState() {
  send({ type: "state", alpha: pose.alpha, beta: pose.beta, gamma: pose.gamma, buttons: [...held] });
}
function show() {
  const f = (v) => v === null ? "  –  " : v.toFixed(1).padStart(6);
  document.getElementById("status").textContent = (window.apprentice.open ? "connected" : "disconnected") +
    "\\nalpha" + f(pose.alpha) + " beta" + f(pose.beta) + " gamma" + f(pose.gamma) + "\\nheld: " + [...held].join(" ");
}
function onOrientation(e) {
  pose.alpha = e.alpha; pose.beta = e.beta; pose.gamma = e.gamma;
  sendState(); show();  // every sensor event goes out at once: latency is one websocket hop
}
window.addEventListener("deviceorientation", onOrientation);
document.getElementById("motion").addEventListener("click", () => {
  // iOS asks for permission on a user gesture; other browsers deliver events without it.
  if (typeof DeviceOrientationEvent !== "undefined" && DeviceOrientationEvent.requestPermission) {
    DeviceOrientationEvent.requestPermission().catch(() => {});
  }
});
for (const b of document.querySelectorAll("[data-hold]")) {
  const name = b.dataset.hold;
  const down = (e) => { e.preventDefault(); held.add(name); b.classList.add("on"); sendState(); show(); };
  const up = (e) => { e.preventDefault(); held.delete(name); b.classList.remove("on"); sendState(); show(); };
  b.addEventListener("pointerdown", down);
  for (const ev of ["pointerup", "pointercancel", "pointerleave"]) b.addEventListener(ev, up);
}
for (const b of document.querySelectorAll("[data-press]")) {
  b.addEventListener("click", () => send({ type: "press", button: b.dataset.press }));
}
document.addEventListener("contextmenu", (e) => e.preventDefault());  // a long press must not open a menu
setInterval(sendState, 33);  // heartbeat: the node holds the arm when these stop
connect(); show();
</script></body></html>
"""

"""Camera node: frames from a V4L2/OpenCV device, a looping video file or a synthetic pattern.

Publishes `cameras/<name>/image_raw` (sensor_msgs/Image, keep-last-5 volatile QoS, reliable by default
— see `_image_qos` — header stamp = capture time)
and, with `publish_compressed`, `cameras/<name>/image_raw/compressed` (JPEG, as image_transport's
compressed plugin). Late and dropped frames are counted, logged and published on `/diagnostics` every
`report_period_s`.

    apprentice-style: ros2 run apprentice camera_node --ros-args -p name:=front -p source:=/dev/video0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from apprentice.cameras.image import ENCODINGS, array_to_image_fields, rgb_to_compressed
from apprentice.cameras.sources import CameraError, FramePacer, make_source
from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import run_node

PARAMETERS = (
    Param("name", "top", "camera name: topics cameras/<name>/image_raw[/compressed]"),
    Param("source", "synthetic", "/dev/videoN, a device index, a video file (loops) or 'synthetic'"),
    Param("width", 640, "frame width in pixels"),
    Param("height", 480, "frame height in pixels"),
    Param("fps", 30.0, "capture and publish rate"),
    Param("encoding", "rgb8", "rgb8 | bgr8 | mono8"),
    Param("frame_id", "", "header.frame_id; '' = <name>_optical_frame"),
    Param("publish_compressed", False, "also publish JPEG on cameras/<name>/image_raw/compressed"),
    Param("jpeg_quality", 90, "JPEG quality of the compressed stream (1-100)"),
    Param("report_period_s", 5.0, "period of the late/dropped frame report on /diagnostics"),
    Param("reliability", "reliable", "reliable | best_effort (image QoS)"),
)


def _image_qos(reliability: str) -> QoSProfile:
    """Sensor-data QoS (keep last 5, volatile) with the reliability asked for.

    Default 'reliable': measured on Fast DDS (loopback, 2-core box), best-effort 640x480 rgb8 at 30 Hz
    arrived at 0.2-12 Hz (one lost UDP/SHM fragment loses the whole 900 KB sample), reliable at ~27 Hz.
    A reliable publisher still serves best-effort (sensor-data) subscribers such as rviz.
    """
    if reliability not in ("reliable", "best_effort"):
        raise CameraError(f"camera node: reliability '{reliability}' must be 'reliable' or 'best_effort'")
    qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("history", "depth", "durability")})
    qos.reliability = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return qos


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        p = declare_parameters(self, PARAMETERS)
        self.encoding = str(p["encoding"])
        if self.encoding not in ("rgb8", "bgr8", "mono8"):
            raise CameraError(
                f"camera node: encoding '{self.encoding}' must be rgb8, bgr8 or mono8 "
                f"(the Image codec knows {sorted(ENCODINGS)})"
            )
        name = str(p["name"])
        self.frame_id = str(p["frame_id"]) or f"{name}_optical_frame"
        self.source = make_source(str(p["source"]), int(p["width"]), int(p["height"]), float(p["fps"]))
        self.pacer = FramePacer(float(p["fps"]))
        self.jpeg_quality = int(p["jpeg_quality"])
        qos = _image_qos(str(p["reliability"]))
        self.image_pub = self.create_publisher(Image, f"cameras/{name}/image_raw", qos)
        self.compressed_pub = (
            self.create_publisher(CompressedImage, f"cameras/{name}/image_raw/compressed", qos)
            if p["publish_compressed"]
            else None
        )
        self._stop = threading.Event()
        # Capture runs on its own thread so a blocking device read never stalls the executor.
        self._thread = threading.Thread(target=self._capture_loop, name=f"camera-{name}", daemon=True)
        self._thread.start()
        self.source_name = str(p["source"])
        self._last_report, self._reported_bad = (time.monotonic(), 0), (0, 0)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(p["report_period_s"]), self._report)
        self.get_logger().info(
            f"camera '{name}': {p['source']} {self.source.width}x{self.source.height} "
            f"@ {p['fps']} fps -> {self.image_pub.topic_name}"
        )

    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            if not self.source.paced:
                wait = self.pacer.delay(time.monotonic())
                if wait > 0 and self._stop.wait(wait):
                    return
            try:
                rgb = self.source.read()
            except CameraError as exc:
                self.get_logger().error(str(exc))
                return
            stamp = self.get_clock().now().to_msg()  # capture time, on the node's (possibly sim) clock
            self.pacer.captured(time.monotonic())
            self._publish(rgb, stamp)

    def _publish(self, rgb, stamp) -> None:
        if self.encoding == "bgr8":
            array = rgb[:, :, ::-1]
        elif self.encoding == "mono8":
            array = (rgb @ [0.299, 0.587, 0.114]).astype("uint8")
        else:
            array = rgb
        fields = array_to_image_fields(array, self.encoding)
        msg = Image(
            height=fields["height"],
            width=fields["width"],
            encoding=fields["encoding"],
            is_bigendian=fields["is_bigendian"],
            step=fields["step"],
        )
        msg.data = fields["data"]
        msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
        self.image_pub.publish(msg)
        if self.compressed_pub is not None:
            fmt, data = rgb_to_compressed(rgb, "jpeg", self.jpeg_quality)
            cmsg = CompressedImage(format=fmt)
            cmsg.data = data
            cmsg.header = msg.header
            self.compressed_pub.publish(cmsg)

    def _report(self) -> None:
        p = self.pacer
        now = time.monotonic()
        rate = (p.frames - self._last_report[1]) / max(1e-9, now - self._last_report[0])
        self._last_report = (now, p.frames)
        bad = p.late > self._reported_bad[0] or p.dropped > self._reported_bad[1]
        self._reported_bad = (p.late, p.dropped)
        if bad:
            self.get_logger().warning(f"{p.frames} frames published, {p.late} late, {p.dropped} dropped")
        status = DiagnosticStatus(
            name=f"{self.get_name()}: {self.image_pub.topic_name}",
            hardware_id=self.source_name,
            level=DiagnosticStatus.WARN if bad else DiagnosticStatus.OK,
            message="late/dropped frames since last report" if bad else "ok",
            values=[
                KeyValue(key=k, value=str(v))
                for k, v in (("frames", p.frames), ("late", p.late), ("dropped", p.dropped), ("fps", f"{rate:.1f}"))
            ],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.source.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_node(CameraNode, argv, usage=node_help("camera_node", __doc__, PARAMETERS))


if __name__ == "__main__":
    raise SystemExit(main())

"""Remote inference: `apprentice policy-server` on a GPU box, `RemotePolicy` in the robot's policy node.

gRPC (grpcio) carries one self-describing frame per call (`wire`); `protocol` says what the frames
hold and which mismatches refuse a connection. No rclpy here: the server needs no ROS at all.
"""

from __future__ import annotations

from pathlib import Path

from apprentice.deploy import DeployError
from apprentice.deploy.remote.protocol import DEFAULT_PORT, PROTOCOL_VERSION


def read_token(token: str = "", token_file: str = "", flag: str = "--token-file") -> str:
    """The access token from a literal or a file (first line; the file keeps it out of `ps`)."""
    if token and token_file:
        raise DeployError(f"give the access token once: either the token or {flag}, not both")
    if not token_file:
        return token.strip()
    try:
        text = Path(token_file).read_text().strip()
    except OSError as exc:
        raise DeployError(f"{flag} {token_file}: {exc.strerror}; pass a readable file holding the token") from exc
    if not text:
        raise DeployError(f"{flag} {token_file} is empty; write the access token into it")
    return text.splitlines()[0].strip()


__all__ = ["DEFAULT_PORT", "PROTOCOL_VERSION", "read_token"]

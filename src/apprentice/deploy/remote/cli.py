"""`apprentice policy-server`: serve a checkpoint to policy nodes on other machines (no ROS needed).

    apprentice policy-server --policy.path=outputs/train/act/checkpoints/last/pretrained_model \
        --device=cuda --host=0.0.0.0 --port=50051 --token-file=~/.apprentice-token \
        --tls-cert=server.crt --tls-key=server.key
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from apprentice.deploy import DeployError
from apprentice.deploy.remote import DEFAULT_PORT, PROTOCOL_VERSION, read_token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apprentice policy-server", description=__doc__.splitlines()[0])
    parser.add_argument("--policy.path", "--policy-path", dest="policy_path", required=True,
                        help="checkpoint directory (pretrained_model/ with config.json + model.safetensors)")
    parser.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default: auto)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; another host needs --token or --token-file)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 = any free port")
    parser.add_argument("--token", default="", help="access token (visible in `ps`: prefer --token-file)")
    parser.add_argument("--token-file", default="", help="file whose first line is the access token")
    parser.add_argument("--tls-cert", default="", help="PEM certificate (chain): serve TLS only")
    parser.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    parser.add_argument("--max-workers", type=int, default=4, help="concurrent requests (default 4)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="policy-server: %(message)s")
    try:
        return _serve(args)
    except DeployError as exc:
        print(f"policy-server: {exc}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace) -> int:
    from apprentice.deploy.remote.server import PolicyServer, ServerConfig
    from apprentice.policies import PolicyError, load_policy

    config = ServerConfig(host=args.host, port=args.port, token=read_token(args.token, args.token_file),
                          tls_cert=args.tls_cert, tls_key=args.tls_key, max_workers=args.max_workers)
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        policy = load_policy(args.policy_path, device=device)
    except PolicyError as exc:
        raise DeployError(f"--policy.path {args.policy_path}: {exc}") from exc
    server = PolicyServer(policy, config, policy_path=str(args.policy_path))
    warm = server.warm_up()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    port = server.start()
    security = ("TLS" if config.tls_cert else "plaintext") + (", token required" if config.token else ", no token")
    if not config.tls_cert and config.token:
        logging.warning("the token and the observations travel unencrypted: add --tls-cert/--tls-key across machines")
    print(f"policy-server: serving {policy.config.type} from {args.policy_path} on {device} at "
          f"{config.host}:{port} ({security}; protocol {PROTOCOL_VERSION}; warm-up {warm * 1e3:.0f} ms)", flush=True)
    while not stop.wait(0.5):  # a timed wait: signal handlers run between waits
        pass
    server.stop(grace_s=1.0)
    print(f"policy-server: stopped after {server.requests} requests", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""lerobot-style dotted flags read into values: `--a.b=value` / `--a.b value` split into a dict, each string
parsed by the target field's annotation (draccus conventions), and the policy type a pretrained dir records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apprentice.policies import PolicyError
from apprentice.train.errors import TrainError


def split_flags(args: Sequence[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise TrainError(
                f"unexpected argument {arg!r}; flags look like --steps=1000 or --policy.type=act"
            )
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value = arg[2:], args[i + 1]
            i += 1
        else:
            key, value = arg[2:], "true"
        flags[key] = value
        i += 1
    return flags


def parse_names(raw: str) -> list[str] | str | None:
    """--peft.target_modules / --peft.full_training_modules: a JSON list (`["q_proj","v_proj"]`), `null`, or one
    string kept as it is (a module-name suffix, a regular expression, or 'all-linear')."""
    text = raw.strip() if isinstance(raw, str) else raw
    if not isinstance(text, str):
        return text
    if text.lower() in ("null", "none"):
        return None
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except json.JSONDecodeError:  # [a,b] without quotes
            return [v.strip().strip("'\"") for v in text[1:-1].split(",") if v.strip()]
    return text


def parse_value(raw: str, annotation: str, flag: str) -> Any:
    """A flag's string -> the field's type, read from its annotation (LeRobot/draccus conventions)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if text.lower() in ("null", "none") and "None" in annotation:
        return None
    try:
        if annotation.startswith("bool"):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("expected true or false")
            return text.lower() in ("true", "1", "yes")
        if annotation.startswith(("int", "float")) or annotation.startswith(("tuple", "list", "dict")):
            value = json.loads(text) if text[:1] in "[{(" or annotation[0] in "if" else None
            if value is None:  # comma-separated list
                value = [json.loads(v) for v in text.split(",")]
            if annotation.startswith("int"):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError("expected an integer")
                return int(value)
            if annotation.startswith("float"):
                return float(value)
            return tuple(value) if annotation.startswith("tuple") else value
    except (ValueError, json.JSONDecodeError) as exc:
        raise TrainError(f"--{flag}={raw}: cannot read as {annotation} ({exc})") from exc
    return text


def pretrained_type(path: Path) -> str:
    """The policy type recorded in a pretrained_model/ dir (fine-tuning needs no --policy.type)."""
    from apprentice.policies.pretrained import resolve_pretrained

    try:  # a local dir, or a Hub repo id (lerobot/smolvla_base) fetched through huggingface_hub
        path = resolve_pretrained(path)
    except PolicyError as exc:
        raise TrainError(f"--policy.pretrained_path={path}: {exc}") from exc
    config = path / "config.json" if (path / "config.json").is_file() else path / "pretrained_model" / "config.json"
    try:
        return str(json.loads(config.read_text())["type"])
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise TrainError(f"--policy.pretrained_path={path}: no readable config.json with a 'type' ({exc})") from exc


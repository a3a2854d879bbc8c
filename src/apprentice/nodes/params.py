"""A node's ROS parameters as one table: what the node declares and what its `--help` prints.

Each node module holds `PARAMETERS` (a tuple of `Param`); the node declares exactly those (with their
description in the ParameterDescriptor, so `ros2 param describe` shows it too) and `run_node` prints them
for `--help` before rclpy.init — one list, so the help cannot drift from what the node accepts.
Imports no rclpy at module level: `--help` must answer without a ROS context.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    name: str
    default: bool | int | float | str | list[Any]
    description: str
    # A ROS array parameter takes its type from its default; an empty list needs it said (str | float | int).
    array_of: type | None = None

    @property
    def type_name(self) -> str:
        if isinstance(self.default, list):
            item = self.array_of or (type(self.default[0]) if self.default else str)
            return f"{item.__name__}[]"
        return type(self.default).__name__


def dataclass_parameters(cls: type, prefix: str = "") -> tuple[Param, ...]:
    """One Param per field of a parameters dataclass (description from the field's metadata['help'])."""
    instance = cls()
    return tuple(
        Param(prefix + f.name, getattr(instance, f.name), str(f.metadata.get("help", "")))
        for f in dataclasses.fields(cls)
    )


def declare_parameters(node: Any, params: Sequence[Param]) -> dict[str, Any]:
    """Declare every parameter on `node` (an rclpy Node); return {name: value} after overrides."""
    from rcl_interfaces.msg import ParameterDescriptor, ParameterType

    array_types = {
        str: ParameterType.PARAMETER_STRING_ARRAY,
        float: ParameterType.PARAMETER_DOUBLE_ARRAY,
        int: ParameterType.PARAMETER_INTEGER_ARRAY,
    }
    for p in params:
        descriptor = ParameterDescriptor(description=p.description)
        if isinstance(p.default, list) and not p.default:
            descriptor.type = array_types[p.array_of or str]
        node.declare_parameter(p.name, p.default, descriptor)
    return {p.name: node.get_parameter(p.name).value for p in params}


def wants_help(args: Sequence[str]) -> bool:
    """`-h`/`--help` among the node's own arguments (not inside `--ros-args ... --`)."""
    inside_ros_args = False
    for arg in args:
        if arg == "--ros-args":
            inside_ros_args = True
        elif arg == "--":
            inside_ros_args = False
        elif arg in ("-h", "--help") and not inside_ros_args:
            return True
    return False


def node_help(executable: str, doc: str | None, params: Sequence[Param]) -> str:
    """The text `ros2 run apprentice <executable> --help` prints: summary, usage, parameter table."""
    summary = (doc or "").strip().split("\n\n")[0]
    lines = [
        f"usage: ros2 run apprentice {executable} [--help] [--ros-args -p NAME:=VALUE ... --params-file FILE]",
        "",
        summary,
        "",
        "parameters:",
    ]
    width = max((len(p.name) for p in params), default=0)
    type_width = max((len(p.type_name) for p in params), default=0)
    for p in params:
        text = f"  {p.name:<{width}}  {p.type_name:<{type_width}}  default {_yaml_value(p.default)}"
        lines.append(text + (f"  — {p.description}" if p.description else ""))
    return "\n".join(lines) + "\n"


def _yaml_value(value: Any) -> str:
    """A default as it is typed after `-p name:=` (YAML): true, 0.5, 'text', [a, b]."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    return str(value)

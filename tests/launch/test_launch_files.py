"""Launch files and their config: every executable, config file and parameter they name exists.

launch_ros is not on PyPI, so the files are checked statically (AST) everywhere; where it is installed
(built by scripts/setup.sh, or an apt ROS 2) test_launch_run.py also loads and runs each one for real.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
NODES_DIR = ROOT / "src" / "apprentice" / "nodes"
EXPECTED = {"teleop", "record", "infer", "train", "sim_demo"}
# Sections of a parameter file that are read by the launch file itself, not by a node of that name.
LAUNCH_ONLY_SECTIONS = {"camera"}


def cmake_nodes() -> set[str]:
    text = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"set\(APPRENTICE_NODES(.*?)\)", text, re.S)
    assert block, "CMakeLists.txt has no APPRENTICE_NODES list"
    return set(block.group(1).split())


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called == name:
                out.append(node)
    return out


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def node_names_and_parameters() -> dict[str, set[str]]:
    """ROS node name (super().__init__("name")) -> parameters its module declares."""
    out: dict[str, set[str]] = {}
    for path in NODES_DIR.glob("*_node.py"):
        tree = ast.parse(path.read_text())
        names = {
            c.args[0].value
            for c in calls(tree, "__init__")
            if c.args and isinstance(c.args[0], ast.Constant) and isinstance(c.args[0].value, str)
        }
        out_params = declared_parameters(tree)
        for name in names:
            out[name] = out_params
    return out


def declared_parameters(tree: ast.AST) -> set[str]:
    """The names in the module's PARAMETERS table (nodes/params.Param), which the node declares as a whole."""
    params: set[str] = set()
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    if "dataclass_parameters" in imported:  # the policy node: one parameter per PolicyNodeParams field
        from apprentice.deploy.params import PolicyNodeParams

        params |= set(PolicyNodeParams.defaults())
    driver = ast.parse((NODES_DIR / "driver_node.py").read_text())
    arm_fn = next(n for n in ast.walk(driver) if isinstance(n, ast.FunctionDef) and n.name == "arm_parameters")
    arm_names = {c.args[0].right.value for c in calls(arm_fn, "Param") if isinstance(c.args[0], ast.BinOp)}
    for c in calls(tree, "arm_parameters"):  # the servo arm's parameters, under a prefix
        if c.args and isinstance(c.args[0], ast.Constant):
            params |= {c.args[0].value + name for name in arm_names}
    for c in calls(tree, "Param"):
        if c.args and isinstance(c.args[0], ast.Constant):
            params.add(c.args[0].value)
    return params


def test_every_launch_file_is_there() -> None:
    assert {p.name.removesuffix(".launch.py") for p in LAUNCH_FILES} >= EXPECTED


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_only_existing_executables_and_configs(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    nodes = cmake_nodes()
    known_nodes = node_names_and_parameters()
    for call in calls(tree, "Node"):
        executable = keyword(call, "executable")
        assert isinstance(executable, ast.Constant), f"{path.name}: executable must be a literal"
        assert executable.value in nodes, f"{path.name}: {executable.value} is not in CMakeLists APPRENTICE_NODES"
        assert (NODES_DIR / f"{executable.value}.py").is_file()
        name = keyword(call, "name")
        if isinstance(name, ast.Constant):
            assert name.value in known_nodes, f"{path.name}: no node module creates a node named {name.value!r}"
    # share("config", "contracts", "x.yaml") / os.path.join(..., "config", "x.yaml"): the file must exist.
    checked = 0
    for call in [c for c in ast.walk(tree) if isinstance(c, ast.Call)]:
        parts = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        for folder in ("config", "launch"):
            if folder in parts and parts[-1].endswith((".yaml", ".launch.py")):
                rel = Path(*parts[parts.index(folder) :])
                assert (ROOT / rel).is_file(), f"{path.name} names {rel}, which does not exist"
                checked += 1
    yaml_names = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.fullmatch(r"[\w-]+\.yaml", n.value)
    ]
    assert checked >= len(set(yaml_names)), f'{path.name}: a config file is named outside share("config", ...)'
    for call in calls(tree, "DeclareLaunchArgument"):
        assert keyword(call, "description") is not None, f"{path.name}: every argument needs a description"
    # Defaults of `contract` arguments are contract names in config/contracts/.
    for assign in [n for n in tree.body if isinstance(n, ast.Assign)]:
        if isinstance(assign.value, ast.Dict):
            for key, value in zip(assign.value.keys, assign.value.values):
                if isinstance(key, ast.Constant) and key.value == "contract" and isinstance(value, ast.Tuple):
                    default = value.elts[0].value
                    assert (ROOT / "config" / "contracts" / f"{default}.yaml").is_file(), default


@pytest.mark.parametrize("name", ["teleop.yaml", "record.yaml", "infer.yaml", "sim_demo.yaml"])
def test_parameter_files_set_only_declared_parameters(name: str) -> None:
    data = yaml.safe_load((ROOT / "config" / name).read_text())
    known = node_names_and_parameters()
    for section, body in data.items():
        assert set(body) == {"ros__parameters"}, f"config/{name}: section {section} needs ros__parameters"
        if section in LAUNCH_ONLY_SECTIONS:
            continue
        assert section in known, f"config/{name}: no node is named {section!r} (nodes: {sorted(known)})"
        unknown = set(body["ros__parameters"]) - known[section]
        assert not unknown, f"config/{name}: node {section!r} declares no parameter(s) {sorted(unknown)}"


def test_train_flags_file_holds_valid_flags() -> None:
    from apprentice.train import TrainConfig

    flags = yaml.safe_load((ROOT / "config" / "train.yaml").read_text())
    cfg = TrainConfig.from_args([f"--{k}={v}" for k, v in flags.items()] + ["--dataset.root=/nonexistent"])
    assert cfg.policy_type == "act"


def test_demo_starts_only_installed_node_executables() -> None:
    tree = ast.parse((ROOT / "src" / "apprentice" / "demo.py").read_text())
    used = {c.args[0].value for c in calls(tree, "node") if c.args and isinstance(c.args[0], ast.Constant)}
    assert used and used <= cmake_nodes()

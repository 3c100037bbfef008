"""The parameter table is the one source: generated YAML/README, launch arguments, and the launch helper.

`ros2 launch` is not installable in a PyPI venv, so the launch file is checked statically (ast) and its
parameter logic, which lives in dytrack_ros.ros.launch_params, is exercised directly; the cross-process
test starts the real node with the command line that helper builds and reads its parameters over ROS.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from dytrack_ros.backends import available_backends
from dytrack_ros.config import TrackerConfig
from dytrack_ros.exit_policy import THRESHOLD_CONVENTION
from dytrack_ros.ros import launch_params
from dytrack_ros.ros.launch_params import (
    DEPRECATED_ALIASES,
    LaunchArgumentError,
    deprecated_arguments,
    deprecation_messages,
    node_parameter_overrides,
    parameter_arguments,
    parameter_override_args,
)
from dytrack_ros.ros.launcher import NodeProcess, ros_args
from dytrack_ros.ros.param_docs import readme_table, readme_with_table, yaml_text
from dytrack_ros.ros.parameters import PARAMS, SPECS, descriptor_for
from dytrack_ros.runtime_options import PRECISIONS, RuntimeOptions

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "tracker.launch.py"
OTHER_LAUNCH_ARGUMENTS = {"camera_topic", "namespace", "node_name", "config", "log_level", "dds_profile", "rviz",
                          "camera_info_topic"}


# ------------------------------------------------------------------ generated files
def test_committed_yaml_is_the_generated_text():
    assert (REPO / "config" / "tracker.yaml").read_text() == yaml_text(), \
        "config/tracker.yaml differs from the table: run python -m dytrack_ros.ros.param_docs --write"


def test_committed_readme_table_is_the_generated_text():
    readme = (REPO / "README.md").read_text()
    assert readme_table() in readme, \
        "README parameter table differs from the table: run python -m dytrack_ros.ros.param_docs --write"
    assert readme_with_table(readme) == readme


def test_yaml_holds_every_parameter_with_the_tables_default_and_type():
    values = yaml.safe_load(yaml_text())["/**"]["ros__parameters"]
    for spec in PARAMS:
        if spec.default is None:  # read from the model at start-up: must stay unset in the file
            assert spec.name not in values and f"# {spec.name}:" in yaml_text()
            continue
        assert values[spec.name] == spec.default and type(values[spec.name]) is type(spec.default), spec.name
    assert set(values) == {p.name for p in PARAMS if p.default is not None}


def test_readme_table_has_one_row_per_parameter():
    rows = [line for line in readme_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [p.name for p in PARAMS]
    assert any("cpu_threads" in row for row in rows)
    exit_row = next(row for row in rows if row.startswith("| `exit_thresholds`"))
    assert THRESHOLD_CONVENTION in exit_row and "the model's own" in exit_row


def test_core_defaults_come_from_the_core_dataclasses():
    options, tracker = RuntimeOptions(), TrackerConfig()
    assert (SPECS["backend"].default, SPECS["device"].default, SPECS["precision"].default,
            SPECS["cpu_threads"].default) == (options.backend, options.device, options.precision, options.threads)
    assert SPECS["precision"].choices == PRECISIONS
    assert SPECS["backend"].choices == ("auto", *available_backends())
    for name in ("uncertain_threshold", "lost_threshold", "lost_after_frames"):
        assert SPECS[name].default == getattr(tracker, name)
    assert THRESHOLD_CONVENTION in SPECS["exit_thresholds"].description
    assert descriptor_for(SPECS["exit_thresholds"]).additional_constraints == THRESHOLD_CONVENTION


# ------------------------------------------------------------------ launch arguments
def test_every_parameter_is_a_launch_argument_with_the_tables_choices_and_description():
    args = parameter_arguments()
    assert [a.name for a in args] == [p.name for p in PARAMS]
    for arg, spec in zip(args, PARAMS):
        assert arg.default_value == "", arg.name  # empty = not given: never overrides the config file
        assert arg.description.startswith(spec.description), arg.name
        want = spec.default_text if spec.default is None else str(spec.default).lower()
        assert f"table default: {want}" in arg.description.replace('""', ""), arg.name
        if spec.choices:
            assert arg.choices == ("", *spec.choices)
        elif spec.value_type is bool:
            assert arg.choices == ("", "true", "false")
        else:
            assert arg.choices == ()
    old = {a.name: a for a in deprecated_arguments()}
    assert set(old) == set(DEPRECATED_ALIASES) == {"model", "debug_image"}
    for name, arg in old.items():
        assert arg.default_value == "" and DEPRECATED_ALIASES[name] in arg.description


def _call_name(node: ast.Call) -> str:
    return getattr(node.func, "id", getattr(node.func, "attr", ""))


def test_launch_file_declares_the_tables_arguments_and_passes_only_given_ones():
    """Static check of launch/tracker.launch.py (ros2 launch cannot run here)."""
    text = LAUNCH_FILE.read_text()
    tree = ast.parse(text)
    assert "PythonExpression" not in text  # user strings (a path with a quote) must never be evaluated
    # the names it imports from the helper exist there
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module == "dytrack_ros.ros.launch_params" for a in n.names]
    assert {"parameter_arguments", "deprecated_arguments", "node_parameter_overrides",
            "deprecation_messages"} <= set(imported)
    assert all(hasattr(launch_params, name) for name in imported)

    literal, generated = {}, []
    for comp in (n for n in ast.walk(tree) if isinstance(n, ast.ListComp)):
        if isinstance(comp.elt, ast.Call) and _call_name(comp.elt) == "DeclareLaunchArgument":
            generated.append(comp)
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == "DeclareLaunchArgument"):
        if isinstance(call.args[0], ast.Constant):
            kw = {k.arg: k.value for k in call.keywords}
            assert ast.literal_eval(kw["description"]).strip(), call.args[0].value
            literal[call.args[0].value] = kw
    assert set(literal) == OTHER_LAUNCH_ARGUMENTS
    assert not set(literal) & (set(SPECS) | set(DEPRECATED_ALIASES))
    # the parameter arguments: one comprehension over the helper's arguments, every field from the helper
    assert len(generated) == 1
    comp = generated[0]
    sources = {_call_name(n) for n in ast.walk(comp.generators[0].iter) if isinstance(n, ast.Call)}
    assert sources == {"parameter_arguments", "deprecated_arguments"}
    call = comp.elt
    assert isinstance(call.args[0], ast.Attribute) and call.args[0].attr == "name"
    kw = {k.arg: k.value for k in call.keywords}
    assert isinstance(kw["default_value"], ast.Attribute) and kw["default_value"].attr == "default_value"
    assert isinstance(kw["description"], ast.Attribute) and kw["description"].attr == "description"
    assert "arg.choices" in ast.unparse(kw["choices"])
    # the node: config file first, then only the helper's overrides; remaps and identity as before
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == "Node")
    node_kw = {k.arg: k for k in node.keywords}
    assert ast.literal_eval(node_kw["package"].value) == "dytrack_ros"
    assert ast.literal_eval(node_kw["executable"].value) == "tracker_node"
    assert '("image", LaunchConfiguration("camera_topic"))' in text
    assert "node_parameter_overrides(given)" in text
    assert 'parameters = [LaunchConfiguration("config")] + ([overrides] if overrides else [])' in text
    assert ast.unparse(node_kw["parameters"].value) == "parameters"


def _launch_defaults() -> dict[str, str]:
    """The launch configurations `ros2 launch tracker.launch.py` holds when the user gives no argument."""
    given = {a.name: a.default_value for a in (*parameter_arguments(), *deprecated_arguments())}
    given.update(camera_topic="/camera/image_raw", namespace="", node_name="tracker_node",
                 config="/opt/ros/share/dytrack_ros/config/tracker.yaml", log_level="info")
    return given


def test_no_given_argument_overrides_nothing_so_a_cuda_config_stays_on_cuda(tmp_path):
    assert node_parameter_overrides(_launch_defaults()) == {}
    # what the node would see: the config file's device, since nothing follows it
    config = {"device": "cuda", "backend": "torch", "transport": "compressed", "publish_debug_image": True}
    effective = {**config, **node_parameter_overrides(_launch_defaults())}
    assert effective["device"] == "cuda"
    assert node_parameter_overrides({**_launch_defaults(), "device": "cuda:1"}) == {"device": "cuda:1"}


def test_given_arguments_become_typed_parameters():
    given = {**_launch_defaults(), "model_path": "/models/123", "expected_rate": "30", "cpu_threads": "2",
             "publish_debug_image": "true", "exit_thresholds": "[0.5, 0.4, 0]", "uncertain_threshold": "1"}
    out = node_parameter_overrides(given)
    assert out == {"model_path": "/models/123", "cpu_threads": 2, "exit_thresholds": [0.5, 0.4, 0.0],
                   "uncertain_threshold": 1.0, "publish_debug_image": True, "expected_rate": 30.0}
    assert type(out["expected_rate"]) is float and type(out["uncertain_threshold"]) is float
    assert node_parameter_overrides({"model_path": "123"}) == {"model_path": "123"}
    assert node_parameter_overrides({"exit_thresholds": "0.7"}) == {"exit_thresholds": [0.7]}
    # -p values read back with the same type (a numeric-looking path stays a string)
    args = parameter_override_args({"model_path": "123", "expected_rate": 30.0, "publish_debug_image": False,
                                    "exit_thresholds": [0.5, 0.0], "cpu_threads": 2, "device": "cuda:0"})
    rules = dict(a.split(":=", 1) for a in args[1::2])
    assert args[0::2] == ["-p"] * 6
    # words the ROS parameter parser reads as booleans stay strings
    assert parameter_override_args({"device": "on", "model_path": "y"}) == ["-p", 'device:="on"',
                                                                            "-p", 'model_path:="y"']
    assert {k: yaml.safe_load(v) for k, v in rules.items()} == {
        "model_path": "123", "expected_rate": 30.0, "publish_debug_image": False, "exit_thresholds": [0.5, 0.0],
        "cpu_threads": 2, "device": "cuda:0"}


@pytest.mark.parametrize("spec", PARAMS, ids=lambda s: s.name)
def test_every_parameters_default_given_as_a_launch_argument_converts_back(spec):
    """Holds for parameters added later too: a type the helper cannot convert fails here, not in ros2 launch."""
    if spec.default is None:
        text, want = "0.5", [0.5]
    else:
        text, want = str(spec.default).lower() if isinstance(spec.default, bool) else str(spec.default), spec.default
    if text == "":
        assert node_parameter_overrides({spec.name: text}) == {}  # empty = not given
        return
    value = node_parameter_overrides({spec.name: text})[spec.name]
    assert value == want and type(value) is type(want)


@pytest.mark.parametrize("name, text, reason", [
    ("backend", "tensorflow", "backend must be one of"),
    ("transport", "jpeg", "transport must be one of raw, compressed"),
    ("cpu_threads", "-1", "cpu_threads must lie in [0, 256]"),
    ("cpu_threads", "two", "cpu_threads must be an integer"),
    ("publish_debug_image", "yes", "publish_debug_image must be true or false"),
    ("expected_rate", "nan", "expected_rate must be finite"),
    ("uncertain_threshold", "1.5", "uncertain_threshold must lie in [0.0, 1.0]"),
    ("exit_thresholds", "[]", "exit_thresholds needs at least one number"),
    ("exit_thresholds", "[0.5, x]", "exit_thresholds must be a number"),
])
def test_invalid_arguments_are_refused_with_the_reason(name, text, reason):
    with pytest.raises(LaunchArgumentError) as err:
        node_parameter_overrides({name: text})
    assert reason in str(err.value)


def test_deprecated_arguments_still_work_with_a_message():
    given = {**_launch_defaults(), "model": "/m.onnx", "debug_image": "true"}
    assert node_parameter_overrides(given) == {"model_path": "/m.onnx", "publish_debug_image": True}
    messages = deprecation_messages(given)
    assert messages == ["launch argument 'model' is deprecated: use 'model_path:=/m.onnx'",
                        "launch argument 'debug_image' is deprecated: use 'publish_debug_image:=true'"]
    assert deprecation_messages(_launch_defaults()) == []
    assert node_parameter_overrides({"model": "/m.onnx", "model_path": "/m.onnx"}) == {"model_path": "/m.onnx"}
    with pytest.raises(LaunchArgumentError, match="disagree"):
        node_parameter_overrides({"debug_image": "true", "publish_debug_image": "false"})


# ------------------------------------------------------------------ the real node
def _write_config(path: Path, model: Path) -> Path:
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "model_path": str(model), "backend": "torch", "device": "cpu", "transport": "compressed",
        "publish_debug_image": True, "cpu_threads": 1, "expected_rate": 12.5}}}))
    return path


def _start(rig, name: str, config: Path, given: dict[str, str]) -> NodeProcess:
    """The node started as the launch file starts it: the config file, then only the given arguments."""
    args = ros_args(params_file=config, node_name=name) + parameter_override_args(node_parameter_overrides(given))
    node = NodeProcess("dytrack_ros", args, env=rig.env, log_path=rig.tmp_path / f"{name}.log", name=name).start()
    rig.nodes.append(node)
    return node


WATCHED = ["backend", "device", "transport", "publish_debug_image", "cpu_threads", "expected_rate", "model_path"]


@pytest.mark.slow  # starts node processes
def test_node_keeps_config_file_values_unless_an_argument_is_given(rig, tiny_dytrack_file, tmp_path):
    config = _write_config(tmp_path / "robot.yaml", tiny_dytrack_file)
    plain = _start(rig, "tracker_plain", config, _launch_defaults())
    given = _start(rig, "tracker_given", config, {**_launch_defaults(), "transport": "raw", "debug_image": "false",
                                                  "expected_rate": "30"})
    c_plain = rig.client(tracker="/tracker_plain")
    c_given = rig.client(tracker="/tracker_given")
    for client, node in ((c_plain, plain), (c_given, given)):
        try:
            client.wait_for_tracker(timeout=60)
        except Exception:
            pytest.fail(f"{node.name} did not come up:\n{node.output()}")
    assert c_plain.get_parameters(WATCHED) == {
        "backend": "torch", "device": "cpu", "transport": "compressed", "publish_debug_image": True,
        "cpu_threads": 1, "expected_rate": 12.5, "model_path": str(tiny_dytrack_file)}
    assert c_given.get_parameters(WATCHED) == {
        "backend": "torch", "device": "cpu", "transport": "raw", "publish_debug_image": False,
        "cpu_threads": 1, "expected_rate": 30.0, "model_path": str(tiny_dytrack_file)}


def test_readme_names_the_launch_arguments_and_the_override_rule():
    readme = (REPO / "README.md").read_text()
    text = readme[readme.index("Launch on a ROS 2 install:"):]
    text = text[:text.index("Camera frames with default settings")]
    for name in (*OTHER_LAUNCH_ARGUMENTS, *DEPRECATED_ALIASES, *DEPRECATED_ALIASES.values()):
        assert f"`{name}`" in text, name
    assert "every parameter in the table under its own name" in text
    for deprecated in DEPRECATED_ALIASES:
        assert f" {deprecated}:=" not in text  # examples use the current names


def test_the_launch_helper_loads_neither_torch_nor_rclpy():
    """ros2 launch imports the launch file (and so this helper) in its own process, often under another Python
    than the node's: it must not need torch (nor start ROS)."""
    import subprocess
    import sys

    code = ("import sys, dytrack_ros.ros.launch_params as lp; lp.parameter_arguments(); "
            "print(sorted(m for m in ('torch', 'rclpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout

"""Launch arguments of ``tracker.launch.py`` and their conversion into node parameters (no rclpy, no launch).

Every node parameter is also a launch argument of the same name. Its default
is the empty string, meaning "not given": only the arguments the user gave
become parameter overrides, placed after the config file, so a config file's
values are never replaced by launch defaults (a robot config with
``device: cuda`` stays on the GPU). Launch arguments are strings; each given
one is converted to its parameter's type here, so a double parameter never
arrives as an integer and a model path never turns into a number.

The launch file and the tests use these functions alike: the launch file
passes :func:`node_parameter_overrides` as a parameter dictionary after the
config file; the tests (no ``ros2 launch`` in a PyPI venv) start the node with
``--params-file CONFIG`` followed by :func:`parameter_override_args`, which
the ROS argument parser applies in the same order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .param_docs import yaml_value
from .parameters import PARAMS, SPECS, ParamSpec

NOT_GIVEN = ""
# Old launch argument -> parameter it sets; still accepted, with a deprecation message.
DEPRECATED_ALIASES: dict[str, str] = {"model": "model_path", "debug_image": "publish_debug_image"}
BOOL_TEXTS = ("true", "false")
# Severities rcutils accepts for --log-level (any other text ends the node before it starts).
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


class LaunchArgumentError(ValueError):
    """A launch argument cannot become its parameter (wrong type, not a choice, out of range)."""


@dataclass(frozen=True)
class LaunchArgument:
    """A ``DeclareLaunchArgument`` for one parameter: default empty (= not given), choices include the empty
    string because launch checks the default against the choices."""

    name: str
    description: str
    choices: tuple[str, ...] = ()
    default_value: str = NOT_GIVEN


def _choices(spec: ParamSpec) -> tuple[str, ...]:
    if spec.choices:
        return (NOT_GIVEN, *spec.choices)
    if spec.value_type is bool:
        return (NOT_GIVEN, *BOOL_TEXTS)
    return ()


def _default_text(spec: ParamSpec) -> str:
    return spec.default_text if spec.default is None else yaml_value(spec.default)


def parameter_arguments() -> tuple[LaunchArgument, ...]:
    """One launch argument per node parameter, in table order."""
    return tuple(LaunchArgument(spec.name, f"{spec.description} Launch argument left empty: the config file's "
                                           f"value (table default: {_default_text(spec)}).", _choices(spec))
                 for spec in PARAMS)


def deprecated_arguments() -> tuple[LaunchArgument, ...]:
    """The old launch arguments, still accepted (see :data:`DEPRECATED_ALIASES`)."""
    return tuple(LaunchArgument(old, f"Deprecated: use {new}:=...", _choices(SPECS[new]))
                 for old, new in DEPRECATED_ALIASES.items())


def deprecation_messages(given: Mapping[str, str]) -> list[str]:
    """One message per deprecated launch argument the user gave."""
    return [f"launch argument '{old}' is deprecated: use '{new}:={given[old]}'"
            for old, new in DEPRECATED_ALIASES.items() if given.get(old, NOT_GIVEN) != NOT_GIVEN]


def convert(spec: ParamSpec, text: str) -> Any:
    """``text`` (a launch argument) as a value of ``spec``'s type, checked against its choices and range."""
    name, t = spec.name, spec.value_type
    if spec.choices and text not in spec.choices:
        raise LaunchArgumentError(f"{name} must be one of {', '.join(spec.choices)}, got '{text}'")
    if t is str:
        return text
    if t is bool:
        if text in BOOL_TEXTS:
            return text == "true"
        raise LaunchArgumentError(f"{name} must be true or false, got '{text}'")
    if t is int:
        try:
            value = int(text.strip())
        except ValueError:
            raise LaunchArgumentError(f"{name} must be an integer, got '{text}'") from None
        if spec.int_range and not spec.int_range[0] <= value <= spec.int_range[1]:
            raise LaunchArgumentError(f"{name} must lie in [{spec.int_range[0]}, {spec.int_range[1]}], got {value}")
        return value
    if t is float:
        value = _number(name, text)
        if spec.float_range and not spec.float_range[0] <= value <= spec.float_range[1]:
            raise LaunchArgumentError(f"{name} must lie in [{spec.float_range[0]}, {spec.float_range[1]}], "
                                      f"got {value}")
        return value
    if t is list:  # double array, written "[0.8, 0.6, 0.0]" or "0.8,0.6,0.0"
        items = [v for v in text.strip().strip("[]").split(",") if v.strip()]
        if not items:
            raise LaunchArgumentError(f"{name} needs at least one number, got '{text}' (leave it empty for the "
                                      "config file's value)")
        return [_number(name, v) for v in items]
    raise LaunchArgumentError(f"{name}: parameters of type {t.__name__} cannot be given as launch arguments")


def _number(name: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise LaunchArgumentError(f"{name} must be a number, got '{text}'") from None
    if not math.isfinite(value):
        raise LaunchArgumentError(f"{name} must be finite, got '{text}'")
    return value


def node_parameter_overrides(given: Mapping[str, str]) -> dict[str, Any]:
    """Typed parameter overrides for the launch arguments the user gave (non-empty), in table order.

    ``given`` may hold every launch configuration (camera_topic, namespace, ...): names that are not
    parameters or deprecated aliases are ignored. A deprecated alias sets its parameter unless the new
    name is given too; both given with different values is an error. Raises :class:`LaunchArgumentError`.
    """
    texts = {spec.name: given.get(spec.name, NOT_GIVEN) for spec in PARAMS}
    for old, new in DEPRECATED_ALIASES.items():
        old_text = given.get(old, NOT_GIVEN)
        if old_text == NOT_GIVEN:
            continue
        if texts[new] not in (NOT_GIVEN, old_text):
            raise LaunchArgumentError(f"launch arguments '{old}' (deprecated) and '{new}' disagree: "
                                      f"'{old_text}' vs '{texts[new]}'; give only {new}")
        texts[new] = old_text
    return {name: convert(SPECS[name], text) for name, text in texts.items() if text != NOT_GIVEN}


def parameter_override_args(overrides: Mapping[str, Any]) -> list[str]:
    """``-p name:=value`` ROS arguments for ``overrides``; values keep their type (strings are quoted when
    they would otherwise read as another type). Put them after ``--params-file``: the later value wins."""
    args: list[str] = []
    for name, value in overrides.items():
        args += ["-p", f"{name}:={yaml_value(value)}"]
    return args


__all__ = ["DEPRECATED_ALIASES", "LOG_LEVELS", "LaunchArgument", "LaunchArgumentError", "NOT_GIVEN", "convert",
           "deprecated_arguments", "deprecation_messages", "node_parameter_overrides", "parameter_arguments",
           "parameter_override_args"]

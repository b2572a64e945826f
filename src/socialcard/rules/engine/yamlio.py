"""A safe YAML loader that keeps the line of every mapping key and sequence item."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


@dataclass(frozen=True)
class BadDate:
    """A scalar that looks like a date but is not one (e.g. 2024-02-30); reported by the loader."""

    text: str

    def __str__(self) -> str:
        return self.text


class Map(dict[Any, Any]):
    """A YAML mapping; `line` is where it starts, `lines[key]` where each key is (1-based)."""

    line: int = 0
    lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class Seq(list[Any]):
    """A YAML sequence; `line` is where it starts, `lines[i]` where item i is (1-based)."""

    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> Map:
        result = Map()
        result.line = node.start_mark.line + 1
        result.lines = {}
        result.duplicates = []
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                key = str(key)
            line = key_node.start_mark.line + 1
            if key in result:
                result.duplicates.append((key, line))
            result[key] = self.construct_object(value_node, deep=True)
            result.lines[key] = line
        return result

    def construct_sequence(self, node: SequenceNode, deep: bool = False) -> Seq:
        result = Seq(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result


def _map(loader: _Loader, node: Node) -> Map:
    assert isinstance(node, MappingNode)  # noqa: S101 - only registered for mappings
    return loader.construct_mapping(node)


def _seq(loader: _Loader, node: Node) -> Seq:
    assert isinstance(node, SequenceNode)  # noqa: S101 - only registered for sequences
    return loader.construct_sequence(node)


def _timestamp(loader: _Loader, node: Node) -> object:
    assert isinstance(node, ScalarNode)  # noqa: S101 - only registered for scalars
    try:
        value = yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return BadDate(str(node.value))
    return value


_Loader.add_constructor("tag:yaml.org,2002:map", _map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _seq)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class YamlSyntaxError(Exception):
    """The text is not valid YAML; `line` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def load(text: str) -> Any:
    """Parse YAML text into Map/Seq/scalars; raises YamlSyntaxError with the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise YamlSyntaxError(line, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(0, f"invalid YAML: {exc}") from exc


def is_date(value: object) -> bool:
    """True for a real calendar date (not a datetime, not a BadDate)."""
    return isinstance(value, date) and not hasattr(value, "hour")

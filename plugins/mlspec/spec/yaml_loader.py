"""Safe YAML loading that remembers where every node came from.

PyYAML's composer gives each node a start mark; we build plain Python data from the node tree and
keep a map from the node's path to its (line, column) so every later error can point at the
offending place. Only the safe constructor is used: Python tags are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from mlspec.spec.errors import SpecError, SpecProblem

# libyaml's parser (shipped in PyYAML's wheels) is ~10x faster than the pure-Python one, and Airflow
# re-parses every spec every few seconds. Same safe constructor, same node marks.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_SPEC_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 20_000  # alias expansion ("billion laughs") is refused long before it hurts

Path = tuple  # e.g. ("model", "layers", 2, "conv2d")


def format_path(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True)
class LoadedYaml:
    data: object
    positions: dict  # Path -> (line, column), 1-based; keys of mappings also under path + ("<key>",)
    file: str

    def where(self, path: Path) -> tuple[int, int]:
        """The closest known position of path (walking up to the parent for missing nodes)."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def key_position(self, path: Path) -> tuple[int, int]:
        """Where the key of path is written (for unknown keys)."""
        return self.positions.get(tuple(path) + ("<key>",)) or self.where(path)

    def problem(self, path: Path, message: str, *, at_key: bool = False, severity: str = "error") -> SpecProblem:
        line, col = self.key_position(path) if at_key else self.where(path)
        return SpecProblem(self.file, line, col, format_path(tuple(path)), message, severity)


_PLAIN_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loader: SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions: dict = {}
        self.problems: list[SpecProblem] = []
        self.count = 0

    def fail(self, node: yaml.Node, path: Path, message: str) -> SpecError:
        line, col = _mark(node)
        return SpecError([SpecProblem(self.file, line, col, format_path(path), message)])

    def build(self, node: yaml.Node, path: Path, depth: int) -> object:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, f"the spec has more than {MAX_NODES} nodes (alias expansion?); refusing it")
        if depth > MAX_DEPTH:
            raise self.fail(node, path, f"nested more than {MAX_DEPTH} levels deep; refusing it")
        self.positions[path] = _mark(node)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            raise self.fail(node, path, f"YAML tag {node.tag} is not allowed (only plain data)")
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves '<<' merge keys the way the safe loader does
            result: dict = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, path, "mapping keys must be plain strings")
                key = self.loader.construct_object(key_node)
                if not isinstance(key, str):
                    key = str(key)
                if key in result:
                    self.problems.append(
                        SpecProblem(self.file, *_mark(key_node), format_path(path + (key,)), f"duplicate key `{key}`")
                    )
                self.positions[path + (key, "<key>")] = _mark(key_node)
                result[key] = self.build(value_node, path + (key,), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node)
        if isinstance(value, bytes | set) or value.__class__.__module__ not in ("builtins", "datetime"):
            raise self.fail(node, path, f"unsupported YAML value of type {type(value).__name__}")
        return value


def load_yaml(text: str | bytes, file: str = "<spec>") -> LoadedYaml:
    """Parse one YAML document safely; raise SpecError with a location for anything wrong."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_SPEC_BYTES:
        raise SpecError([SpecProblem(file, 1, 1, "", f"the spec is {size} bytes; the limit is {MAX_SPEC_BYTES} (1 MiB)")])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError([SpecProblem(file, 1, 1, "", f"the spec is not UTF-8 text ({exc.reason})")]) from None
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecProblem(file, 1, 1, "", "the spec is empty")])
        builder = _Builder(loader, file)
        data = builder.build(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise SpecError([SpecProblem(file, line, col, "", f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise SpecError([SpecProblem(file, 1, 1, "", "the spec is nested too deeply; refusing it")]) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise SpecError(builder.problems)
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(file, 1, 1, "", f"the spec must be a mapping, not {type(data).__name__}")])
    return LoadedYaml(data, builder.positions, file)

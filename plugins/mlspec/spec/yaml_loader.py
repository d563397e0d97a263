"""Safe YAML loading that remembers where every node came from.

PyYAML's composer gives each node a start mark; we build plain Python data from the node tree and
keep a map from the node's path to its (line, column) so every later error can point at the
offending place. Only the safe constructor is used: Python tags are refused.

What one document may cost is bounded before anything else looks at it: its size on disk
(MAX_SPEC_BYTES), its nesting (MAX_DEPTH), the number of values it holds once aliases are expanded
(MAX_NODES) and the bytes of text those values hold once aliases are expanded (MAX_EXPANDED_BYTES):
a long string referenced thousands of times through aliases is refused while it is being built, so
neither the schema, the semantic checks nor a message ever sees the expanded document.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass

import yaml

from mlspec.spec.errors import SpecError, SpecProblem, quote, shorten

# libyaml's parser (shipped in PyYAML's wheels) is ~10x faster than the pure-Python one, and Airflow
# re-parses every spec every few seconds. Same safe constructor, same node marks.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_SPEC_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 20_000  # values (mappings, lists, scalars) after alias expansion: "billion laughs" never hurts
# Text (scalars and keys) after alias expansion. Without aliases a document holds at most its own size, so
# this only refuses fan-out: a 50 KB tag aliased 10,000 times took 4.4 GB in lint and 8.9 GB in the DagBag.
MAX_EXPANDED_BYTES = 2 * MAX_SPEC_BYTES

Path = tuple  # e.g. ("model", "layers", 2, "conv2d")


def format_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, str) and len(part) > 60:  # a long key is named by its start
            part = part[:57] + "..."
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


_MERGE_TAG = "tag:yaml.org,2002:merge"
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
        self.expanded_bytes = 0
        self.seen: set[int] = set()  # ids of the nodes built so far: a second visit is an alias
        self.alias_uses = 0

    def fail(self, node: yaml.Node, path: Path, message: str) -> SpecError:
        line, col = _mark(node)
        return SpecError([SpecProblem(self.file, line, col, format_path(path), message)])

    def _through_aliases(self) -> str:
        return " once its YAML aliases are expanded" if self.alias_uses else ""

    def add_text(self, node: yaml.Node, path: Path) -> None:
        """Count a scalar's text (each time an alias brings it in again) against MAX_EXPANDED_BYTES."""
        value = node.value
        self.expanded_bytes += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        if self.expanded_bytes > MAX_EXPANDED_BYTES:
            raise self.fail(
                node,
                path,
                f"the spec expands to more than {MAX_EXPANDED_BYTES} bytes of text{self._through_aliases()}"
                f"{' (alias expansion)' if self.alias_uses else ''}; refusing it",
            )

    def build(self, node: yaml.Node, path: Path, depth: int) -> object:
        self.count += 1
        if id(node) in self.seen:
            self.alias_uses += 1
        else:
            self.seen.add(id(node))
        if self.count > MAX_NODES:
            what = f"expands to more than {MAX_NODES} values{self._through_aliases()} (alias expansion)" if self.alias_uses else (
                f"holds more than {MAX_NODES} values (mappings, lists and scalars)"
            )
            raise self.fail(node, path, f"the spec {what}; refusing it")
        if depth > MAX_DEPTH:
            raise self.fail(node, path, f"nested more than {MAX_DEPTH} levels deep; refusing it")
        self.positions[path] = _mark(node)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            raise self.fail(node, path, f"YAML tag {node.tag} is not allowed (only plain data)")
        if isinstance(node, yaml.MappingNode):
            return self.build_mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        self.add_text(node, path)
        return self.scalar(node, path)

    def build_mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict:
        # '<<' merge keys are resolved here rather than by PyYAML's flatten_mapping, which copies
        # entries before anything is counted (a 400-byte "merge bomb" takes gigabytes). Merged
        # values go through build(), so MAX_NODES bounds them; keys written in the mapping win.
        merged: dict = {}
        explicit: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        raise self.fail(source, path, "a merge key `<<` takes a mapping or a list of mappings")
                    for key, value in self.build_mapping(source, path, depth + 1).items():
                        merged.setdefault(key, value)  # the first source listed wins
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, path, "mapping keys must be plain strings")
            self.add_text(key_node, path)
            key = self.scalar(key_node, path)
            key = key if isinstance(key, str) else str(key)
            if key in explicit:
                self.problems.append(
                    SpecProblem(self.file, *_mark(key_node), format_path(path + (key,)), f"duplicate key {f'`{key}`' if len(key) <= 60 else quote(key)}")
                )
            self.positions[path + (key, "<key>")] = _mark(key_node)
            explicit[key] = self.build(value_node, path + (key,), depth + 1)
        return {**merged, **explicit}

    def scalar(self, node: yaml.Node, path: Path) -> object:
        try:
            value = self.loader.construct_object(node)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            # PyYAML's constructors raise plain exceptions for values like 2020-13-45 or `!!int x`.
            raise self.fail(node, path, f"cannot read {quote(node.value)} as {node.tag.rsplit(':', 1)[-1][:40]}: {str(exc)[:200]}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, path, f"{quote(node.value)} is not a finite number")
        if isinstance(value, bytes | set) or value.__class__.__module__ not in ("builtins", "datetime"):
            raise self.fail(node, path, f"unsupported YAML value of type {type(value).__name__}")
        return value


_NODE_EVENTS = (yaml.ScalarEvent, yaml.CollectionStartEvent, yaml.AliasEvent)


def _check_depth(text: str, file: str) -> None:
    """Refuse deep nesting and too many nodes from the event stream, before composing: libyaml's composer
    recurses in C once per level and would crash the process long before a Python RecursionError, and
    composing half a million nodes (a 1 MiB `[1,1,1,...]`) takes seconds before the builder counts them.

    Keys are nodes of the stream that the builder does not count as values, so the stream may hold up to
    twice MAX_NODES: anything the builder would accept passes here."""
    depth = 0
    nodes = 0
    for event in yaml.parse(text, Loader=SafeLoader):
        if isinstance(event, _NODE_EVENTS):
            nodes += 1
            if nodes > 2 * MAX_NODES:
                line, col = event.start_mark.line + 1, event.start_mark.column + 1
                message = f"the spec holds more than {MAX_NODES} values (mappings, lists and scalars); refusing it"
                raise SpecError([SpecProblem(file, line, col, "", message)])
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line, col = event.start_mark.line + 1, event.start_mark.column + 1
                raise SpecError([SpecProblem(file, line, col, "", f"nested more than {MAX_DEPTH} levels deep; refusing it")])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# A text this short can neither nest deep enough to hurt libyaml's composer (20,000 levels compose fine) nor hold
# 2 * MAX_NODES nodes, so it is composed without _check_depth's extra pass (a fifth of loading a spec); the
# builder still refuses more than MAX_DEPTH levels and MAX_NODES values.
COMPOSE_AT_ONCE_CHARS = 8 * 1024


def read_spec_file(path: str | os.PathLike) -> bytes:
    """A spec file's bytes, read only when it is a regular file within MAX_SPEC_BYTES (a FIFO or a device
    named *.yaml neither blocks nor floods the reader); SpecError at 1:1 (or 0:0 when unreadable) otherwise."""
    file = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SpecError([SpecProblem(file, 0, 0, "", f"cannot read the spec: {exc.strerror or exc}")]) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError([SpecProblem(file, 1, 1, "", "the spec is not a regular file; refusing to read it")])
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError([SpecProblem(file, 1, 1, "", _too_big(info.st_size))])
        try:
            data = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise SpecError([SpecProblem(file, 0, 0, "", f"cannot read the spec: {exc.strerror or exc}")]) from None
    if len(data) > MAX_SPEC_BYTES:  # grew since fstat
        raise SpecError([SpecProblem(file, 1, 1, "", _too_big(len(data)).replace("is ", "is more than ", 1))])
    return data


def _too_big(size: int) -> str:
    return f"the spec is {size} bytes; the limit is {MAX_SPEC_BYTES} (1 MiB)"


def load_yaml(text: str | bytes, file: str = "<spec>") -> LoadedYaml:
    """Parse one YAML document safely; raise SpecError with a location for anything wrong."""
    try:
        size = len(text.encode("utf-8") if isinstance(text, str) else text)
    except UnicodeEncodeError as exc:  # a lone surrogate in a str
        raise SpecError([SpecProblem(file, 1, 1, "", f"the spec is not valid Unicode text ({exc.reason})")]) from None
    if size > MAX_SPEC_BYTES:
        raise SpecError([SpecProblem(file, 1, 1, "", _too_big(size))])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError([SpecProblem(file, 1, 1, "", f"the spec is not UTF-8 text ({exc.reason})")]) from None
    loader = None
    try:
        if len(text) > COMPOSE_AT_ONCE_CHARS:
            _check_depth(text, file)
        loader = SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecProblem(file, 1, 1, "", "the spec is empty")])
        builder = _Builder(loader, file)
        data = builder.build(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise SpecError([SpecProblem(file, line, col, "", f"invalid YAML: {shorten(message)}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"invalid YAML: {shorten(str(exc))}")]) from None
    except RecursionError:
        raise SpecError([SpecProblem(file, 1, 1, "", "the spec is nested too deeply; refusing it")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if builder.problems:
        raise SpecError(builder.problems)
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(file, 1, 1, "", f"the spec must be a mapping, not {type(data).__name__}")])
    return LoadedYaml(data, builder.positions, file)

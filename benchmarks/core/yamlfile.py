"""The one reader of the YAML the user writes: config and study files, and `--set` values.

YAML read as it comes can cost without bound or mean something else than it seems, so every
such text is read under the same rules, and each breach is a ConfigError (exit 2) naming the
file and the fix:
- a file is at most MAX_BYTES (the largest built-in file is a few kilobytes; a file of megabytes
  is a mistake, and PyYAML's pure-Python parser would take minutes on it);
- it is UTF-8 text (YAML's own encoding here), not an arbitrary byte string;
- aliases (`*name`) expand to at most MAX_NODES values in all: a few lines of nested aliases
  ("billion laughs") stand for gigabytes once anything walks the expanded value, e.g. json.dumps
  of a study's select_set; an alias of its own ancestor (a value that contains itself) is refused;
- a key written twice in one mapping is refused: YAML would keep the last silently, so an arm
  or a target declared twice would lose its first declaration without a word.
"""
import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import ConfigError

MAX_BYTES = 256 * 1024
MAX_NODES = 100_000  # values after alias expansion; a config holds a few hundred
MERGE = "tag:yaml.org,2002:merge"


class _Refused(yaml.YAMLError):
    """A rule of this reader broken (not YAML's own syntax): the message says which."""


class _Loader(yaml.SafeLoader):
    def compose_document(self):
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen = {}
            for key_node, _ in node.value:  # the mapping's own keys: a merged (<<) key may be overridden
                if key_node.tag == MERGE or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # unhashable: SafeLoader itself refuses it below
                    continue
                if first is not key_node:
                    raise _Refused(f"the key {key!r} is written twice in one mapping (lines "
                                   f"{first.start_mark.line + 1} and {key_node.start_mark.line + 1}); YAML would "
                                   "silently keep the last one. "
                                   "Remove one, or give it a name of its own")
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root):
    """Refuse a node graph whose aliases expand past MAX_NODES values, or that contains itself.
    Iterative (no recursion limit), each node visited once: sizes are memoised by identity."""
    if root is None:
        return
    size, active, stack = {}, set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_NODES:
                raise _Refused(f"its aliases (*name) expand to more than {MAX_NODES:,} values (line "
                               f"{node.start_mark.line + 1}); write the values out, or use fewer aliases")
            continue
        if key in size:
            continue
        if key in active:
            raise _Refused(f"an alias at line {node.start_mark.line + 1} refers to a value that contains it, so the "
                           "value would contain itself without end; write it out instead")
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


def _children(node):
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def parse(text, what):
    """The YAML `text` as Python values under this module's rules; `what` names the text in a
    message ("Config digits.yaml", "Override 'train.steps=x'")."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except _Refused as e:
        raise ConfigError(f"{what}: {e}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} is not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigError(f"{what} nests its lists or mappings too deeply to read; flatten it.") from None


def read(path, what):
    """The YAML file at `path`, parsed (parse), after the size and encoding checks; `what` names
    it in a message ("Config", "Study")."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror or e}.") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_BYTES // 1024} KiB: a config or study file holds a few "
                          "kilobytes of settings. Check that it is the file you meant.")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not part of the text
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}): save it "
                          "as UTF-8, or check that it is the file you meant.") from None
    return parse(text, f"{what} {path}")

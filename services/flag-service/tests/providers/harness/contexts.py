"""Seeded random evaluation contexts aimed at a flag document's targeting rules.

The generator reads every `{"var": ...}` path and every literal of the document's targeting
(and `$evaluators`), then builds contexts that mostly hit those paths with values that matter
to the rules: the literals themselves, near misses, numbers around the literals, semantic
versions, wrong types, nulls, arrays and missing keys. Strings are ASCII only: the JS reference
hashes UTF-16 code units in `fractional` where flagd hashes UTF-8 bytes."""

from __future__ import annotations

import random
import re
import string


def _walk(node, paths: set[str], literals: list):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "var":
                target = value[0] if isinstance(value, list) and value else value
                if isinstance(target, str):
                    paths.add(target)
                if isinstance(value, list):
                    for extra in value[1:]:
                        _walk(extra, paths, literals)
            else:
                _walk(value, paths, literals)
    elif isinstance(node, list):
        for item in node:
            _walk(item, paths, literals)
    elif isinstance(node, bool) or node is None:
        return
    elif isinstance(node, (int, float, str)):
        if not isinstance(node, str) or node.isascii():
            literals.append(node)


def _var_path(node) -> str | None:
    if isinstance(node, dict) and len(node) == 1 and "var" in node:
        target = node["var"][0] if isinstance(node["var"], list) and node["var"] else node["var"]
        return target if isinstance(target, str) else None
    return None


def _flat_literals(node, out: list) -> None:
    if isinstance(node, list):
        for item in node:
            _flat_literals(item, out)
    elif isinstance(node, (int, float, str)) and not isinstance(node, bool):
        if not isinstance(node, str) or node.isascii():
            out.append(node)


def _siblings(node, related: dict[str, list]) -> None:
    """For every operator whose arguments include `{"var": p}`, the literals among the other
    arguments are what `p` is compared with."""
    if isinstance(node, dict):
        for value in node.values():
            if isinstance(value, list):
                paths = [p for p in map(_var_path, value) if p]
                for path in paths:
                    for other in value:
                        if _var_path(other) is None and not isinstance(other, dict):
                            _flat_literals(other, related.setdefault(path, []))
            _siblings(value, related)
    elif isinstance(node, list):
        for item in node:
            _siblings(item, related)


def _unique(values: list) -> list:
    unique = []
    for value in values:
        if not any(value == seen and type(value) is type(seen) for seen in unique):
            unique.append(value)
    return unique


def analyse(document: dict) -> tuple[list[str], list, dict[str, list]]:
    """The context paths the targeting reads, every literal it holds, and per path the
    literals that path is compared with."""
    paths: set[str] = set()
    literals: list = []
    related: dict[str, list] = {}
    rules = [flag.get("targeting") for flag in document.get("flags", {}).values()]
    rules.append(document.get("$evaluators", {}))
    for rule in rules:
        _walk(rule, paths, literals)
        _siblings(rule, related)
    paths = {path for path in paths if path and not path.startswith("$flagd")}
    return sorted(paths), _unique(literals), {path: _unique(values) for path, values in related.items()}


def _set_path(context: dict, path: str, value) -> None:
    parts = path.split(".")
    node = context
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


class ContextGenerator:
    def __init__(self, document: dict, seed: int):
        self.random = random.Random(seed)
        self.paths, self.literals, self.related = analyse(document)
        self.strings = [value for value in self.literals if isinstance(value, str)]
        self.numbers = [value for value in self.literals if isinstance(value, (int, float)) and not isinstance(value, bool)]
        self.keys = [f"user-{n}" for n in range(40)] + [f"{name}@company.com" for name in ("jon", "jane", "ada", "bob")]

    def _semver(self) -> str:
        r = self.random
        version = f"{r.randint(0, 4)}.{r.randint(0, 3)}.{r.randint(0, 3)}"
        roll = r.random()
        if roll < 0.15:
            version += f"-beta.{r.randint(0, 3)}"
        elif roll < 0.2:
            version += "+build.7"
        elif roll < 0.25:
            version = "v" + version
        elif roll < 0.3:
            version = version.rsplit(".", 1)[0]
        elif roll < 0.33:
            version = "not-a-version"
        return version

    def _near(self, text: str) -> str:
        r = self.random
        choice = r.randrange(5)
        if choice == 0:
            return text.upper()
        if choice == 1:
            return text + r.choice(["x", "-1", " ", "@example.com"])
        if choice == 2:
            return r.choice(["abc", "xyz", "pre-", ""]) + text
        if choice == 3:
            return text[: max(0, len(text) - 1)]
        return "".join(r.choice(string.ascii_lowercase) for _ in range(r.randint(1, 8)))

    def _number(self):
        r = self.random
        if self.numbers and r.random() < 0.5:
            base = r.choice(self.numbers)
            return base + r.choice([-1, 0, 0, 1])
        if r.random() < 0.7:
            return r.randint(-5, 130)
        return round(r.uniform(-10, 200), 2)

    def _near_version(self, version: str) -> str:
        """A version close to `version`: just below or above it, a pre-release of it, or partial."""
        r = self.random
        parts = [int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0, 0]
        major, minor, patch = parts[:3]
        choice = r.randrange(7)
        if choice == 0:
            return f"{major}.{minor}.{max(0, patch - 1) if patch else patch}"
        if choice == 1:
            return f"{major}.{max(0, minor - 1)}.{patch + 3}"
        if choice == 2:
            return f"{major}.{minor}.{patch}-{r.choice(['alpha', 'beta.1', 'rc.2', '1'])}"
        if choice == 3:
            return f"{major}.{minor + r.randint(0, 1)}.{patch + r.randint(0, 2)}"
        if choice == 4:
            return f"{major}.{minor}" if r.random() < 0.5 else f"{major}"
        if choice == 5:
            return f"v{major}.{minor}.{patch}"
        return f"{major + r.choice([-1, 1]) if major else 1}.{minor}.{patch}"

    def value(self, path: str = ""):
        r = self.random
        related = self.related.get(path)
        versions = [v for v in related or [] if isinstance(v, str) and re.match(r"^v?\d+(\.\d+)*", v)]
        if versions and r.random() < 0.35:
            return self._near_version(r.choice(versions))
        if related and r.random() < 0.45:
            choice = r.choice(related)
            if isinstance(choice, str) and r.random() < 0.3:
                return self._near(choice)
            if isinstance(choice, (int, float)) and r.random() < 0.5:
                return choice + r.choice([-1, 1, 0.5])
            return choice
        roll = r.random()
        if roll < 0.40 and self.strings:
            return r.choice(self.strings)
        if roll < 0.55 and self.strings:
            return self._near(r.choice(self.strings))
        if roll < 0.72:
            return self._number()
        if roll < 0.82:
            return self._semver()
        if roll < 0.88:
            return r.choice([True, False])
        if roll < 0.92:
            return None
        if roll < 0.96:
            pool = self.strings or ["a", "b"]
            return [r.choice(pool) for _ in range(r.randint(0, 3))]
        return str(self._number())

    def context(self) -> dict:
        r = self.random
        context: dict = {}
        roll = r.random()
        if roll < 0.8:
            context["targetingKey"] = r.choice(self.keys + [s for s in self.strings if "@" in s])
        elif roll < 0.85:
            context["targetingKey"] = ""
        for path in self.paths:
            if path == "targetingKey":
                continue
            if r.random() < 0.25:
                continue
            _set_path(context, path, self.value(path))
        return context

    def contexts(self, count: int) -> list[dict]:
        return [self.context() for _ in range(count)]

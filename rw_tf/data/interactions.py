"""Real user-item interactions that ship with Python: the standard library's import graph.

Rule: every module of the standard library (packages and their submodules; tests, IDLE, tkinter
and the demo folders left out) is a *user* (with ``include_site_packages``, so is every module of
the installed packages in the running environment's site-packages, tests left out); the
standard-library modules it imports with an absolute import are its *interactions*, in source
order (the first line that imports a module; imports inside functions count), so the last import
is the most recent. A module that has a
docstring is an *item*; its text is the docstring's first paragraph (at most ``max_item_words``
words). Built-in modules without a source file (``sys``, ``time``) and self-imports are not items.
Users with fewer than ``min_history`` item interactions are left out.

Your own interactions instead (``read_interactions``): a catalogue in JSON Lines ``{"item": id,
"text": description}`` and histories in JSON Lines ``{"user": id, "items": [ids, oldest first],
"profile": text (optional)}``. Ids are non-empty strings without white space (histories travel as
space-separated ids, in the pipeline's examples and the export's ``recommend`` signature). Rows
and interactions that cannot be used are counted by reason, never dropped silently: lines that are
not UTF-8 JSON objects, ids or texts that are not usable, a repeated item or user (the first one
counts), interactions naming an item the catalogue lacks, a repeat of an item already in the same
history (its first interaction counts, as with imports) and users left with fewer than
``min_history`` items.

Split (leave-one-out, no leakage): the last interaction of every user is its test item, the one
before it its validation item; training sees only the earlier ones.

Example:
    >>> data = stdlib_import_interactions()                            # doctest: +SKIP
    >>> data.items[data.histories["json.decoder"][0]]                  # doctest: +SKIP
    're'
"""
from __future__ import annotations

import ast
import collections
import concurrent.futures
import dataclasses
import os
import random
import sysconfig
from typing import Any, Dict, List, Optional, Tuple

from rw_tf.data.jsonl import read_jsonl_objects
from rw_tf.data.splits import text_key

_SKIPPED = ("test", "tests", "idlelib", "site-packages", "lib2to3", "tkinter", "turtledemo", "ensurepip",
            "distutils", "__pycache__")


@dataclasses.dataclass
class Interactions:
    """``items`` (ids -> names), ``item_texts``, ``histories`` (user -> item indices in order) and
    ``user_texts`` (user -> profile text: the first paragraph of the user module's docstring, or "")."""

    items: List[str]
    item_texts: List[str]
    histories: Dict[str, List[int]]
    user_texts: Dict[str, str] = dataclasses.field(default_factory=dict)   # profile: the user's docstring

    def split(self) -> Dict[str, Dict[str, object]]:
        """user -> {"train": history[:-2], "validation": history[-2], "test": history[-1]}."""
        return {user: {"train": h[:-2], "validation": h[-2], "test": h[-1]} for user, h in self.histories.items()}

    def leave_one_out(self, seed: int) -> "LeaveOneOut":
        """Training examples and held-out cases with nothing leaked (see ``LeaveOneOut``)."""
        split = self.split()
        # Users with the same history are one user (vendored or re-exported copies of a module).
        distinct = {tuple(self.histories[u]): u for u in sorted(split, reverse=True)}
        users = sorted(distinct.values())
        train_histories = [split[u]["train"] for u in users]
        tagged = [((h[:j], h[j]), u) for u, h in zip(users, train_histories) for j in range(1, len(h))]
        random.Random(seed).shuffle(tagged)
        examples = [e for e, _ in tagged]
        # A held-out case that is also some other user's training example (same history, same
        # next item) would leak: it is left out of evaluation and counted.
        seen = {(tuple(h), t) for h, t in examples}
        test = [((split[u]["train"] + [split[u]["validation"]], split[u]["test"]), u) for u in users]
        validation = [((split[u]["train"], split[u]["validation"]), u) for u in users]
        clean_test = [(c, u) for c, u in test if (tuple(c[0]), c[1]) not in seen]
        clean_validation = [(c, u) for c, u in validation if (tuple(c[0]), c[1]) not in seen]
        return LeaveOneOut(train_histories, examples, [c for c, _ in clean_validation], [c for c, _ in clean_test],
                           {"duplicate_histories": len(split) - len(users),
                            "test_cases_seen_in_training": len(test) - len(clean_test)},
                           example_users=[u for _, u in tagged], validation_users=[u for _, u in clean_validation],
                           test_users=[u for _, u in clean_test])


@dataclasses.dataclass
class LeaveOneOut:
    """Leave-one-out data: ``train_histories`` (each user's history without its last two items),
    ``examples`` (prefix -> next item within them, shuffled), ``validation`` and ``test`` cases
    ((history, held-out item): the second-to-last and the last item), and ``removed`` counts;
    ``*_users`` name the user of each example and case (for profile texts)."""

    train_histories: List[List[int]]
    examples: List[Tuple[List[int], int]]
    validation: List[Tuple[List[int], int]]
    test: List[Tuple[List[int], int]]
    removed: Dict[str, int]
    example_users: List[str] = dataclasses.field(default_factory=list)
    validation_users: List[str] = dataclasses.field(default_factory=list)
    test_users: List[str] = dataclasses.field(default_factory=list)


def stdlib_modules(stdlib: Optional[str] = None) -> Dict[str, str]:
    """Dotted module name -> source path for the standard library (see the module docstring)."""
    return _modules_under(stdlib or sysconfig.get_paths()["stdlib"])


def _modules_under(top: str) -> Dict[str, str]:
    modules = {}
    for root, dirs, files in os.walk(top):
        rel = os.path.relpath(root, top)
        if rel != "." and any(part in _SKIPPED for part in rel.split(os.sep)):
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                dotted = os.path.relpath(os.path.join(root, name), top)[:-3].replace(os.sep, ".")
                modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = os.path.join(root,
                                                                                                            name)
    return modules


def imported_modules(tree: ast.AST, own_name: str) -> List[str]:
    """Absolutely imported module names in order of first appearance in the source."""
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))),
                   key=lambda n: (n.lineno, n.col_offset))
    names: List[str] = []
    for node in nodes:
        found = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if node.module and not node.level else [])
        names.extend(n for n in found if n != own_name and n not in names)
    return names


def _parse_module(name_and_path: Tuple[str, str]) -> Tuple[str, Optional[str], List[str]]:
    """(name, docstring or None, imported modules); files that do not parse import nothing."""
    name, path = name_and_path
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return name, None, []
    return name, ast.get_docstring(tree), imported_modules(tree, name)


def stdlib_import_interactions(min_history: int = 3, max_item_words: int = 60, include_site_packages: bool = False,
                               workers: Optional[int] = None) -> Interactions:
    """The standard library's import graph as interactions (see the module docstring); with
    ``include_site_packages`` the installed packages' modules are users too (parsed in
    ``workers`` processes: about 20,000 files in rw-tf's environment)."""
    if min_history < 3:
        raise ValueError("min_history must be >= 3 (one training, one validation and one test item)")
    first_paragraph = lambda doc: " ".join(doc.split("\n\n")[0].split()[:max_item_words])
    docstrings, imports, site_docs = {}, {}, {}
    for name, doc, imported in map(_parse_module, stdlib_modules().items()):
        if doc and doc.split("\n\n")[0].strip():
            docstrings[name] = first_paragraph(doc)
        imports[name] = imported
    if include_site_packages:
        site = _modules_under(sysconfig.get_paths()["purelib"])
        with concurrent.futures.ProcessPoolExecutor(workers or os.cpu_count()) as pool:
            for name, doc, imported in pool.map(_parse_module, sorted(site.items()), chunksize=200):
                imports.setdefault(f"site-packages:{name}", imported)
                if doc:
                    site_docs[f"site-packages:{name}"] = doc
    items = sorted(docstrings)
    index = {name: i for i, name in enumerate(items)}
    histories = {}
    for user in sorted(imports):
        history = [index[m] for m in imports[user] if m in index]
        if len(history) >= min_history:
            histories[user] = history
    user_texts = {u: first_paragraph(site_docs[u]) if u in site_docs else docstrings.get(u, "") for u in histories}
    return Interactions(items, [f"{name}: {docstrings[name]}" for name in items], histories, user_texts)


def _usable_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and len(value.split()) == 1 and value == value.strip()


def read_interactions(items_file: str, interactions_file: str, min_history: int = 3
                      ) -> Tuple[Interactions, Dict[str, int]]:
    """Your catalogue and histories (see the module docstring) as ``Interactions``, and what was
    left out, by reason."""
    if min_history < 3:
        raise ValueError("min_history must be >= 3 (one training, one validation and one test item)")
    rejects: collections.Counter = collections.Counter()
    texts: Dict[str, str] = {}
    for row in read_jsonl_objects(items_file, rejects):
        item, text = row.get("item"), row.get("text")
        if not _usable_id(item):
            rejects["invalid_item_id"] += 1
        elif not isinstance(text, str) or not text_key(text):   # nothing the tokenizer reads
            rejects["missing_item_text"] += 1
        elif item in texts:
            rejects["duplicate_item"] += 1
        else:
            texts[item] = text
    items = sorted(texts)
    index = {item: i for i, item in enumerate(items)}
    histories: Dict[str, List[int]] = {}
    user_texts: Dict[str, str] = {}
    seen_users = set()
    for row in read_jsonl_objects(interactions_file, rejects):
        user, named, profile = row.get("user"), row.get("items"), row.get("profile", "")
        if not (isinstance(user, str) and user.strip() and isinstance(named, list)
                and all(isinstance(i, str) for i in named) and isinstance(profile, str)):
            rejects["invalid_user_row"] += 1
            continue
        if user in seen_users:
            rejects["duplicate_user"] += 1
            continue
        seen_users.add(user)
        history: List[int] = []
        history_set = set()
        for item in named:
            if item not in index:
                rejects["unknown_item_interactions"] += 1
            elif index[item] in history_set:
                rejects["repeated_item_interactions"] += 1
            else:
                history.append(index[item])
                history_set.add(index[item])
        if len(history) < min_history:
            rejects["users_with_short_history"] += 1
            continue
        histories[user], user_texts[user] = history, profile
    return Interactions(items, [texts[item] for item in items], histories, user_texts), dict(rejects)


def load_interactions(items_file: Optional[str] = None, interactions_file: Optional[str] = None, min_history: int = 3,
                      include_site_packages: bool = False) -> Tuple[Interactions, Dict[str, int]]:
    """Your catalogue and histories (``read_interactions``) when given, else the import graph
    (``stdlib_import_interactions``), and what was left out of them, by reason."""
    if interactions_file:
        return read_interactions(items_file, interactions_file, min_history)
    return stdlib_import_interactions(min_history, include_site_packages=include_site_packages), {}

"""The loaded set of sequences, with their keyword index, reloaded when a file changes."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.keywords import KeywordIndex
from engine.sequence_checks import keyword_rules, library_problems
from engine.sequence_files import Problem, SequenceFileError, load_sequence_file, sequence_paths
from engine.sequences import Sequence

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SequenceLibrary:
    """All loaded sequences and the keyword index built from them."""

    sequences: dict[str, Sequence]
    keywords: KeywordIndex
    digest: str = ""  # SHA-256 of the files' names and contents: equal on every host that has the same files

    def get(self, name: str) -> Sequence | None:
        return self.sequences.get(name)


def load_library(folder: Path) -> SequenceLibrary:
    """Load every sequence file in `folder`, raising SequenceFileError listing all problems in all files."""
    problems: list[Problem] = []
    loaded: list[Sequence] = []
    digest = hashlib.sha256()
    for path in sequence_paths([folder]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        try:
            loaded.append(load_sequence_file(path))
        except SequenceFileError as error:
            problems.extend(error.problems)
    problems.extend(library_problems(loaded))
    if problems:
        raise SequenceFileError(problems)

    sequences = {sequence.name: sequence for sequence in loaded}
    rules = keyword_rules(loaded)
    logger.info("loaded %d sequences with %d keywords from %s", len(sequences), len(rules), folder)
    return SequenceLibrary(sequences=sequences, keywords=KeywordIndex(rules), digest=digest.hexdigest())


_cache_lock = threading.Lock()
_cache: tuple[Path, tuple[tuple[str, float, int], ...], SequenceLibrary] | None = None


def _fingerprint(folder: Path) -> tuple[tuple[str, float, int], ...]:
    return tuple((str(p), p.stat().st_mtime, p.stat().st_size) for p in sequence_paths([folder]))


def get_library(folder: Path) -> SequenceLibrary:
    """Return the library for `folder`, reloading it when a file was added, removed or edited.

    A reload that fails keeps serving the last good library and logs the problems, so a bad edit
    never takes live sequences down. `smsdrip check` shows the same problems before deploying.
    """
    global _cache
    fingerprint = _fingerprint(folder)
    with _cache_lock:
        if _cache is not None and _cache[0] == folder and _cache[1] == fingerprint:
            return _cache[2]
        try:
            library = load_library(folder)
        except SequenceFileError as error:
            if _cache is None or _cache[0] != folder:
                raise
            logger.error("sequence files changed but are invalid; still using the previous version:\n%s", error)
            _cache = (folder, fingerprint, _cache[2])
            return _cache[2]
        _cache = (folder, fingerprint, library)
        return library


def reset_library_cache() -> None:
    """Forget the loaded library, for tests that switch folders."""
    global _cache
    with _cache_lock:
        _cache = None

"""Where the local stack keeps its files, all under ``settings.cache_dir``:

    downloads/        Kafka classpath per version, Elasticsearch zips, the built analysis
                      plugin (es-plugin/) (kept by `down --purge`)
    fetch.json        versions that resolved
    config/<name>/    rendered configuration
    data/<name>/      server data (removed by `down --purge`)
    logs/<name>.log   each server's output
    run/<name>.json   pid and address of what `stack up` started

Elasticsearch refuses to run as root; when the stack runs as root it runs Elasticsearch as an
unprivileged user, which must be able to reach its files. A cache dir that user cannot enter
(e.g. under /root) gets its Elasticsearch tree in /var/lib/<es_user>/ with a symlink
``<cache_dir>/elasticsearch`` pointing there."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

COMPONENTS = ("kafka", "elasticsearch", "prometheus", "alertmanager")


def others_can_enter(path: Path) -> bool:
    """True when every existing ancestor of ``path`` lets other users traverse it."""
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & stat.S_IXOTH:
            return False
    return True


@dataclass(frozen=True)
class Layout:
    cache_dir: Path
    es_user: str = ""

    @property
    def downloads(self) -> Path:
        return self.cache_dir / "downloads"

    @property
    def manifest(self) -> Path:
        return self.cache_dir / "fetch.json"

    def kafka_libs(self, version: str) -> Path:
        return self.downloads / f"kafka-{version}" / "kafka-libs"

    def es_zip(self, version: str) -> Path:
        return self.downloads / "es" / f"elasticsearch-{version}.zip"

    def config(self, name: str) -> Path:
        return self.cache_dir / "config" / name

    def data(self, name: str) -> Path:
        return self.cache_dir / "data" / name

    def log(self, name: str) -> Path:
        return self.cache_dir / "logs" / f"{name}.log"

    def state(self, name: str) -> Path:
        return self.cache_dir / "run" / f"{name}.json"

    @property
    def es_link(self) -> Path:
        return self.cache_dir / "elasticsearch"

    @property
    def es_root(self) -> Path:
        """Home, config, data and logs of the Elasticsearch node."""
        cache = self.cache_dir.resolve()
        if os.geteuid() != 0 or others_can_enter(cache):
            return cache / "elasticsearch"
        digest = hashlib.sha1(str(cache).encode()).hexdigest()[:12]
        return Path("/var/lib") / (self.es_user or "decryptscope-es") / f"stack-{digest}"

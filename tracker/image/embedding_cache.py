"""A least-recently-used cache of image embeddings, bounded by count and by bytes.

An interactive client embeds an image once and then clicks many times; each click must find the
embedding without a vision pass. The cache must not grow with the number of images a server has
ever seen: the oldest entries go when either bound would be passed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

DEFAULT_MAX_ENTRIES = 16
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
"""facebook/sam3's backbone output for one image is 21.2 MB (72x72 tokens x 1024 fp32 floats), so
512 MiB holds about 25 images: for it the count binds first."""


@dataclass(frozen=True)
class CachedEmbedding:
    """One image's cached vision output and the size of the image it came from.

    Attributes:
        features: the tensors kept (``tracker.image.vision`` keeps the backbone output alone,
            ``((1, h*w, C),)``).
        image_shape: (height, width) of the original image in pixels.
    """

    features: tuple[torch.Tensor, ...]
    image_shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.features)


class EmbeddingCache:
    """Thread-safe LRU of ``CachedEmbedding`` by ``image_id``.

    Examples:
        >>> import torch
        >>> cache = EmbeddingCache(max_entries=1)
        >>> cache.put("a", CachedEmbedding((torch.zeros(1, 2, 2, 2),), (4, 4)))
        >>> cache.put("b", CachedEmbedding((torch.zeros(1, 2, 2, 2),), (4, 4)))
        >>> cache.ids()
        ['b']
    """

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be at least 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CachedEmbedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, image_id: str, entry: CachedEmbedding) -> None:
        """Store ``entry``, evicting the least recently used until both bounds hold.

        An entry larger than ``max_bytes`` on its own is not stored (it would evict everything
        and still not fit); ``get`` then reports its id as unknown.
        """
        with self._lock:
            old = self._entries.pop(image_id, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.max_bytes:
                return
            self._entries[image_id] = entry
            self._bytes += entry.nbytes
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def get(self, image_id: str) -> CachedEmbedding:
        """The entry for ``image_id``, now the most recently used.

        Raises:
            ValueError: naming ``image_id`` when it was never embedded or has been evicted.
        """
        with self._lock:
            entry = self._entries.get(image_id)
            if entry is None:
                raise ValueError(
                    f"image_id {image_id!r} is unknown (never embedded, or evicted from the "
                    f"cache of {self.max_entries} images / {self.max_bytes} bytes): embed it again"
                )
            self._entries.move_to_end(image_id)
            return entry

    def __contains__(self, image_id: object) -> bool:
        with self._lock:
            return image_id in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held by every cached tensor."""
        with self._lock:
            return self._bytes

    def ids(self) -> list[str]:
        """Cached ids, least recently used first."""
        with self._lock:
            return list(self._entries)

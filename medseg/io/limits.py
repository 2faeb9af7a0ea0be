"""Resource limits for reading untrusted inputs, configured through environment variables.

Every limit is read when it is checked (not at import), so a server or a test can change it
without reloading modules. A value that is not a positive integer falls back to the default.

=============================  =============  ================================================
variable                       default        bounds
=============================  =============  ================================================
``MEDSEG_MAX_MEMORY_BYTES``    8 GiB          working memory of one image: its decoded
                                              size plus the copies the step makes (a float
                                              copy when read; the pipeline's arrays when
                                              segmented), estimated from the header before
                                              any voxel is allocated (also read from the
                                              older name ``MEDSEG_MAX_IMAGE_BYTES``); a
                                              segmentation adds its model's sliding window
                                              (padding to the patch, tiles, activations),
                                              and a model's network weights are checked
                                              against it from the model file before the
                                              network is built
``MEDSEG_MAX_UNZIPPED_BYTES``  4 GiB          total size extracted from one zip archive
``MEDSEG_MAX_ZIP_MEMBERS``     20000          number of members of one zip archive
=============================  =============  ================================================
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

MAX_MEMORY_BYTES_ENV = "MEDSEG_MAX_MEMORY_BYTES"
MAX_IMAGE_BYTES_ENV = "MEDSEG_MAX_IMAGE_BYTES"  # the older name of the same limit
MAX_UNZIPPED_BYTES_ENV = "MEDSEG_MAX_UNZIPPED_BYTES"
MAX_ZIP_MEMBERS_ENV = "MEDSEG_MAX_ZIP_MEMBERS"

DEFAULT_MAX_MEMORY_BYTES = 8 * 1024**3
DEFAULT_MAX_UNZIPPED_BYTES = 4 * 1024**3
DEFAULT_MAX_ZIP_MEMBERS = 20000

#: DEFLATE cannot expand data by more than about 1032:1; a compressed file whose header
#: declares more than this ratio times its size cannot hold the data it claims.
MAX_COMPRESSION_RATIO = 1100


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return value if value > 0 else default


def max_memory_bytes() -> int:
    """The most working memory (bytes) one image may need: ``$MEDSEG_MAX_MEMORY_BYTES`` (or
    the older ``$MEDSEG_MAX_IMAGE_BYTES``)."""
    if os.environ.get(MAX_MEMORY_BYTES_ENV, "").strip():
        return _env_int(MAX_MEMORY_BYTES_ENV, DEFAULT_MAX_MEMORY_BYTES)
    return _env_int(MAX_IMAGE_BYTES_ENV, DEFAULT_MAX_MEMORY_BYTES)


#: bytes of working memory per input voxel beyond the decoded data: a float32 copy when an
#: image is only read; a segmentation sets more (see :func:`working_memory`)
_WORKING_BYTES = contextvars.ContextVar("medseg_working_bytes_per_voxel", default=4.0)


def working_bytes_per_voxel() -> float:
    return _WORKING_BYTES.get()


@contextlib.contextmanager
def working_memory(bytes_per_voxel: float) -> Iterator[None]:
    """Within this block, readers count ``bytes_per_voxel`` of working memory per voxel on top
    of the decoded data when they check an image's header against :func:`max_memory_bytes`."""
    token = _WORKING_BYTES.set(float(bytes_per_voxel))
    try:
        yield
    finally:
        _WORKING_BYTES.reset(token)


def max_unzipped_bytes() -> int:
    """The most bytes one zip archive may expand to: ``$MEDSEG_MAX_UNZIPPED_BYTES``."""
    return _env_int(MAX_UNZIPPED_BYTES_ENV, DEFAULT_MAX_UNZIPPED_BYTES)


def max_zip_members() -> int:
    """The most members one zip archive may hold: ``$MEDSEG_MAX_ZIP_MEMBERS``."""
    return _env_int(MAX_ZIP_MEMBERS_ENV, DEFAULT_MAX_ZIP_MEMBERS)

"""Resource limits for reading untrusted inputs, configured through environment variables.

Every limit is read when it is checked (not at import), so a server or a test can change it
without reloading modules. A value that is not a positive integer falls back to the default.

=============================  =============  ================================================
variable                       default        bounds
=============================  =============  ================================================
``MEDSEG_MAX_IMAGE_BYTES``     4 GiB          decoded size of one image (voxels x bytes per
                                              voxel x channels), checked from the header
                                              before any voxel is allocated
``MEDSEG_MAX_UNZIPPED_BYTES``  4 GiB          total size extracted from one zip archive
``MEDSEG_MAX_ZIP_MEMBERS``     20000          number of members of one zip archive
=============================  =============  ================================================
"""

from __future__ import annotations

import os

MAX_IMAGE_BYTES_ENV = "MEDSEG_MAX_IMAGE_BYTES"
MAX_UNZIPPED_BYTES_ENV = "MEDSEG_MAX_UNZIPPED_BYTES"
MAX_ZIP_MEMBERS_ENV = "MEDSEG_MAX_ZIP_MEMBERS"

DEFAULT_MAX_IMAGE_BYTES = 4 * 1024**3
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


def max_image_bytes() -> int:
    """The largest decoded image (bytes) a reader accepts: ``$MEDSEG_MAX_IMAGE_BYTES``."""
    return _env_int(MAX_IMAGE_BYTES_ENV, DEFAULT_MAX_IMAGE_BYTES)


def max_unzipped_bytes() -> int:
    """The most bytes one zip archive may expand to: ``$MEDSEG_MAX_UNZIPPED_BYTES``."""
    return _env_int(MAX_UNZIPPED_BYTES_ENV, DEFAULT_MAX_UNZIPPED_BYTES)


def max_zip_members() -> int:
    """The most members one zip archive may hold: ``$MEDSEG_MAX_ZIP_MEMBERS``."""
    return _env_int(MAX_ZIP_MEMBERS_ENV, DEFAULT_MAX_ZIP_MEMBERS)

"""imgfmt: image datasets into training-ready formats and back.

The command line (``imgfmt``) is a thin layer over these modules, each usable on its own:

- ``imgfmt.formats.recordio``: MXNet/dmlc RecordIO framing, ``IRHeader``, ``.idx``
- ``imgfmt.formats.lst``: im2rec ``.lst`` lists, listing and splitting, class maps
- ``imgfmt.images``: decode / convert / crop / resize / encode (Pillow)
- ``imgfmt.ops.pack``, ``imgfmt.ops.unpack``: the operations behind the commands

Every error a user can cause is an ``imgfmt.errors.ImgfmtError``.
"""

from imgfmt.errors import FormatError, ImageError, ImgfmtError, StorageError, UsageError

__version__ = "0.1.0"

__all__ = ["FormatError", "ImageError", "ImgfmtError", "StorageError", "UsageError", "__version__"]

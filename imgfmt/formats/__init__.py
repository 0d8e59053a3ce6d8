"""Which batch-inference format a file holds, where its extension is shared.

A ``.jsonl`` (``.json``, ``.manifest``) may be a SageMaker augmented manifest or a JSON Lines
image dataset; a ``.rec`` may be MXNet RecordIO or SageMaker RecordIO-protobuf. Their content
tells (:func:`imgfmt.formats.jsonlines.sniff_jsonl`, :func:`imgfmt.formats.rio_protobuf.sniff`);
``unpack``, ``verify`` and ``split`` all ask here, so that they never disagree about a file.
"""

from __future__ import annotations

from imgfmt import storage

JSONLINES = "jsonlines"
RECORDIO_PROTOBUF = "recordio-protobuf"

#: Extensions a JSON Lines image dataset may share with an augmented manifest.
JSON_EXTENSIONS = (".jsonl", ".json", ".manifest")


def content_format(path: str, *, has_index: bool | None = None) -> str | None:
    """:data:`JSONLINES` or :data:`RECORDIO_PROTOBUF` when ``path``'s content is one, else
    None (a manifest, an MXNet ``.rec``, any other file). A ``.rec`` with an ``.idx`` beside
    it is MXNet's without a look (only MXNet datasets come with one); ``has_index`` says
    whether there is one, when the caller already knows. ``StorageError`` for a file that
    cannot be read."""
    ext = storage.splitext(path)[1].lower()
    if ext in JSON_EXTENSIONS:
        from imgfmt.formats.jsonlines import sniff_jsonl

        return JSONLINES if sniff_jsonl(path) else None
    if ext == ".rec":
        if has_index is None:
            has_index = storage.exists(storage.sibling(path, ".idx"))
        if has_index:
            return None
        from imgfmt.formats.rio_protobuf import sniff

        return RECORDIO_PROTOBUF if sniff(path) else None
    return None


__all__ = ["JSONLINES", "JSON_EXTENSIONS", "RECORDIO_PROTOBUF", "content_format"]

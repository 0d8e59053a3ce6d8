"""The operations behind the commands (pack, unpack, verify, split, predictions): each runs
over the datasets the format modules read and write (``imgfmt.formats``) and leaves where the
work runs to an engine (``imgfmt.engines``)."""

"""Why a photo was not drafted, as plain exceptions; the API chooses their HTTP status codes.

Every message names the photo and what was wrong with it, so a batch report, a CLI line and an HTTP
answer say the same thing. Refusals of the input are ValueErrors; a refine by content hash finds no kept
draft (DraftNotKept, a LookupError) when the service no longer holds it.
"""
from __future__ import annotations


class PhotoRejected(ValueError):
    """The photo cannot be drafted: empty, unreadable, too small, or refused by a limit."""


class PhotoTooLarge(PhotoRejected):
    """Over max_upload_bytes or max_pixels, refused before any pixel is decoded."""


class PhotoUnavailable(PhotoRejected):
    """A photo named by URL could not be fetched (bad URL, timeout, an error answer)."""


class HostNotAllowed(PhotoUnavailable):
    """A photo URL on a host the settings do not allow, or redirected off its host."""


class DraftNotKept(LookupError):
    """No draft of the photo with this content hash is kept (never drafted here, expired or evicted)."""


class DraftOfOtherModel(DraftNotKept):
    """The photo's kept draft was made by a model that no longer serves."""


class Saturated(RuntimeError):
    """max_in_flight drafts are already in work; the caller should retry later."""


class FolderRefused(ValueError):
    """A folder of photos that cannot be drafted: not allowed, or holding no (or too many) photos."""


class FolderOutsideRoot(FolderRefused):
    """The folder resolves outside batch_root (through '..' or a symlink)."""


class FolderNotFound(FolderRefused):
    """No such folder under batch_root."""


class TooManyPhotos(FolderRefused):
    """More photos than max_batch_files."""

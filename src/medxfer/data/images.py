"""Decode any supported image file into one pixel convention.

Convention (everything downstream relies on it): ``read_image`` returns a ``numpy.uint8`` array,
shape ``(H, W)`` for grayscale or ``(H, W, 3)`` for colour (RGB order). With ``channels="auto"``
an image whose colour channels are all equal (e.g. an X-ray saved as RGB JPEG) comes back as
``(H, W)``. 16-bit and DICOM data are windowed (VOI LUT / window, else min-max over the pixel
range) to the full 0..255 range, so nothing is clipped to white or black.

Every failure raises :class:`ImageError` naming the file and the reason.
"""

from __future__ import annotations

# IMPLEMENTATION: owned by the data helper (see DEVELOPERS notes in the issue).

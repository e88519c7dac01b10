"""QR images of payloads: SVG without Pillow (qrcode's path factories) and PNG through pypng."""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
import qrcode.image.pure
import qrcode.image.svg

# Level M survives a smudged or partly torn sticker; a dynamic payload fits in version 14.
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
QUIET_ZONE_MODULES = 4  # the white border readers need
DEFAULT_PNG_MODULE_PX = 8
MAX_PNG_MODULE_PX = 32


def _code(payload: str) -> qrcode.QRCode:
    assert payload and payload.isascii()
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=QUIET_ZONE_MODULES)
    code.add_data(payload.encode("ascii"))
    code.make(fit=True)
    return code


def qr_matrix(payload: str) -> list[list[bool]]:
    """The code's modules (True = dark), quiet zone included."""
    matrix: list[list[bool]] = _code(payload).get_matrix()
    return matrix


def qr_svg(payload: str) -> bytes:
    """An SVG image of the payload: one path, one unit per module, on a white background
    (a transparent one vanishes on a dark screen), quiet zone included."""
    image = _code(payload).make_image(image_factory=qrcode.image.svg.SvgPathFillImage)
    svg: bytes = image.to_string(encoding="unicode").encode("utf-8")
    return svg


def qr_png(payload: str, module_px: int = DEFAULT_PNG_MODULE_PX) -> bytes:
    """A black-and-white PNG of the payload, `module_px` pixels per module."""
    assert 0 < module_px <= MAX_PNG_MODULE_PX
    code = _code(payload)
    code.box_size = module_px
    image = code.make_image(image_factory=qrcode.image.pure.PyPNGImage)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()

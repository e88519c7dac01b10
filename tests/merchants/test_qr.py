import re
import uuid
import xml.etree.ElementTree as ET

import numpy as np
import png
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rollon.ledger.journal import key_id
from rollon.merchants import payload as p
from rollon.merchants.qr import QUIET_ZONE_MODULES, qr_matrix, qr_png, qr_svg

KEY = Ed25519PrivateKey.generate()
NOW_S = 1_800_000_000
_MODULE = re.compile(r"M(\d+),(\d+)H(\d+)V(\d+)H(\d+)z")


def dynamic_text() -> str:
    payload = p.dynamic_payload(
        merchant_account_id=uuid.uuid4(),
        key_id=key_id(KEY.public_key()),
        merchant_name="Épicerie Saint-Sever",
        merchant_city="Rouen",
        amount=4_990,
        request_id=uuid.uuid4(),
        issued_at_s=NOW_S,
        expires_at_s=NOW_S + 300,
        reference="Commande 8812",
    )
    return p.sign_payload(payload, KEY)


def static_text() -> str:
    payload = p.static_payload(
        merchant_account_id=uuid.uuid4(),
        key_id=key_id(KEY.public_key()),
        merchant_name="Le Havre Vélos",
        merchant_city="Le Havre",
        issued_at_s=NOW_S,
    )
    return p.sign_payload(payload, KEY)


def decode(pixels: np.ndarray) -> list[str]:
    # QR codes only, as a till's scanner reads them: once, the decoder's 1D readers took a
    # stripe of a 2-pixel-module image for a second code ('3338').
    found = zxingcpp.read_barcodes(pixels, formats=zxingcpp.BarcodeFormat.QRCode)
    return [result.text for result in found]


def png_pixels(data: bytes) -> np.ndarray:
    width, height, rows, info = png.Reader(bytes=data).read()
    pixels = np.array([list(row) for row in rows], dtype=np.uint8)
    assert pixels.shape == (height, width) and info["greyscale"]
    return pixels * 255 if info["bitdepth"] == 1 else pixels


def svg_modules(svg: bytes) -> tuple[int, set[tuple[int, int]]]:
    """The size and the dark modules (x, y) an SVG draws, read from its path."""
    root = ET.fromstring(svg)
    size = int(root.attrib["viewBox"].split()[2])
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 1
    dark = set()
    for x, y, x1, y1, x0 in _MODULE.findall(paths[0].attrib["d"]):
        assert (int(x1), int(y1), int(x0)) == (int(x) + 1, int(y) + 1, int(x))
        dark.add((int(x), int(y)))
    return size, dark


@pytest.mark.parametrize("make_text", [dynamic_text, static_text])
def test_png_decodes_back_to_the_payload(make_text: object) -> None:
    text = make_text()  # type: ignore[operator]
    assert decode(png_pixels(qr_png(text))) == [text]


def test_png_module_size_scales_the_image() -> None:
    text = dynamic_text()
    small, large = png_pixels(qr_png(text, module_px=2)), png_pixels(qr_png(text, module_px=10))
    assert large.shape[0] == 5 * small.shape[0]
    assert decode(small) == [text]


@pytest.mark.parametrize("make_text", [dynamic_text, static_text])
def test_svg_draws_exactly_the_modules_of_the_code(make_text: object) -> None:
    text = make_text()  # type: ignore[operator]
    svg = qr_svg(text)
    assert b"<svg" in svg and b"PNG" not in svg
    matrix = qr_matrix(text)
    size, dark = svg_modules(svg)
    assert size == len(matrix)
    expected = {(x, y) for y, row in enumerate(matrix) for x, on in enumerate(row) if on}
    assert dark == expected
    # and the picture those modules make is read back by a real decoder
    scale = 6
    pixels = np.full((size * scale, size * scale), 255, dtype=np.uint8)
    for x, y in dark:
        pixels[y * scale : (y + 1) * scale, x * scale : (x + 1) * scale] = 0
    assert decode(pixels) == [text]


def test_svg_has_a_white_background_and_a_quiet_zone() -> None:
    text = static_text()
    svg = qr_svg(text)
    assert b'fill="white"' in svg
    size, dark = svg_modules(svg)
    assert min(min(x, y) for x, y in dark) == QUIET_ZONE_MODULES
    assert max(max(x, y) for x, y in dark) == size - QUIET_ZONE_MODULES - 1

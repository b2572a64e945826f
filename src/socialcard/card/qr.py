"""QR codes of presentations: the text form, and a compact binary form that is a quarter
smaller (each base64url part carried as its bytes), so one pass fits a low QR version.

Both forms carry exactly the same presentation: `unpack(pack(p)) == p` (the parts are
canonical base64url, so re-encoding gives back every character). Unpacking is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import segno

from socialcard.card.sdjwt import MAX_PRESENTATION, SdJwtError, b64decode, b64encode

MAGIC = b"SC\x01"
MAX_PACKED = 8_192
_SEPARATORS = {".": 0, "~": 1}
_END = 2
_CHARS = {0: ".", 1: "~"}


def pack(presentation: str) -> bytes:
    """The binary form: MAGIC, then per part its length (2 bytes), bytes and separator."""
    out = bytearray(MAGIC)
    part: list[str] = []
    for char in presentation + "\x00":
        if char in _SEPARATORS or char == "\x00":
            raw = b64decode("".join(part), what="qr")
            if len(raw) > 0xFFFF:
                raise SdJwtError("qr_size")
            out += len(raw).to_bytes(2, "big") + raw
            out.append(_SEPARATORS.get(char, _END))
            part = []
        else:
            part.append(char)
    return bytes(out)


def unpack(data: bytes) -> str:
    """The presentation from its binary form (SdJwtError when malformed or oversized)."""
    if len(data) > MAX_PACKED or not data.startswith(MAGIC):
        raise SdJwtError("qr_format")
    pos, text = len(MAGIC), []
    while True:
        if pos + 2 > len(data):
            raise SdJwtError("qr_format")
        size = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + size + 1 > len(data):
            raise SdJwtError("qr_format")
        text.append(b64encode(data[pos : pos + size]))
        separator = data[pos + size]
        pos += size + 1
        if separator == _END:
            break
        if separator not in _CHARS:
            raise SdJwtError("qr_format")
        text.append(_CHARS[separator])
        if sum(map(len, text)) > MAX_PRESENTATION:
            raise SdJwtError("presentation_size")
    if pos != len(data):
        raise SdJwtError("qr_format")
    return "".join(text)


def decode_scan(scanned: bytes | str) -> str:
    """What a scanner read (either form) as the presentation text."""
    if isinstance(scanned, bytes):
        if scanned.startswith(MAGIC):
            return unpack(scanned)
        try:
            return scanned.decode("ascii")
        except UnicodeDecodeError:
            raise SdJwtError("qr_format") from None
    return scanned


@dataclass(frozen=True, slots=True)
class QrMeasure:
    text_bytes: int
    text_version: int
    packed_bytes: int
    packed_version: int


def make_qr(presentation: str, *, packed: bool = True) -> segno.QRCode:
    """A QR code at error correction L (the smallest; a screen is not a dirty label)."""
    content: bytes | str = pack(presentation) if packed else presentation
    return segno.make_qr(content, error="L", boost_error=False)


def measure(presentation: str) -> QrMeasure:
    """Bytes and QR version of a presentation in both forms."""
    packed = pack(presentation)
    return QrMeasure(
        text_bytes=len(presentation),
        text_version=int(make_qr(presentation, packed=False).version),
        packed_bytes=len(packed),
        packed_version=int(make_qr(presentation).version),
    )


def svg(presentation: str, *, scale: int = 4) -> str:
    """The compact-form QR code as inline SVG (the citizen's QR page shows this)."""
    return str(make_qr(presentation).svg_inline(scale=scale, dark="#000", light="#fff"))

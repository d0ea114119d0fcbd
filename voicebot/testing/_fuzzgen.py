"""Grammar-based frame mutations for the WebSocket fuzzer (``scripts/fuzz_ws.py``); pure and seeded.

:func:`generate` turns a seeded ``random.Random`` into an endless, reproducible stream of :class:`Frame` s: valid
messages of every request type (from :data:`~voicebot.testing._corpus.VALID_MESSAGES`) mutated by field removal,
retyping, oversizing, deep nesting, lone surrogates, huge numbers, unknown types and broken JSON; sent as text,
binary or fragmented frames, plus protocol-invalid frames (RSV bits, reserved opcodes, unmasked, invalid UTF-8,
oversized). Server-assigned ids cannot be known in advance, so frames carry the placeholders ``@PEER@``,
``@LOBBY@`` and ``@OTHER@`` that the driver replaces with live ids at send time: the generated stream itself (and
its digest) depends only on the seed.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import attrs

from ._corpus import VALID_MESSAGES
from ._rawws import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, frame

__all__ = ["PLACEHOLDERS", "Frame", "generate"]

PLACEHOLDERS = ("@PEER@", "@LOBBY@", "@OTHER@")

_TYPES = sorted(VALID_MESSAGES)
_ID_FIELDS = {"to": "@OTHER@", "lobby_id": "@LOBBY@", "peer_id": "@OTHER@"}
# Always mutated: a valid hello is answered with already_hello anyway, and name.register's valid form costs a
# password hash (slow by design) — the fuzzer measures parsing and validation, not argon2 throughput.
_EXPENSIVE = {"name.register", "hello"}


@attrs.frozen
class Frame:
    """One thing to send: ``kind`` is ``text`` (one frame), ``fragments`` (a text message in several frames),
    ``binary``, or ``invalid`` (raw bytes of a protocol-violating frame: the server must close the connection);
    ``expect_close`` is the close code a correct server answers with (None: it must reply and stay open)."""

    kind: str
    text: str = ""
    parts: tuple[str, ...] = ()
    raw: bytes = b""
    expect_close: int | None = None
    label: str = ""

    def wire(self, substitute: dict[str, str]) -> bytes:
        """The frame's bytes, placeholders replaced by live ids."""
        if self.kind == "invalid":
            return self.raw
        if self.kind == "binary":
            return frame(OP_BINARY, self.raw)
        if self.kind == "fragments":
            pieces = [_sub(p, substitute).encode("utf-8", "surrogatepass") for p in self.parts]
            out = b""
            for i, piece in enumerate(pieces):
                out += frame(OP_TEXT if i == 0 else OP_CONT, piece, fin=i == len(pieces) - 1)
            return out
        return frame(OP_TEXT, _sub(self.text, substitute).encode("utf-8", "surrogatepass"))

    def digest_bytes(self) -> bytes:
        """What identifies this frame for replay digests (before substitution, random masking keys excluded)."""
        return f"{self.kind}|{self.text}|{'|'.join(self.parts)}|".encode("utf-8", "surrogatepass") + self.raw


def _sub(text: str, substitute: dict[str, str]) -> str:
    if "@" in text:
        for key, value in substitute.items():
            text = text.replace(key, value)
    return text


def generate(rng: random.Random, *, max_message_size: int = 65536) -> Iterator[Frame]:
    """Endless seeded frames (see module docstring); about 2 % protocol-invalid, 1 % oversized."""
    while True:
        roll = rng.random()
        if roll < 0.02:
            yield _invalid(rng, max_message_size)
        elif roll < 0.03:
            yield _oversized(rng, max_message_size)
        elif roll < 0.06:
            yield Frame("binary", raw=rng.randbytes(rng.randint(0, 64)), label="binary")
        else:
            text, label = _message(rng)
            if rng.random() < 0.08 and len(text) > 2:
                cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 4))))
                parts = tuple(text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True))
                yield Frame("fragments", parts=parts, label=label + "+fragmented")
            else:
                yield Frame("text", text=text, label=label)


def _message(rng: random.Random) -> tuple[str, str]:
    mtype = rng.choice(_TYPES)
    message: Any = copy.deepcopy(rng.choice(VALID_MESSAGES[mtype]))
    for key, placeholder in _ID_FIELDS.items():
        if key in message and rng.random() < 0.7:
            message[key] = placeholder
    mutations = rng.choices(range(4), weights=(3, 5, 2, 1))[0]
    if mtype in _EXPENSIVE:
        mutations = max(mutations, 1)
    labels = [mtype]
    raws: dict[str, str] = {}  # token -> JSON fragment spliced in verbatim (numbers and nesting JSON can't spell)
    for _ in range(mutations):
        message, label = _mutate(rng, message, raws)
        labels.append(label)
    if isinstance(message, dict) and isinstance(message.get("password"), str):
        # a valid password costs a password hash (slow by design, budgeted elsewhere): parsing is what is fuzzed
        message["password"] = rng.choice([None, 5, "", "x" * 300, ["pw"]])
    if isinstance(message, dict) and "id" not in message and rng.random() < 0.5:
        message["id"] = rng.randint(1, 10**6)
    text = json.dumps(message, indent=rng.choice([None, None, None, 1]))
    for token, fragment in raws.items():
        text = text.replace(f'"{token}"', fragment)
    if rng.random() < 0.03:  # broken JSON
        cut = rng.randint(0, max(0, len(text) - 1))
        return text[:cut] + rng.choice(["", "}", ",", '"', "\\", "\x00", "NaN", "]"]), "/".join([*labels, "broken"])
    return text, "/".join(labels)


_BAD_NUMBERS = ["9" * 5000, "-" + "9" * 400, str(2**53), str(-(2**63)), "1e999", "-1e400", "NaN", "Infinity",
                "1" * 17, "0." + "5" * 200]


def _bad_value(rng: random.Random, raws: dict[str, str]) -> Any:
    choice = rng.randrange(12)
    if choice == 0:
        return rng.choice(["\ud800", "x\udfff", "\udc00\ud800", "a\ud83d"])
    if choice in (1, 2):
        token = f"@@RAW{len(raws)}@@"
        if choice == 1:
            raws[token] = rng.choice(_BAD_NUMBERS)
        else:
            depth = rng.choice([5, 31, 33, 64, 200, 2000])
            raws[token] = "[" * depth + "1" + "]" * depth
        return token
    if choice == 3:
        return "x" * rng.choice([0, 1, 65, 257, 2001, 5000, 40_000])
    return rng.choice([None, True, False, 0, -1, 1.5, 2**31, "", "  ", "l_" + "0" * 24, [], {}, [1, "a"],
                       {"a": {"b": None}}, "\x00\x1b[31m", "\u202e\u200b", "\uff41\uff4c\uff49"])


def _mutate(rng: random.Random, message: Any, raws: dict[str, str]) -> tuple[Any, str]:
    if not isinstance(message, dict):
        return message, "keep"
    op = rng.randrange(8)
    keys = [k for k in message if k != "type"]
    if op == 0 and keys:
        del message[rng.choice(keys)]
        return message, "removed"
    if op in (1, 2, 3) and keys:
        _set(message, _random_path(rng, message), _bad_value(rng, raws))
        return message, "retyped"
    if op == 4:
        message[rng.choice(["note", "x", "\ud800k", "deep", "options"])] = _bad_value(rng, raws)
        return message, "added"
    if op == 5:
        message["type"] = rng.choice(["", "nope", "ping ", "PING", "lobby", "worker.start", "admin.", 5, None,
                                      "\ud800", "x" * 300])
        return message, "type"
    if op == 6:
        return rng.choice([[], [message], "str", 1, None, True]), "not-object"
    return message, "valid"


def _random_path(rng: random.Random, message: dict[str, Any]) -> list[Any]:
    path: list[Any] = []
    node: Any = message
    while True:
        keys = ([k for k in node if k != "type"] if isinstance(node, dict) else list(range(len(node))))
        if not keys:
            return path or ["note"]
        key = rng.choice(keys)
        path.append(key)
        node = node[key]
        if not isinstance(node, dict | list) or rng.random() < 0.5:
            return path


def _set(message: Any, path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        message = message[key]
    message[path[-1]] = value


def _frame(rng: random.Random, opcode: int, payload: bytes, **kw: Any) -> bytes:
    """A frame whose masking key comes from ``rng`` (so invalid frames are reproducible byte for byte)."""
    return frame(opcode, payload, mask_key=rng.randbytes(4), **kw)


def _invalid(rng: random.Random, max_size: int) -> Frame:
    kind = rng.randrange(7)
    body = b'{"type":"ping"}'
    if kind == 0:
        return Frame("invalid", raw=_frame(rng, OP_TEXT, rng.choice([b"\xff\xfe", b'"\xed\xa0\x80"', b"ok\xe2\x82"])),
                     expect_close=1007, label="invalid-utf8")
    if kind == 1:
        return Frame("invalid", raw=_frame(rng, OP_TEXT, body, rsv=rng.randint(1, 7)), expect_close=1002, label="rsv")
    if kind == 2:
        return Frame("invalid", raw=_frame(rng, rng.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]), b""),
                     expect_close=1002, label="reserved-opcode")
    if kind == 3:
        return Frame("invalid", raw=_frame(rng, OP_TEXT, body, mask=False), expect_close=1002, label="unmasked")
    if kind == 4:
        return Frame("invalid", raw=_frame(rng, OP_CONT, body), expect_close=1002, label="orphan-continuation")
    if kind == 5:
        return Frame("invalid", raw=_frame(rng, OP_PING, b"x" * 126), expect_close=1002, label="big-control")
    return Frame("invalid", raw=_frame(rng, OP_PING, b"x", fin=False), expect_close=1002, label="fragmented-control")


def _oversized(rng: random.Random, max_size: int) -> Frame:
    total = max_size + rng.randint(1, 4096)
    if rng.random() < 0.5:
        return Frame("invalid", raw=_frame(rng, OP_TEXT, b"a" * total), expect_close=1009, label="oversized")
    piece = rng.choice([512, 4096, 16384])
    raw = _frame(rng, OP_TEXT, b"a" * piece, fin=False)
    sent = piece
    while sent <= total:
        raw += _frame(rng, OP_CONT, b"a" * piece, fin=False)
        sent += piece
    return Frame("invalid", raw=raw + _frame(rng, OP_CONT, b"a"), expect_close=1009, label="oversized-fragmented")

"""Issue 12 rows 11, 12, 20: names are normalised and compared by look-alike skeleton; reserved names, control and
bidi characters are refused; only a name's live holder may register it; ``kind: "bot"`` needs a token."""

from __future__ import annotations

import sys
import unicodedata

import pytest
import trio

from voicebot.auth._names import RESERVED_NAMES, name_skeletons, strip_unsafe, unsafe_char
from voicebot.client import RemoteError
from voicebot.errors import ValidationError
from voicebot.hub import validate_name
from voicebot.server import Server
from voicebot.testing import open_client, open_test_server, settings_for_tests

ADMIN = "names-admin-token"
LOOK_ALIKES = ["аlice3", "ａｌｉｃｅ３", "alıce3", "alice³", "ᴀlice3", "alice٣", "ALICE3", "AIice3", "alicе3", "αlice3"]


def _unsafe_code_points() -> list[str]:
    """Every control, format, surrogate, private-use, line/paragraph-separator code point in the BMP (sampled)."""
    out = []
    for cp in range(0x10000):
        char = chr(cp)
        if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}:
            out.append(char)
    return [*out[::7], "\u202e", "\u200b", "\x00", "\x1b", "\u2066", "\ufeff", "\u061c", "\u200f"]


@pytest.mark.parametrize("fake", LOOK_ALIKES)
def test_look_alikes_share_a_skeleton(fake: str) -> None:
    assert name_skeletons(fake) & name_skeletons("alice3")


@pytest.mark.parametrize("other", ["alice4", "bob3", "alicia3", "al ice3"])
def test_different_names_have_different_skeletons(other: str) -> None:
    assert not name_skeletons(other) & name_skeletons("alice3")


def test_every_unsafe_character_is_refused_in_names_and_stripped_from_chat() -> None:
    for char in _unsafe_code_points():
        assert unsafe_char(f"ab{char}c") == char
        with pytest.raises(ValidationError) as info:
            validate_name(f"ab{char}c")
        assert getattr(info.value, "code", None) == "name_invalid", repr(char)
        assert unsafe_char(strip_unsafe(f"hi{char}there")) is None
    assert strip_unsafe("line\nnext\ttab 👩\u200d💻") == "line\nnext\ttab 👩\u200d💻"


def test_names_are_nfkc_normalised() -> None:
    assert validate_name("ａｌｉｃｅ³") == "alice3"
    assert validate_name("  Bob  ") == "Bob"
    assert sys.maxunicode > 0xFFFF


async def _code(server: Server, name: str, **fields: object) -> str:
    async with open_client(server) as client:
        try:
            await client.hello(name, **fields)
            return "ok"
        except RemoteError as exc:
            return exc.code


@pytest.fixture
async def names_server() -> object:
    async with open_test_server(settings_for_tests(admin_token=ADMIN, reserved_names="acme, Helpdesk")) as server:
        yield server


async def test_look_alikes_of_registered_and_live_names_are_refused(names_server: Server, autojump_clock: object
                                                                    ) -> None:
    server = names_server
    async with open_client(server, "alice3") as alice:
        await alice.request("name.register", password="alice's secret")
    for fake in LOOK_ALIKES:
        code = await _code(server, fake)
        # NFKC/case variants *are* the registered name (they need its password); other look-alikes are refused
        expected = "auth_failed" if validate_name(fake).casefold() == "alice3" else "name_confusable"
        assert code == expected, fake
    async with open_client(server, "carol") as _carol:  # live, not registered
        for fake in ["cаrol", "caroI", "ｃarol"]:
            assert await _code(server, fake) == ("ok" if validate_name(fake).casefold() == "carol"
                                                 else "name_confusable"), fake
    assert await _code(server, "cаrol") == "name_confusable"  # carol is in her resume grace: still hers
    await trio.sleep(server.settings.resume_grace + 1)
    assert await _code(server, "cаrol") == "ok"  # carol's session ended: the look-alike is free (nothing registered)


async def test_reserved_names_and_their_look_alikes(names_server: Server, autojump_clock: object) -> None:
    server = names_server
    for name in [*sorted(RESERVED_NAMES), "Admin", "аdmin", "ＲＯＯＴ", "SYSTEM", "acme", "helpdesk"]:
        assert await _code(server, name) == "name_reserved", name
    assert await _code(server, "admin", admin_token=ADMIN) == "ok"  # an administrator may use them
    assert await _code(server, "administrators") == "ok"


async def test_only_the_live_holder_may_register_a_name(names_server: Server, autojump_clock: object) -> None:
    """Row 11: two sessions named carol; neither may register while the other is connected (or in grace)."""
    server = names_server
    async with open_client(server, "carol") as first, open_client(server, "Carol") as second:
        for who in (first, second):
            with pytest.raises(RemoteError) as info:
                await who.request("name.register", password="mine mine")
            assert info.value.code == "name_in_use"
    async with open_client(server, "dave") as dave:
        assert (await dave.request("name.register", password="dave's pass"))["name"] == "dave"


async def test_bot_kind_needs_a_worker_or_admin_token(names_server: Server, autojump_clock: object) -> None:
    server = names_server
    assert await _code(server, "echo", kind="bot") == "bot_not_authorized"
    assert await _code(server, "echo", kind="bot", worker_token="guess") == "auth_failed"
    assert await _code(server, "echo", kind="bot", admin_token=ADMIN) == "ok"


async def test_chat_is_stripped_of_control_and_bidi_characters(names_server: Server, autojump_clock: object) -> None:
    server = names_server
    async with open_client(server, "erin") as erin:
        lobby = await erin.create_lobby("room")
        await erin.join(lobby["id"])
        await erin.chat("pay \u202eevil\u200b\x1b[31m now")
        assert (await erin.next_event("chat"))["text"] == "pay evil[31m now"
        with pytest.raises(RemoteError) as info:
            await erin.request("chat", text="\u200b\u202e")
        assert (info.value.code, info.value.field) == ("invalid_message", "text")

"""The access gate: settings that fail closed, allowed networks, the wrong-password limiter.

ui.access is tested directly (a fake clock, no real waiting); ui.gate through AppTest
with the gate closed, so no model is loaded.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

import ui.access
import ui.gate
from ui.access import (
    FORGET_AFTER_S,
    AccessConfigError,
    Limiter,
    address_allowed,
    address_key,
    read_config,
)

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
GOOD = "correct horse battery"  # 21 characters


class FakeClock:
    """monotonic time that moves only when slept on"""

    def __init__(self):
        self.now, self.slept = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """a fresh process-wide limiter on a fake clock, so tests neither wait nor leak"""
    c = FakeClock()
    monkeypatch.setattr(ui.access, "LIMITER", Limiter(clock=c, sleep=c.sleep))
    return c


# ------------------------------------------------------------------ configuration


def test_secret_password_wins_over_the_environment():
    env = {"DEEPFAKE_PASSWORD": "from the environment"}
    assert read_config({"access_password": GOOD}, env).password == GOOD
    assert read_config({}, env).password == "from the environment"
    cfg = read_config({}, {})
    assert cfg.password is None and cfg.networks == ()


@pytest.mark.parametrize(
    "secrets, env",
    [
        ({"access_password": "short-pw"}, {}),
        ({}, {"DEEPFAKE_PASSWORD": "elevenchars"}),  # 11: one short
        ({}, {"DEEPFAKE_PASSWORD": ""}),  # set but empty: never "no password"
        ({"access_password": ""}, {"DEEPFAKE_PASSWORD": GOOD}),
    ],
)
def test_a_password_under_12_characters_is_refused(secrets, env):
    with pytest.raises(AccessConfigError, match="shorter than 12 characters") as err:
        read_config(secrets, env)
    shown = str(err.value)
    assert "short-pw" not in shown and "elevenchars" not in shown and "11" not in shown


def test_a_12_character_password_is_accepted():
    assert read_config({}, {"DEEPFAKE_PASSWORD": "x" * 12}).password == "x" * 12


def test_a_password_that_is_not_a_string_is_refused():
    with pytest.raises(AccessConfigError, match="must be a string"):
        read_config({"access_password": 1234567890123}, {})


def test_allowed_networks_from_secrets_list_or_environment_string():
    cfg = read_config({"allowed_networks": ["10.0.0.0/8", "192.168.1.0/24"]}, {})
    assert cfg.networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.0/24"),
    )
    env = {"DEEPFAKE_ALLOWED_NETWORKS": " 10.0.0.0/8, 2001:db8::/32 ,127.0.0.1"}
    assert [str(n) for n in read_config({}, env).networks] == [
        "10.0.0.0/8", "2001:db8::/32", "127.0.0.1/32",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "value, message",
    [
        (["10.0.0.0/8", "10.0.0.0/33"], "'10.0.0.0/33' is not a network"),
        ("192.168.1.0/24,office-lan", "'office-lan' is not a network"),
        ([], "lists no network"),
        ("  ,  ", "lists no network"),
        ({"lan": "10.0.0.0/8"}, "must be a list"),
    ],
)
def test_a_bad_network_list_is_refused(value, message):
    with pytest.raises(AccessConfigError, match=re.escape(message)):
        read_config({"allowed_networks": value}, {})


def test_address_inside_the_allowed_networks():
    nets = read_config({"allowed_networks": ["10.0.0.0/8", "2001:db8::/32"]}, {}).networks
    assert address_allowed("10.20.30.40", nets)
    assert not address_allowed("192.168.1.7", nets)
    assert address_allowed("2001:db8::1", nets) and not address_allowed("2001:db9::1", nets)
    assert address_allowed("::ffff:10.1.1.1", nets)  # IPv4-mapped: as IPv4
    assert not address_allowed("not an address", nets)
    # Streamlit says None for a client on this machine: loopback, not listed here
    assert not address_allowed(None, nets)
    assert address_allowed(None, read_config({}, {"DEEPFAKE_ALLOWED_NETWORKS": "::1"}).networks)
    assert address_allowed("192.168.1.7", ())  # no list: no check


def test_limiter_keys_group_ipv6_by_64():
    assert address_key("2001:db8:1:2::a") == address_key("2001:db8:1:2:ffff::b")
    assert address_key("2001:db8:1:2::a") != address_key("2001:db8:1:3::a")
    assert address_key("10.0.0.1") != address_key("10.0.0.2")
    assert address_key(None) == "ip:loopback"


# ------------------------------------------------------------------------ limiter


def test_each_wrong_password_doubles_the_wait_up_to_60_s(clock):
    lim = ui.access.LIMITER
    keys = ("ip:10.0.0.1", "session:a")
    waits = []
    for _ in range(9):
        assert lim.begin(keys) == 0.0
        waits.append(lim.failed(keys, address="10.0.0.1"))
        # the next try is not checked before the wait is over
        assert lim.begin(keys) == pytest.approx(waits[-1])
        clock.now += waits[-1] - 0.01
        assert lim.begin(keys) == pytest.approx(0.01)
        clock.now += 0.01
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_the_wait_is_per_address_and_per_session(clock):
    lim = ui.access.LIMITER
    for _ in range(3):
        lim.begin(("ip:10.0.0.1", "session:a"))
        lim.failed(("ip:10.0.0.1", "session:a"), address="10.0.0.1")
        clock.now += 60
    clock.now -= 60  # just after the third failure
    assert lim.wait(["ip:10.0.0.1", "session:new"]) == 4.0  # a new session, same address
    assert lim.wait(["ip:10.9.9.9", "session:a"]) == 4.0  # same session, new address
    assert lim.wait(["ip:10.9.9.9", "session:b"]) == 0.0


def test_a_try_being_checked_holds_the_address(clock):
    lim = ui.access.LIMITER
    assert lim.begin(("ip:10.0.0.1", "session:a")) == 0.0
    # a second session of the same address, while the first try is being checked
    assert lim.begin(("ip:10.0.0.1", "session:b")) == 1.0
    lim.succeeded(("ip:10.0.0.1", "session:a"))
    assert lim.begin(("ip:10.0.0.1", "session:b")) == 0.0


def test_right_password_or_a_long_quiet_resets_the_count(clock):
    lim = ui.access.LIMITER
    keys = ("ip:10.0.0.1", "session:a")
    for _ in range(4):
        lim.begin(keys)
        lim.failed(keys, address="10.0.0.1")
        clock.now += 60
    lim.succeeded(keys)
    assert lim.wait(keys) == 0.0
    lim.begin(keys)
    assert lim.failed(keys, address="10.0.0.1") == 1.0
    clock.now += 60
    lim.begin(keys)
    assert lim.failed(keys, address="10.0.0.1") == 2.0
    clock.now += FORGET_AFTER_S + 1
    lim.begin(keys)
    assert lim.failed(keys, address="10.0.0.1") == 1.0


def test_failures_from_many_threads_are_all_counted(clock):
    lim = ui.access.LIMITER
    threads = [
        threading.Thread(target=lim.failed, args=(("ip:10.0.0.1",),), kwargs={"address": None})
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lim.wait(["ip:10.0.0.1"]) == 32.0  # the sixth failure in a row


def test_each_failure_is_logged_with_utc_time_and_address(clock, caplog):
    caplog.set_level(logging.WARNING, logger="ui.access")
    ui.access.LIMITER.failed(("ip:192.0.2.7",), address="192.0.2.7")
    (rec,) = [r for r in caplog.records if r.name == "ui.access"]
    msg = rec.getMessage()
    assert "192.0.2.7" in msg and "wrong access password" in msg
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 UTC", msg)


# ------------------------------------------------------------------- the gate page


@pytest.fixture
def gate_env(tmp_path, monkeypatch, clock):
    """a fresh store, no weights, no password and no network list set"""
    monkeypatch.setenv("DEEPFAKE_DB", str(tmp_path / "store" / "analyses.db"))
    monkeypatch.setenv("DEEPFAKE_WEIGHTS_DIR", str(tmp_path / "weights"))
    for var in ("DEEPFAKE_PASSWORD", "DEEPFAKE_ALLOWED_NETWORKS", "DEEPFAKE_DB_READONLY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def run_app(secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in (secrets or {}).items():
        at.secrets[k] = v
    return at.run()


def assert_closed(at: AppTest) -> None:
    """only the gate: its title, no sidebar menu, no upload, no page title"""
    assert not at.exception
    assert [t.value for t in at.title] == [ui.gate.GATE_TITLE]
    assert not at.get("page_link") and not at.get("file_uploader")


def run_with_secrets(path):
    """the app run once with ``path`` as its only secrets file"""
    before = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(path)])
    try:
        return run_app()
    finally:
        config.set_option("secrets.files", before)


def test_malformed_secrets_file_keeps_the_app_closed(gate_env):
    # (the one test of an unparsable secrets file; test_ui_structure had a second copy)
    bad = gate_env / "secrets.toml"
    bad.write_text('access_password = "unterminated\nallowed_networks = [\n')
    at = run_with_secrets(bad)
    assert_closed(at)
    assert not at.text_input  # not even the password form
    assert any("cannot be read" in e.value and "Access is closed" in e.value for e in at.error)


def test_unreadable_secrets_keep_the_app_closed(gate_env, monkeypatch):
    def broken():
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ui.gate.st.secrets, "load_if_toml_exists", broken)
    at = run_app()
    assert_closed(at)
    assert any("secrets cannot be read" in e.value for e in at.error)


def test_short_password_keeps_the_app_closed(gate_env, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_PASSWORD", "letmein")
    at = run_app()
    assert_closed(at)
    assert not at.text_input
    assert any("shorter than 12 characters" in e.value for e in at.error)


def test_unparsable_network_keeps_the_app_closed(gate_env, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_ALLOWED_NETWORKS", "10.0.0.0/8,10.300.0.0/16")
    at = run_app()
    assert_closed(at)
    assert any("'10.300.0.0/16' is not a network" in e.value for e in at.error)


def test_a_session_from_outside_the_allowed_networks_is_refused(gate_env, monkeypatch):
    monkeypatch.setattr(ui.gate, "client_address", lambda: "192.168.7.7")
    at = run_app({"allowed_networks": ["10.0.0.0/8"], "access_password": GOOD})
    assert_closed(at)
    assert not at.text_input
    assert any("192.168.7.7" in e.value and "does not accept" in e.value for e in at.error)
    # inside the list: the password form
    monkeypatch.setattr(ui.gate, "client_address", lambda: "10.1.2.3")
    at = run_app({"allowed_networks": ["10.0.0.0/8"], "access_password": GOOD})
    assert_closed(at)
    assert not at.error and at.text_input(key="access_given")
    # this machine counts as loopback, which is not listed
    monkeypatch.setattr(ui.gate, "client_address", lambda: None)
    at = run_app({"allowed_networks": ["10.0.0.0/8"]})
    assert_closed(at)
    assert any("localhost" in e.value for e in at.error)


def guess(at: AppTest, password: str) -> AppTest:
    at.text_input(key="access_given").input(password)
    return at.button[0].click().run()


def test_wrong_guesses_are_delayed_more_each_time(gate_env, monkeypatch, clock, caplog):
    caplog.set_level(logging.WARNING, logger="ui.access")
    monkeypatch.setattr(ui.gate, "client_address", lambda: "10.1.2.3")
    at = run_app({"access_password": GOOD})
    for _ in range(4):
        guess(at, "wrong guess here")
        assert_closed(at)
    assert clock.slept == [1.0, 2.0, 4.0]  # the 1st is checked at once, the n-th waits
    assert any("next try is checked after 8 s" in e.value for e in at.error)
    failures = [r.getMessage() for r in caplog.records if r.name == "ui.access"]
    assert len(failures) == 4 and all("from 10.1.2.3" in m for m in failures)
    # a new session from the same address inherits the wait
    other = run_app({"access_password": GOOD})
    guess(other, "another wrong one")
    assert clock.slept[-1] == 8.0


def test_right_password_after_a_wrong_one_waits_then_opens(gate_env, clock):
    at = run_app({"access_password": GOOD})
    guess(at, "not the password")
    assert any("Wrong password" in e.value for e in at.error)
    guess(at, GOOD)
    assert clock.slept == [1.0]
    assert not at.exception and at.title[0].value != ui.gate.GATE_TITLE
    assert at.get("page_link")  # the sidebar menu is drawn
    assert ui.access.LIMITER.wait([ui.access.address_key(None)]) == 0.0


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.write_bytes(b"\xff\xfepassword = 'x'\n"), "it is not UTF-8 text"),
        (lambda p: p.mkdir(), "it is a folder, not a file"),
    ],
    ids=["undecodable", "folder"],
)
def test_an_undecodable_secrets_file_keeps_the_app_closed(gate_env, make, problem):
    bad = gate_env / "conf" / "secrets.toml"
    bad.parent.mkdir()
    make(bad)
    at = run_with_secrets(bad)
    assert_closed(at)
    assert not at.text_input
    assert [e.value for e in at.error] == [
        f"Access is closed: the secrets file (secrets.toml) cannot be read: {problem}. "
        "Fix it and restart the server."
    ]  # the reason, and no server path


def test_page_errors_name_no_server_path(gate_env):
    """a History search too long for SQLite: refused in words, no store path shown"""
    at = run_app()
    at.switch_page("pages/history.py").run()
    assert not at.exception
    at.text_input(key="history_search").input("voice_" * 10_000).run()
    shown = [e.value for e in at.error]
    assert shown == ["The history could not be read: the file-name search is 60000 "
                     "characters long; at most 500 are searched for"]  # fmt: skip
    assert not any(str(gate_env) in t.value for t in [*at.markdown, *at.error])


def test_the_gate_records_which_sessions_passed(gate_env, monkeypatch):
    """ui.access.PASSED, which the server side reads, follows each run of the gate"""
    monkeypatch.setattr(ui.access, "PASSED", ui.access.SessionRegistry())
    at = run_app({"access_password": GOOD})
    assert ui.access.PASSED.ids() == []  # the form: not passed
    guess(at, GOOD)
    (session,) = ui.access.PASSED.ids()
    at.secrets["access_password"] = "another good password"
    at.run()  # the password changed: this session must give it again
    assert_closed(at)
    assert not ui.access.PASSED.passed(session)

"""Who may use the dashboard, decided without Streamlit: ui.gate draws it.

    read_config      the access password and the allowed networks, from the secrets
                     and the environment; anything wrong raises AccessConfigError, so
                     the app stays closed (never open by mistake)
    address_allowed  is a client address inside the allowed networks
    Limiter          wrong-password delays for the whole server process, per client
                     address and per session: 1 s, 2 s, 4 s ... up to 60 s before the
                     next try is even checked; every failure is logged with UTC time
                     and address
    PASSED           the Streamlit sessions that passed the gate on their latest run:
                     ui.gate writes it, ui.guard (the server side: uploads, BackMsgs)
                     reads it, so a session that never gave the password can change
                     nothing on the server
    secrets_file_problem  why a secrets file that exists cannot be used, in words
                     that name no server path (shown to every visitor)

Streamlit reports a client on the same machine as address None; here that counts as
loopback (127.0.0.1 or ::1). Behind a reverse proxy every client has the proxy's
address, so list the proxy's network and rely on the per-session limit.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

PASSWORD_SECRET = "access_password"
PASSWORD_ENV = "DEEPFAKE_PASSWORD"
NETWORKS_SECRET = "allowed_networks"
NETWORKS_ENV = "DEEPFAKE_ALLOWED_NETWORKS"  # comma-separated CIDR, e.g. 10.0.0.0/8
MIN_PASSWORD_LENGTH = 12  # characters; shorter ones are refused at start

BASE_DELAY_S = 1.0  # after the first wrong password; doubles with each further one
MAX_DELAY_S = 60.0
FORGET_AFTER_S = 15 * 60.0  # a key with no failure for this long starts again at 1 s
MAX_TRACKED = 4096  # keys kept before stale ones are pruned

LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class AccessConfigError(RuntimeError):
    """The access settings cannot be used; ``str(err)`` says why, in one line."""


@dataclass(frozen=True)
class AccessConfig:
    password: str | None  # None: no password configured, the app is open
    networks: tuple[Network, ...]  # empty: every address may connect


# ------------------------------------------------------------------ configuration


def read_config(secrets: Mapping[str, Any], environ: Mapping[str, str]) -> AccessConfig:
    """
    The secrets (already parsed) win over the environment, setting by setting. A
    setting that is present but empty, too short, not a string or not a network
    raises AccessConfigError: a mistake closes the app rather than opening it.
    """
    return AccessConfig(_password(secrets, environ), _networks(secrets, environ))


def _setting(
    secrets: Mapping, environ: Mapping, secret: str, env: str
) -> tuple[Any, str]:
    if secret in secrets:
        return secrets[secret], f"{secret} in the secrets file"
    if env in environ:
        return environ[env], f"${env}"
    return None, ""


def _password(secrets: Mapping, environ: Mapping) -> str | None:
    value, where = _setting(secrets, environ, PASSWORD_SECRET, PASSWORD_ENV)
    if not where:
        return None
    if not isinstance(value, str):
        raise AccessConfigError(f"{where} must be a string")
    if len(value) < MIN_PASSWORD_LENGTH:
        # never say how long it is: this message is shown to every visitor
        raise AccessConfigError(
            f"the access password ({where}) is shorter than {MIN_PASSWORD_LENGTH} "
            "characters; set a longer one"
        )
    return value


def _networks(secrets: Mapping, environ: Mapping) -> tuple[Network, ...]:
    value, where = _setting(secrets, environ, NETWORKS_SECRET, NETWORKS_ENV)
    if not where:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    listed = isinstance(items, (list, tuple))
    if not listed or any(not isinstance(i, str) for i in items):
        raise AccessConfigError(f"{where} must be a list of networks, e.g. 10.0.0.0/8")
    items = [i.strip() for i in items if i.strip()]
    if not items:
        raise AccessConfigError(
            f"{where} lists no network; list some (e.g. 192.168.1.0/24) or remove it"
        )
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise AccessConfigError(
                f"{where}: {item!r} is not a network; write it as CIDR, e.g. 10.0.0.0/8"
            ) from None
    return tuple(networks)


def _ip(address: str | None) -> tuple[IP, ...]:
    """the address (IPv4-mapped IPv6 as IPv4), loopback for None; () if unparsable"""
    if address is None:
        return LOOPBACK
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return ()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip,)


def address_allowed(address: str | None, networks: Iterable[Network]) -> bool:
    """True with no networks listed; else whether the address is inside one of them."""
    networks = tuple(networks)
    if not networks:
        return True
    return any(ip in net for ip in _ip(address) for net in networks)


def address_key(address: str | None) -> str:
    """The limiter's key for an address; IPv6 by /64, which one client controls."""
    ips = _ip(address)
    if address is None or not ips:
        return f"ip:{'loopback' if address is None else address}"
    if ips[0].version == 6:
        return f"ip:{ipaddress.ip_network(f'{ips[0]}/64', strict=False)}"
    return f"ip:{ips[0]}"


# ------------------------------------------------------------------------ limiter


@dataclass
class _Failures:
    count: int = 0  # wrong passwords in a row
    last: float = 0.0  # clock time of the latest
    not_before: float = 0.0  # no try is checked before this clock time


class Limiter:
    """
    Wrong-password delays shared by every session of the server (one lock, one dict).
    Each try names its keys (the client address and the session); after n wrong
    passwords on a key, its next try waits min(BASE_DELAY_S * 2**(n-1), MAX_DELAY_S).

    ``clock`` (monotonic seconds) and ``sleep`` are injectable, so tests need not wait.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        base: float = BASE_DELAY_S,
        cap: float = MAX_DELAY_S,
    ):
        self.clock, self.sleep, self.base, self.cap = clock, sleep, base, cap
        self._lock = threading.Lock()
        self._keys: dict[str, _Failures] = {}

    def delay(self, failures: int) -> float:
        """seconds before the next try is checked, after ``failures`` wrong ones"""
        return 0.0 if failures <= 0 else min(self.base * 2 ** (failures - 1), self.cap)

    def wait(self, keys: Iterable[str]) -> float:
        """seconds before a try from these keys may be checked; 0.0 = now"""
        with self._lock:
            now = self.clock()
            return max((self._remaining(k, now) for k in keys), default=0.0)

    def begin(self, keys: Iterable[str]) -> float:
        """
        0.0 when a try may be checked now; then the keys are held as if it were wrong
        until failed() or succeeded(), so parallel sessions of one address cannot
        slip a try in meanwhile. Otherwise the seconds still to wait (nothing held).
        """
        keys = list(keys)
        with self._lock:
            now = self.clock()
            wait = max((self._remaining(k, now) for k in keys), default=0.0)
            if wait > 0:
                return wait
            for k in keys:
                entry = self._entry(k, now)
                entry.not_before = now + self.delay(entry.count + 1)
            return 0.0

    def failed(self, keys: Iterable[str], *, address: str | None) -> float:
        """Count a wrong password on every key and log it; returns the next delay."""
        keys = list(keys)
        with self._lock:
            now = self.clock()
            counts = []
            for k in keys:
                entry = self._entry(k, now)
                entry.count += 1
                entry.last, entry.not_before = now, now + self.delay(entry.count)
                counts.append(entry.count)
            self._prune(now)
        n = max(counts, default=1)
        wait = self.delay(n)
        log.warning(
            "%s UTC: wrong access password from %s (%d in a row); next try checked "
            "after %.0f s",
            dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            address or "localhost",
            n,
            wait,
        )
        return wait

    def succeeded(self, keys: Iterable[str]) -> None:
        """The right password: these keys start again from no delay."""
        with self._lock:
            for k in keys:
                self._keys.pop(k, None)

    def _entry(self, key: str, now: float) -> _Failures:
        entry = self._keys.setdefault(key, _Failures())
        if entry.count and now - entry.last > FORGET_AFTER_S:
            entry.count = 0
        return entry

    def _remaining(self, key: str, now: float) -> float:
        entry = self._keys.get(key)
        return 0.0 if entry is None else max(0.0, entry.not_before - now)

    def _prune(self, now: float) -> None:
        if len(self._keys) <= MAX_TRACKED:
            return
        for k, entry in list(self._keys.items()):
            if now - entry.last > FORGET_AFTER_S and entry.not_before <= now:
                del self._keys[k]


LIMITER = Limiter()  # the server's one limiter; ui.gate reads it at call time


# ----------------------------------------------------------------- passed sessions

MAX_SESSIONS = 100_000  # entries kept; beyond it the longest-unseen are forgotten


class SessionRegistry:
    """
    Session ids (Streamlit's, known to the page and to the server) whose latest gate
    check passed. ``admit`` / ``revoke`` on every run of the gate; ``forget`` when the
    server has ended the session. Thread-safe: pages run on their own threads.
    """

    def __init__(self, *, cap: int = MAX_SESSIONS):
        self._lock = threading.Lock()
        self._ids: dict[str, None] = {}  # in order: least recently admitted first
        self.cap = cap

    def admit(self, session_id: str) -> None:
        with self._lock:
            self._ids.pop(session_id, None)
            self._ids[session_id] = None
            while len(self._ids) > self.cap:
                del self._ids[next(iter(self._ids))]

    def revoke(self, session_id: str) -> None:
        with self._lock:
            self._ids.pop(session_id, None)

    forget = revoke  # the session ended (ui.guard's sweep)

    def passed(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._ids

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)


PASSED = SessionRegistry()  # the server's one registry


# ---------------------------------------------------------------------- secrets


def secrets_file_problem(path: str | Path) -> str:
    """
    Why the secrets file at ``path`` cannot be used ("" if it reads as TOML), in words
    fit for every visitor: no server path, no secret value.
    """
    p = Path(path)
    if p.is_dir():
        if p.suffix == ".toml":
            return "it is a folder, not a file"
        return "it is a secrets folder that cannot be read"
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    except PermissionError:
        return "permission denied"
    except OSError as e:
        return (e.strerror or type(e).__name__).lower()
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return f"it is not valid TOML ({e})"
    return ""

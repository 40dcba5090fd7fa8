"""A minimal Streamlit client for the load test: the browser's protocol without a browser.

One `Visit` is one browser tab: it fetches the XSRF cookie, opens the app's websocket
(`/_stcore/stream`), asks for a script run with a query string, can give the access
password through the gate's form, can upload a file through the page's file uploader
the way the frontend does (file URL request, multipart PUT, rerun with the uploader's
state), can send any other BackMsg (`send`), and times the run: when the n-th verdict
card arrives and when the script finishes. It renders nothing, so the machine's cores go to the
server, as they do when the analysts' browsers are on their own machines.

Protocol messages are Streamlit's own protobufs (streamlit.proto); the websocket comes
from the `websockets` package (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import time
import urllib.request
import uuid

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

XSRF_COOKIE = "_streamlit_xsrf"
RERUN_FOLLOWS = ForwardMsg.FINISHED_EARLY_FOR_RERUN
CARD_MARK = "data-testid='verdict-card'"  # every card, the lead one ('verdict-card lead') too


class ProtocolError(RuntimeError):
    """the server answered something a browser would show as an error"""


def _xsrf_cookie(url: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{url}/_stcore/health", timeout=30) as r:
        r.read()
    for c in jar:
        if c.name == XSRF_COOKIE:
            return c.value
    return ""  # XSRF protection off


def _put_multipart(url: str, xsrf: str, name: str, data: bytes, mime: str) -> None:
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\n".encode(),
        f'Content-Disposition: form-data; name="{uuid.uuid4().hex}"; filename="{name}"\r\n'.encode(),
        f"Content-Type: {mime}\r\n\r\n".encode(), data, f"\r\n--{boundary}--\r\n".encode(),
    ])  # fmt: skip
    req = urllib.request.Request(url, data=body, method="PUT", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "X-Xsrftoken": xsrf, "Cookie": f"{XSRF_COOKIE}={xsrf}",
    })  # fmt: skip
    with urllib.request.urlopen(req, timeout=120) as r:
        if r.status >= 300:
            raise ProtocolError(f"upload answered HTTP {r.status}")


class Visit:
    """one tab: `async with Visit(url) as v: await v.run("sha=...")`"""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.ws = None
        self.session_id = ""
        self.uploader_id = ""
        self.widget_ids: dict[str, str] = {}  # label -> id of text inputs and buttons
        self.texts: list[str] = []  # markdown, titles and errors drawn so far
        self.url_answers: dict = {}  # request id -> FileURLsResponse
        self.xsrf = ""
        self.query = ""  # the address bar's query string, as the page last set it

    async def __aenter__(self) -> "Visit":
        self.xsrf = await asyncio.to_thread(_xsrf_cookie, self.url)
        self.ws = await websockets.connect(
            self.url.replace("http", "ws", 1) + "/_stcore/stream",
            subprotocols=["streamlit", self.xsrf] if self.xsrf else ["streamlit"],
            additional_headers={"Cookie": f"{XSRF_COOKIE}={self.xsrf}", "Origin": self.url},
            max_size=None, open_timeout=60,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def _recv(self) -> ForwardMsg:
        msg = ForwardMsg()
        msg.ParseFromString(await self.ws.recv())
        kind = msg.WhichOneof("type")
        if kind == "file_urls_response":  # kept for upload_urls, whoever reads it
            answer = msg.file_urls_response
            self.url_answers[answer.response_id] = answer
        elif kind == "new_session":
            self.session_id = msg.new_session.initialize.session_id
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            which = el.WhichOneof("type")
            if which == "file_uploader":
                self.uploader_id = el.file_uploader.id
            elif which in ("text_input", "button"):
                widget = getattr(el, which)
                self.widget_ids[widget.label] = widget.id
            elif which in ("markdown", "heading", "alert"):
                self.texts.append(getattr(el, which).body)
            elif which == "exception":
                raise ProtocolError(f"page raised {el.exception.type}: {el.exception.message}")
        return msg

    async def run(self, query: str = "", *, cards: int = 0, widgets=None) -> dict:
        """
        One script run; returns seconds until `cards` verdict cards arrived ("cards_s",
        None when fewer came) and until the run finished ("finished_s").
        """
        back = BackMsg()
        back.rerun_script.query_string = self.query = query
        back.rerun_script.page_script_hash = ""
        if widgets is not None:
            many = widgets if isinstance(widgets, (list, tuple)) else [widgets]
            back.rerun_script.widget_states.widgets.extend(many)
        t0 = time.perf_counter()
        await self.ws.send(back.SerializeToString())
        seen, cards_s = 0, None
        while True:
            msg = await self._recv()
            kind = msg.WhichOneof("type")
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                el = msg.delta.new_element
                if el.WhichOneof("type") == "markdown" and CARD_MARK in el.markdown.body:
                    seen += 1
                    if seen == cards and cards_s is None:
                        cards_s = time.perf_counter() - t0
            elif kind == "script_finished" and msg.script_finished != RERUN_FOLLOWS:
                # (a run ended by st.rerun is followed by the run it asked for)
                return {"cards_s": cards_s, "finished_s": time.perf_counter() - t0}

    async def send(self, back: BackMsg) -> None:
        """any BackMsg, as a browser may send it"""
        await self.ws.send(back.SerializeToString())

    async def login(
        self, password: str, *, field="Access password", submit="Enter"
    ) -> dict:
        """type the password into the gate's form and submit it (after a run drew it)"""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        if field not in self.widget_ids or submit not in self.widget_ids:
            raise ProtocolError("no password form on the page (run the page first)")
        typed = WidgetState(id=self.widget_ids[field], string_value=password)
        pressed = WidgetState(id=self.widget_ids[submit], trigger_value=True)
        return await self.run(self.query, widgets=[typed, pressed])

    async def upload_urls(self, name: str):
        """the server's answer to a file URL request (a FileURLsResponse)"""
        back = BackMsg()
        req = back.file_urls_request
        req.request_id, req.session_id = uuid.uuid4().hex, self.session_id
        req.file_names.append(name)
        await self.send(back)
        while req.request_id not in self.url_answers:
            await self._recv()
        return self.url_answers.pop(req.request_id)

    def put(self, url: str, name: str, data: bytes, mime="audio/flac") -> None:
        """PUT a file to an upload URL (blocking); urllib's HTTPError if refused"""
        target = url if "://" in url else self.url + url
        _put_multipart(target, self.xsrf, name, data, mime)

    async def upload(self, name: str, data: bytes, *, cards: int, mime="audio/flac") -> dict:
        """upload through the page's file uploader (after a first run drew it), then rerun"""
        if not (self.uploader_id and self.session_id):
            raise ProtocolError("no file uploader on the page (run the page first)")
        t0 = time.perf_counter()
        resp = await self.upload_urls(name)
        if resp.error_msg or not resp.file_urls:
            raise ProtocolError(f"no upload URL: {resp.error_msg or 'empty answer'}")
        urls = resp.file_urls[0]
        await asyncio.to_thread(self.put, urls.upload_url, name, data, mime)
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        state = WidgetState(id=self.uploader_id)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.name, info.size, info.file_id = name, len(data), urls.file_id
        info.file_urls.CopyFrom(urls)
        result = await self.run(self.query, cards=cards, widgets=state)
        waited = time.perf_counter() - t0 - result["finished_s"]
        return {k: (v + waited if v is not None else None) for k, v in result.items()}

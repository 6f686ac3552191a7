"""The console's web application (Starlette): server-rendered pages, a little vanilla JS that refreshes the
live part of a page every few seconds, and forms whose actions go onto the site's feedback/control topics.

Pages: ``/alerts`` (open alerts, acknowledge / clear with a comment; ``/alerts/<id>`` the full record and its
lineage), ``/commands`` (pending commands with the envelope's verdict, approve / reject), ``/models`` (model
versions per asset with score histograms, promote / roll back; ``/models/<name>/<version>`` a version's
model card, :mod:`aiotstream.models.card`, read from the registry given), ``/kpis`` (OEE, MTTR, MTBF and
energy per period for the site, a line or an asset; dead letters by reason). An action answers with a
redirect back to its page and a message: what was sent, or why it was refused (never a stack trace).

On a site with ``[auth]`` every page asks for a signed-in user (``/login``, ``/logout``;
:mod:`aiotstream.console.signin`), an action is allowed by that user's roles and assets, carries the
session's CSRF token, and goes out signed by the console's own principal on the user's behalf
(``auth.on_behalf_of``; the ``signer`` given to :class:`Console`). Without ``[auth]`` the console works as
before (the operator types a name) and every page says that its actions are unsigned.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from aiotstream.config import SiteConfig
from aiotstream.console import svg
from aiotstream.console.actions import (
    Action,
    ActionError,
    alert_action,
    command_action,
    label_action,
    promote_action,
    rollback_action,
)
from aiotstream.console.feed import Feed
from aiotstream.console.signin import SESSION_S, Session, SignIn, User
from aiotstream.console.state import KPI_SERIES, ConsoleState
from aiotstream.errors import AiotError
from aiotstream.lineage import iso_ns

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
KPI_UNITS = {"oee": "", "mttr_s": "s", "mtbf_s": "s", "energy_kwh": "kWh"}
KPI_TITLES = {"oee": "OEE", "mttr_s": "MTTR", "mtbf_s": "MTBF", "energy_kwh": "Energy"}
COOKIE = "aiotstream_console"
Signer = Callable[[dict[str, Any], str], dict[str, Any]]
"""Signs a message on behalf of a user (the message, the user's id -> the message with ``auth``)."""


def _when(t: Any) -> str:
    return iso_ns(t).replace("T", " ")[:19] if isinstance(t, int) else ""


def _fmt(v: Any, digits: int = 3) -> str:
    """A number for a table cell: floats to ``digits`` significant digits, None as nothing."""
    if v is None:
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["when"] = _when
    env.filters["short"] = lambda s: (s or "")[:8]
    env.filters["num"] = _fmt
    env.filters["card_url"] = lambda ref: "/models/" + "/".join(quote(p, safe="")
                                                                for p in str(ref).split("@", 1))
    env.filters["json"] = lambda v: orjson.dumps(v, default=str, option=orjson.OPT_SORT_KEYS).decode()
    return env


def _model_versions(cfg: SiteConfig) -> list[str]:
    """``name@version`` of every version of the site's model in its registry (ONNX sites; [] otherwise or when
    the registry cannot be read from here)."""
    if cfg.model.kind != "onnx" or cfg.model.onnx is None:
        return []
    try:
        from aiotstream.models.registry import ModelRegistry

        reg = ModelRegistry(cfg.model.onnx.registry, allow_unsigned=True)
        return [f"{cfg.model.name}@{v}" for v in reg.versions(cfg.model.name)]
    except (OSError, ValueError) as exc:
        log.warning("console: cannot list the model registry %s: %s", cfg.model.onnx.registry, exc)
        return []


class Console:
    """The pages and actions of one site's console over a :class:`Feed` (or any sender with ``send``)."""

    def __init__(self, cfg: SiteConfig, state: ConsoleState, feed: Feed | None, refresh_s: float = 2.0,
                 signin: SignIn | None = None, signer: Signer | None = None,
                 session_secret: str | None = None, secure_cookie: bool = False,
                 registry: str | Path | None = None):
        if (signin is None) != (signer is None):
            raise ValueError("sign-in and signing go together: give both signin and signer, or neither")
        self.cfg, self.state, self.feed = cfg, state, feed
        self.signin, self.signer = signin, signer
        # the cookie's signing key: from the console's secret file, else new at each start (then a restart
        # signs everybody out, as it does anyway: sessions live in this process)
        self.session_secret = session_secret or secrets.token_urlsafe(32)
        self.secure_cookie = secure_cookie
        self.lines = {a.id: a.line for a in cfg.all_assets()}
        self.refresh_ms = int(refresh_s * 1000)
        self.env = _env()
        self.sent: deque[tuple[int, str]] = deque(maxlen=30)  # (wall ns, summary) of this console's actions
        self.versions = _model_versions(cfg)
        self.initial = f"{cfg.model.name}@{cfg.model.version}" if cfg.model.kind == "onnx" else None
        # model cards: the registry given (``--registry``), else an ONNX site's own
        if registry is None and cfg.model.kind == "onnx" and cfg.model.onnx is not None:
            registry = cfg.model.onnx.registry
        self.registry = Path(registry) if registry is not None else None
        loop = cfg.model.onnx.loop if cfg.model.kind == "onnx" and cfg.model.onnx is not None else None
        self.datasets = Path(loop.datasets) if loop is not None else None  # the model loop's dataset store

    # ---- plumbing ----------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        g = self._guard
        routes = [
            Route("/", lambda r: RedirectResponse("/alerts", 303)),
            Route("/alerts", g(self.alerts)), Route("/alerts/{alert_id}", g(self.alert_detail)),
            Route("/alerts/{alert_id}/{action}", self.alert_post, methods=["POST"]),
            Route("/commands", g(self.commands)),
            Route("/commands/{command_id}/{action}", self.command_post, methods=["POST"]),
            Route("/models", g(self.models)), Route("/models/{action}", self.model_post, methods=["POST"]),
            Route("/models/{name}/{version}", g(self.model_card)),
            Route("/kpis", g(self.kpis)),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/healthz", lambda r: JSONResponse({"ok": True})),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        middleware = []
        if self.signin is not None:  # (the cookie holds only a random session id, signed; HttpOnly always)
            middleware.append(Middleware(SessionMiddleware, secret_key=self.session_secret,
                                         session_cookie=COOKIE, max_age=SESSION_S, same_site="strict",
                                         https_only=self.secure_cookie))
        return Starlette(routes=routes, middleware=middleware, exception_handlers={Exception: self._oops})

    # ---- sign-in -----------------------------------------------------------------------------------------
    def _session(self, request: Request) -> Session | None:
        if self.signin is None:
            return None
        return self.signin.session(request.session.get("sid"))

    def _user(self, request: Request) -> User | None:
        s = self._session(request)
        return self.signin.users[s.user] if s is not None and self.signin is not None else None

    def _guard(self, page: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """``page``, asking for a signed-in user first on a site with [auth] (a live refresh of a page whose
        session ended gets 401, and the page's script leaves the page as it is)."""
        async def guarded(request: Request) -> Response:
            if self.signin is not None and self._session(request) is None:
                if request.headers.get("x-fragment") == "1":
                    return Response("sign in again", status_code=401)
                return RedirectResponse(f"/login?{urlencode({'next': request.url.path})}", 303)
            return await page(request)
        return guarded

    async def login(self, request: Request) -> Response:
        if self.signin is None:
            return self._refused("/alerts", "this site has no [auth]: there is no sign-in")
        nxt = _local(request.query_params.get("next"))
        if request.method == "GET":
            return self._page(request, "login.html", "Sign in", next=nxt, name="", refresh_ms=0)
        why = cross_site(request.headers, request.headers.get("host", ""))
        form = await request.form()
        name, password = form.get("user"), form.get("password")
        name = name if isinstance(name, str) else ""
        nxt = _local(form.get("next")) if isinstance(form.get("next"), str) else nxt
        if why is None:
            # (argon2 takes tens of ms on purpose: off the event loop, so pages keep answering meanwhile)
            pw = password if isinstance(password, str) else ""
            got = await run_in_threadpool(self.signin.check, name, pw)
            if isinstance(got, User):
                self.signin.close(request.session.get("sid"))
                request.session.clear()
                request.session["sid"] = self.signin.open(got)
                log.info("console: %s signed in", got.id)
                return RedirectResponse(nxt, 303)
            why = got
        log.warning("console: a sign-in as %r was refused: %s", name[:64], why)
        return self._page(request, "login.html", "Sign in", status=401, next=nxt, name=name[:64],
                          refresh_ms=0, login_error=why)

    async def logout(self, request: Request) -> Response:
        if self.signin is None:
            return RedirectResponse("/alerts", 303)
        s = self._session(request)
        if s is not None and cross_site(request.headers, request.headers.get("host", "")) is None:
            self.signin.close(request.session.get("sid"))
            log.info("console: %s signed out", s.user)
        request.session.clear()
        return RedirectResponse(f"/login?{urlencode({'ok': 'signed out'})}", 303)

    def _actor(self, request: Request, form: dict[str, str], action: str) -> str | Response:
        """Who takes ``action``: the signed-in user when the site has [auth] (the form's ``by`` is ignored),
        else the name typed in the page; a Response when the action is refused before it is built (no
        session, a missing or stale CSRF token, a role that does not allow it)."""
        if self.signin is None:
            return form.get("by") or ""
        s = self._session(request)
        if s is None:
            return self._refused("/login", "sign in to act (no session, or it ended)")
        if not self.signin.csrf_ok(s, form.get("csrf")):
            log.warning("console: %s %s by %s refused: CSRF token missing or stale", request.method,
                        request.url.path, s.user)
            return RedirectResponse(f"{_back(request)}?{urlencode({'error': CSRF_REFUSED})}", 303)
        why = self.signin.users[s.user].role_refusal(action)
        if why is not None:
            log.warning("console: %s refused: %s", request.url.path, why)
            return self._refused(_back(request), f"refused: {why}")
        return s.user

    async def _oops(self, request: Request, exc: Exception) -> Response:
        log.exception("console: %s %s failed", request.method, request.url.path)
        return self._page(request, "error.html", "Error", status=500,
                          problem=f"the console could not answer this request ({type(exc).__name__}); "
                                  "the details are in its log")

    def _page(self, request: Request, template: str, title: str, status: int = 200, **ctx: Any) -> Response:
        feed = self.feed
        user = self._user(request)
        sess = self._session(request)
        ctx.setdefault("refresh_ms", self.refresh_ms)
        ctx.update(
            auth=self.signin is not None, user=user, csrf=sess.csrf if sess is not None else "",
            can=lambda kind, asset=None: self._can(user, kind, asset),
            why_not=lambda kind, asset=None: self._why_not(user, kind, asset) or "",
            title=title, site=self.cfg.site.id, path=request.url.path,
            ok=request.query_params.get("ok"), error=request.query_params.get("error"),
            sent=list(self.sent)[::-1][:8], fragment=request.headers.get("x-fragment") == "1",
            feed_error=feed.error if feed else None, unreachable=feed.unreachable if feed else None,
            loading=feed is not None and not feed.caught_up.is_set(),
            records=self.state.records)
        return HTMLResponse(self.env.get_template(template).render(**ctx), status_code=status)

    def _why_not(self, user: User | None, kind: str, asset: str | None) -> str | None:
        if self.signin is None:
            return None
        if user is None:
            return "sign in to act"
        return user.refusal(kind, asset, self.lines.get(asset) if asset else None)

    def _can(self, user: User | None, kind: str, asset: str | None) -> bool:
        return self._why_not(user, kind, asset) is None

    def _send(self, back: str, build: Any, kind: str = "", by: str = "") -> Response:
        """Build an action (ActionError: refused), check the signed-in user ``by`` may take it on its asset
        and sign it (sites with [auth]), and send it; redirect to ``back`` with the outcome."""
        try:
            action: Action = build()
            if self.signin is not None and self.signer is not None:
                asset = action.key.decode() if action.key else None
                why = self.signin.users[by].refusal(kind, asset, self.lines.get(asset) if asset else None)
                if why is not None:
                    raise ActionError(f"refused: {why}")
                signed = self.signer(orjson.loads(action.payload), by)
                action = dataclasses.replace(action, payload=orjson.dumps(signed))
            if self.feed is None:
                raise AiotError("this console has no broker connection")
            self.feed.send(action)
        except ActionError as exc:
            return RedirectResponse(f"{back}?{urlencode({'error': str(exc)})}", 303)
        except AiotError as exc:
            return RedirectResponse(f"{back}?{urlencode({'error': f'not sent: {exc}'})}", 303)
        self.sent.append((time.time_ns(), action.summary))
        log.info("console action sent to %s: %s", action.topic, action.summary)
        msg = f"sent to {action.topic}: {action.summary}; the page shows the flow's answer when it comes"
        return RedirectResponse(f"{back}?{urlencode({'ok': msg})}", 303)

    @staticmethod
    async def _form(request: Request) -> dict[str, str] | str:
        """The posted form's text fields, or why the post is refused."""
        why = cross_site(request.headers, request.headers.get("host", ""))
        if why is not None:
            log.warning("console: %s %s refused: %s", request.method, request.url.path, why)
            return why
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    @staticmethod
    def _refused(back: str, why: str) -> Response:
        return RedirectResponse(f"{back}?{urlencode({'error': why})}", 303)

    # ---- alerts ------------------------------------------------------------------------------------------
    async def alerts(self, request: Request) -> Response:
        return self._page(request, "alerts.html", "Alerts", alerts=self.state.open_alerts(),
                          closed=self.state.recent_closed_alerts())

    async def alert_detail(self, request: Request) -> Response:
        aid = request.path_params["alert_id"]
        rec = self.state.alert(aid)
        if rec is None:
            return self._page(request, "error.html", "Unknown alert", status=404,
                              problem=f"unknown alert id {aid!r}: no such alert on the alerts topic (yet)")
        return self._page(request, "alert.html", f"Alert {aid[:8]}", a=rec)

    async def alert_post(self, request: Request) -> Response:
        aid, kind = request.path_params["alert_id"], request.path_params["action"]
        form = await self._form(request)
        if isinstance(form, str):
            return self._refused("/alerts", form)
        by = self._actor(request, form, kind)
        if isinstance(by, Response):
            return by
        topic = self.feed.feedback_topic if self.feed else None
        if kind == "label":
            return self._send("/alerts", lambda: label_action(
                self.state, _need(topic, "feedback", self.feed), aid, form.get("label", ""), by,
                form.get("note"), form.get("fault_type")), kind, by)
        return self._send("/alerts", lambda: alert_action(
            self.state, _need(topic, "feedback", self.feed), kind, aid, by, form.get("note")), kind, by)

    # ---- commands ----------------------------------------------------------------------------------------
    async def commands(self, request: Request) -> Response:
        return self._page(request, "commands.html", "Commands", pending=self.state.pending_commands(),
                          recent=self.state.recent_commands())

    async def command_post(self, request: Request) -> Response:
        cid, kind = request.path_params["command_id"], request.path_params["action"]
        form = await self._form(request)
        if isinstance(form, str):
            return self._refused("/commands", form)
        by = self._actor(request, form, kind)
        if isinstance(by, Response):
            return by
        topic = self.feed.feedback_topic if self.feed else None
        return self._send("/commands", lambda: command_action(
            self.state, _need(topic, "feedback", self.feed), kind, cid, by, form.get("note")), kind, by)

    # ---- models ------------------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        assets = self.state.asset_models()
        rows = []
        for asset, am in assets.items():
            for (ref, role), seen in sorted(am.versions.items(), key=lambda kv: -kv[1].last_at_ns):
                live = (role == "shadow" and ref == am.shadow) or (role != "shadow" and ref == am.live
                                                                    and role == am.live_variant)
                rows.append({"asset": asset, "ref": ref, "role": role, "live": live, "windows": seen.windows,
                             "anomalous": seen.anomalous, "last": seen.last_at_ns,
                             "hist": svg.histogram(seen.hist, label=f"{asset} {ref} {role} scores")})
        onnx = self.cfg.model.kind == "onnx"
        return self._page(request, "models.html", "Models", rows=rows, onnx=onnx, versions=self.versions,
                          cards=self._card_versions(),
                          previous=self.state.previous_champion(self.initial),
                          events=list(self.state.model_events)[::-1], model_kind=self.cfg.model.kind)

    def _card_versions(self) -> list[str]:
        """``name@version`` of every version in the card registry (the site's model first), or []."""
        if self.registry is None:
            return []
        from aiotstream.models.registry import ModelRegistry

        try:
            reg = ModelRegistry(self.registry, allow_unsigned=True)
            names = sorted(reg.names(), key=lambda n: n != self.cfg.model.name)
            return [f"{n}@{v}" for n in names for v in reg.versions(n)]
        except (OSError, AiotError) as exc:
            log.warning("console: cannot list the model registry %s: %s", self.registry, exc)
            return []

    async def model_card(self, request: Request) -> Response:
        """A version's model card (:mod:`aiotstream.models.card`): its manifest (as stored; the flow verifies
        what it loads), the events of its card log beside the registry, and this site's model records for it
        (an event of the log that carries a record's ``id`` is not shown twice)."""
        from aiotstream.models.card import CardLog, model_card
        from aiotstream.models.registry import ModelRegistry

        name, version = request.path_params["name"], request.path_params["version"]
        ref = f"{name}@{version}"
        if self.registry is None:
            return self._page(request, "error.html", "No registry", status=404,
                              problem="this console was given no model registry: start it with --registry "
                                      "DIR to see model cards")
        try:
            registry = ModelRegistry(self.registry, allow_unsigned=True)
            manifest = await run_in_threadpool(registry.manifest, name, version)
            events = await run_in_threadpool(CardLog(self.registry).events, name, version)
        except AiotError as exc:  # ModelRefused (missing, malformed) and ModelError (a name that is none)
            return self._page(request, "error.html", f"No card for {ref}", status=404, problem=str(exc))
        logged = {e.get("id") for e in events if isinstance(e.get("id"), str)}
        with self.state.lock:
            records = list(self.state.model_events)
        events += [r for r in records if r.get("ref") == ref and r.get("id") not in logged]
        card = model_card(manifest, dataset=None, events=events)
        ds_id = (card["training"]["dataset"] or {}).get("id")
        if self.datasets is not None and ds_id:  # the dataset store's manifest: rows, time range, labels
            from aiotstream.datasets import DatasetStore

            try:
                ds = await run_in_threadpool(DatasetStore(self.datasets).get, ds_id)
                card = model_card(manifest, dataset=ds.to_dict(), events=events)
            except AiotError as exc:  # not there (pruned, another store): the card names the id alone
                log.info("console: dataset %s of %s not read from %s: %s", ds_id, ref, self.datasets, exc)
        return self._page(request, "card.html", f"Model card {ref}", card=card)

    async def model_post(self, request: Request) -> Response:
        kind = request.path_params["action"]
        form = await self._form(request)
        if isinstance(form, str):
            return self._refused("/models", form)
        if kind not in ("promote", "rollback"):
            return RedirectResponse(f"/models?{urlencode({'error': f'unknown model action {kind!r}'})}", 303)
        by = self._actor(request, form, kind)
        if isinstance(by, Response):
            return by
        topic = self.feed.control_topic if self.feed else None
        if self.feed is not None and self.feed.unreachable:
            return self._refused("/models", self.feed.unreachable)
        if kind == "promote":
            return self._send("/models", lambda: promote_action(
                topic, form.get("ref", ""), form.get("variant", "champion"), by, form.get("note"),
                form.get("fraction")), kind, by)
        return self._send("/models", lambda: rollback_action(self.state, topic, by, form.get("note"),
                                                             self.initial), kind, by)

    # ---- KPIs and dead letters ---------------------------------------------------------------------------
    async def kpis(self, request: Request) -> Response:
        keys = self.state.kpi_keys()
        want = request.query_params.get("key", "")
        key = next((k for k in keys if "|".join(k) == want), None) or (keys[0] if keys else None)
        charts = []
        latest = None
        if key is not None:
            series = self.state.kpi_series(key)
            latest = series[-1] if series else None
            for name in KPI_SERIES:
                pts = [(_period_label(r), _kpi_value(r, name)) for r in series]
                charts.append(svg.bars(pts, KPI_TITLES[name], KPI_UNITS[name]))
        dead = self.state.deadletter_counts()
        top = max((n for _, n in dead), default=1)
        dead_rows = [(r, n, round(100 * n / top)) for r, n in dead]
        return self._page(request, "kpis.html", "KPIs", keys=["|".join(k) for k in keys],
                          key="|".join(key) if key else "", charts=charts, latest=latest, dead=dead_rows,
                          recent_dead=list(self.state.recent_deadletters)[::-1][:20])


def cross_site(headers: Any, host: str) -> str | None:
    """Why a POST is refused as coming from another site's page (a forged form aimed at an operator's
    console on loopback), or None: the browser's ``Sec-Fetch-Site`` must be same-origin (or absent, or
    ``none``: typed by hand), and an ``Origin`` must be this console's.

    >>> cross_site({"sec-fetch-site": "same-origin", "origin": "http://127.0.0.1:8080"}, "127.0.0.1:8080")
    >>> cross_site({"sec-fetch-site": "cross-site"}, "127.0.0.1:8080")
    'the action came from another site (cross-site): refused'
    >>> cross_site({"origin": "http://evil.example"}, "127.0.0.1:8080")
    'the action came from http://evil.example, not this console: refused'
    """
    fetch = headers.get("sec-fetch-site")
    if fetch not in (None, "same-origin", "none"):
        return f"the action came from another site ({fetch}): refused"
    origin = headers.get("origin")
    if origin not in (None, "null") and origin.split("://", 1)[-1] != host:
        return f"the action came from {origin}, not this console: refused"
    return None


_LOCAL = re.compile(r"/[A-Za-z0-9_./-]{0,200}")
CSRF_REFUSED = "refused: the form's CSRF token is missing or stale (reload the page and try again)"


def _local(url: str | None) -> str:
    """A redirect target after sign-in: a path of this console only (never another site: no ``//``, no
    backslash, no tab or newline that a browser would drop, no query)."""
    if isinstance(url, str) and _LOCAL.fullmatch(url) and not url.startswith("//"):
        return url
    return "/alerts"


def _back(request: Request) -> str:
    """The page an action's form was on (/alerts, /commands, /models)."""
    return "/" + request.url.path.strip("/").split("/", 1)[0]


def _need(topic: str | None, what: str, feed: Feed | None = None) -> str:
    if feed is not None and feed.unreachable:
        raise ActionError(feed.unreachable)
    if topic is None:
        raise ActionError(f"this site has no {what} topic")
    return topic


def _kpi_value(rec: dict[str, Any], name: str) -> float | None:
    v = (rec.get("kpis") or {}).get(name)
    return float(v) if isinstance(v, (int, float)) else None


def _period_label(rec: dict[str, Any]) -> str:
    p = rec.get("period") or {}
    return p.get("label") or _when(p.get("start_ns"))


def build_app(cfg: SiteConfig, state: ConsoleState, feed: Feed | None, refresh_s: float = 2.0,
              **auth: Any) -> Starlette:
    """The console's app; ``auth``: ``signin``, ``signer``, ``session_secret``, ``secure_cookie``, and
    ``registry`` (the model cards' registry) (see :class:`Console`)."""
    return Console(cfg, state, feed, refresh_s, **auth).app()

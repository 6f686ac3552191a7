"""The console's web application (Starlette): server-rendered pages, a little vanilla JS that refreshes the
live part of a page every few seconds, and forms whose actions go onto the site's feedback/control topics.

Pages: ``/alerts`` (open alerts, acknowledge / clear with a comment; ``/alerts/<id>`` the full record and its
lineage), ``/commands`` (pending commands with the envelope's verdict, approve / reject), ``/models`` (model
versions per asset with score histograms, promote / roll back), ``/kpis`` (OEE, MTTR, MTBF and energy per
period for the site, a line or an asset; dead letters by reason). An action answers with a redirect back to
its page and a message: what was sent, or why it was refused (never a stack trace).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
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
from aiotstream.console.state import KPI_SERIES, ConsoleState
from aiotstream.errors import AiotError
from aiotstream.lineage import iso_ns

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
KPI_UNITS = {"oee": "", "mttr_s": "s", "mtbf_s": "s", "energy_kwh": "kWh"}
KPI_TITLES = {"oee": "OEE", "mttr_s": "MTTR", "mtbf_s": "MTBF", "energy_kwh": "Energy"}


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

    def __init__(self, cfg: SiteConfig, state: ConsoleState, feed: Feed | None, refresh_s: float = 2.0):
        self.cfg, self.state, self.feed = cfg, state, feed
        self.refresh_ms = int(refresh_s * 1000)
        self.env = _env()
        self.sent: deque[tuple[int, str]] = deque(maxlen=30)  # (wall ns, summary) of this console's actions
        self.versions = _model_versions(cfg)
        self.initial = f"{cfg.model.name}@{cfg.model.version}" if cfg.model.kind == "onnx" else None

    # ---- plumbing ----------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        routes = [
            Route("/", lambda r: RedirectResponse("/alerts", 303)),
            Route("/alerts", self.alerts), Route("/alerts/{alert_id}", self.alert_detail),
            Route("/alerts/{alert_id}/{action}", self.alert_post, methods=["POST"]),
            Route("/commands", self.commands),
            Route("/commands/{command_id}/{action}", self.command_post, methods=["POST"]),
            Route("/models", self.models), Route("/models/{action}", self.model_post, methods=["POST"]),
            Route("/kpis", self.kpis),
            Route("/healthz", lambda r: JSONResponse({"ok": True})),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return Starlette(routes=routes, exception_handlers={Exception: self._oops})

    async def _oops(self, request: Request, exc: Exception) -> Response:
        log.exception("console: %s %s failed", request.method, request.url.path)
        return self._page(request, "error.html", "Error", status=500,
                          problem=f"the console could not answer this request ({type(exc).__name__}); "
                                  "the details are in its log")

    def _page(self, request: Request, template: str, title: str, status: int = 200, **ctx: Any) -> Response:
        feed = self.feed
        ctx.update(
            title=title, site=self.cfg.site.id, path=request.url.path, refresh_ms=self.refresh_ms,
            ok=request.query_params.get("ok"), error=request.query_params.get("error"),
            sent=list(self.sent)[::-1][:8], fragment=request.headers.get("x-fragment") == "1",
            feed_error=feed.error if feed else None, unreachable=feed.unreachable if feed else None,
            loading=feed is not None and not feed.caught_up.is_set(),
            records=self.state.records)
        return HTMLResponse(self.env.get_template(template).render(**ctx), status_code=status)

    def _send(self, back: str, build: Any) -> Response:
        """Build an action (ActionError: refused) and send it; redirect to ``back`` with the outcome."""
        try:
            action: Action = build()
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
        topic = self.feed.feedback_topic if self.feed else None
        if kind == "label":
            return self._send("/alerts", lambda: label_action(
                self.state, _need(topic, "feedback", self.feed), aid, form.get("label", ""), form.get("by"),
                form.get("note"), form.get("fault_type")))
        return self._send("/alerts", lambda: alert_action(
            self.state, _need(topic, "feedback", self.feed), kind, aid, form.get("by"), form.get("note")))

    # ---- commands ----------------------------------------------------------------------------------------
    async def commands(self, request: Request) -> Response:
        return self._page(request, "commands.html", "Commands", pending=self.state.pending_commands(),
                          recent=self.state.recent_commands())

    async def command_post(self, request: Request) -> Response:
        cid, kind = request.path_params["command_id"], request.path_params["action"]
        form = await self._form(request)
        if isinstance(form, str):
            return self._refused("/commands", form)
        topic = self.feed.feedback_topic if self.feed else None
        return self._send("/commands", lambda: command_action(
            self.state, _need(topic, "feedback", self.feed), kind, cid, form.get("by"), form.get("note")))

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
                          previous=self.state.previous_champion(self.initial),
                          events=list(self.state.model_events)[::-1], model_kind=self.cfg.model.kind)

    async def model_post(self, request: Request) -> Response:
        kind = request.path_params["action"]
        form = await self._form(request)
        if isinstance(form, str):
            return self._refused("/models", form)
        topic = self.feed.control_topic if self.feed else None
        if self.feed is not None and self.feed.unreachable:
            return self._refused("/models", self.feed.unreachable)
        if kind == "promote":
            return self._send("/models", lambda: promote_action(
                topic, form.get("ref", ""), form.get("variant", "champion"), form.get("by"), form.get("note"),
                form.get("fraction")))
        if kind == "rollback":
            return self._send("/models", lambda: rollback_action(self.state, topic, form.get("by"),
                                                                 form.get("note"), self.initial))
        return RedirectResponse(f"/models?{urlencode({'error': f'unknown model action {kind!r}'})}", 303)

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


def build_app(cfg: SiteConfig, state: ConsoleState, feed: Feed | None, refresh_s: float = 2.0) -> Starlette:
    return Console(cfg, state, feed, refresh_s).app()

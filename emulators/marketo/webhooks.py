"""Webhooks: the "Call Webhook" flow step of a trigger campaign.

A definition (URL, method, template, encoding, custom headers, response mappings) is
attached to the "person is created" trigger or fired on demand from the admin API.
Each call waits at most 30 s, is never retried, logs activity 110 with the error
type, and applies response mappings only on a 2xx - the same contract the sync's
Azure Function sees from real Marketo, so its slow or failing paths can be tested.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from typing import Any

import httpx

from emulators.marketo.activities import CALL_WEBHOOK
from emulators.marketo.core import Core
from emulators.marketo.fields import INVALID, coerce, iso, render
from emulators.marketo.people import update_person

_TOKEN = re.compile(r"\{\{\s*(lead|system)\.([^}]+?)\s*\}\}", re.IGNORECASE)
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
#: Marketo allows at most 20 webhook calls in flight per instance; extra ones wait.
MAX_OUTSTANDING = 20


def _lookup_path(doc: Any, path: str) -> Any:
    """Dot notation with integer indexes: `orders[0].orderDate`."""
    cur = doc
    for name, index in _PATH_PART.findall(path):
        if name:
            if not isinstance(cur, dict) or name not in cur:
                return None
            cur = cur[name]
        else:
            i = int(index)
            if not isinstance(cur, list) or i >= len(cur):
                return None
            cur = cur[i]
    return cur


class Webhooks:
    def __init__(self, emu: Core, client: httpx.AsyncClient | None = None) -> None:
        self.emu = emu
        self.defs: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.calls: list[dict[str, Any]] = []
        self.client = client
        self.tasks: set[asyncio.Task[Any]] = set()
        self._sem: asyncio.Semaphore | None = None

    # -- definitions -------------------------------------------------------------
    def define(self, spec: dict[str, Any]) -> dict[str, Any]:
        method = str(spec.get("method") or "POST").upper()
        if method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}")
        if not spec.get("url"):
            raise ValueError("url is required")
        encoding = str(spec.get("requestTokenEncoding") or "json").lower()
        if encoding not in ("json", "form"):
            raise ValueError("requestTokenEncoding must be json or form")
        trigger = spec.get("trigger")
        if trigger not in (None, "personCreated"):
            raise ValueError("trigger must be 'personCreated' or null")
        d: dict[str, Any] = {
            "id": self.next_id,
            "name": str(spec.get("name") or f"webhook-{self.next_id}"),
            "url": str(spec["url"]),
            "method": method,
            "template": str(spec.get("template") or ""),
            "requestTokenEncoding": encoding,
            "responseType": str(spec.get("responseType") or "json").lower(),
            "headers": {str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
            "responseMappings": list(spec.get("responseMappings") or []),
            "trigger": trigger,
            "excludeUsers": list(spec.get("excludeUsers") or []),
            "quoteStrings": bool(spec.get("quoteStrings", True)),
        }
        self.next_id += 1
        self.defs[d["id"]] = d
        return d

    # -- token rendering ---------------------------------------------------------------
    def _value(self, person: dict[str, Any], scope: str, name: str) -> Any:
        if scope.lower() == "system":
            key = name.lower()
            now = self.emu.now()
            return {"datetime": iso(now), "date": iso(now)[:10]}.get(key)
        f = self.emu.schema.lookup_loose(name)
        return None if f is None else render(f.name, person.get(f.name))

    def render(
        self, text: str, person: dict[str, Any], encoding: str | None, quote: bool = True
    ) -> str:
        def sub(m: re.Match[str]) -> str:
            v = self._value(person, m.group(1), m.group(2))
            if encoding == "json":
                if v is None:
                    return "null"
                if isinstance(v, str):
                    dumped = json.dumps(v, ensure_ascii=False)
                    return dumped if quote else dumped[1:-1]
                return json.dumps(v)
            if encoding == "form":
                return urllib.parse.quote_plus("" if v is None else str(v))
            # URL and headers: characters are sent as written.
            if isinstance(v, bool):
                return "true" if v else "false"
            return "" if v is None else str(v)

        return _TOKEN.sub(sub, text)

    # -- firing ------------------------------------------------------------------------
    def on_person_created(self, lead_id: int, modifier: str | None) -> None:
        for d in self.defs.values():
            if d["trigger"] != "personCreated":
                continue
            if modifier and any(
                modifier.startswith(u + "@") or modifier == u for u in d["excludeUsers"]
            ):
                continue
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            task = loop.create_task(self.fire(d["id"], lead_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def wait_idle(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def fire(self, webhook_id: int, lead_id: int) -> dict[str, Any]:
        d = self.defs.get(webhook_id)
        if d is None:
            raise KeyError(f"webhook {webhook_id} not found")
        if self._sem is None:
            self._sem = asyncio.Semaphore(MAX_OUTSTANDING)
        async with self._sem:
            return await self._fire(d, lead_id)

    async def _fire(self, d: dict[str, Any], lead_id: int) -> dict[str, Any]:
        emu = self.emu
        person = emu.store.get(lead_id)
        record: dict[str, Any] = {"webhookId": d["id"], "leadId": lead_id, "at": iso(emu.now())}
        if person is None:
            record.update(error="Lead not found")
            self.calls.append(record)
            return record
        url = self.render(d["url"], person, None)
        headers = {k: self.render(v, person, None) for k, v in d["headers"].items()}
        content: bytes | None = None
        if d["method"] != "GET" and d["template"]:
            content = self.render(
                d["template"], person, d["requestTokenEncoding"], d["quoteStrings"]
            ).encode()
            headers.setdefault(
                "Content-Type",
                "application/json"
                if d["requestTokenEncoding"] == "json"
                else "application/x-www-form-urlencoded",
            )
        record.update(url=url, method=d["method"], requestBody=(content or b"").decode())
        if self.client is None:
            self.client = httpx.AsyncClient()
        error_type: str | None = None
        code: int | None = None
        text = ""
        try:
            resp = await self.client.request(
                d["method"],
                url,
                content=content,
                headers=headers,
                timeout=emu.config.scaled(emu.config.webhook_timeout_s),
            )
            code, text = resp.status_code, resp.text
            if not 200 <= code < 300:
                error_type = f"HTTP {code} {resp.reason_phrase}".strip()
        except httpx.TimeoutException:
            error_type = "Timeout"
        except httpx.HTTPError as exc:
            error_type = f"Connection error: {type(exc).__name__}"
        record.update(status=code, response=text[:4096], errorType=error_type, mapped=[])
        if error_type is None and d["responseMappings"]:
            record["mapped"] = self._apply_mappings(d, lead_id, text)
        if lead_id in emu.store.people:
            emu.log.add(
                emu.now_ms(),
                lead_id,
                CALL_WEBHOOK,
                d["id"],
                d["name"],
                (
                    ("Error Type", error_type),
                    ("Response", text[:2048] or None),
                    ("Response Code", code),
                ),
            )
        self.calls.append(record)
        return record

    def _apply_mappings(self, d: dict[str, Any], lead_id: int, text: str) -> list[str]:
        if d["responseType"] != "json":
            return []  # XML response mappings are not emulated
        try:
            doc = json.loads(text)
        except ValueError:
            return []
        changes: dict[str, Any] = {}
        for m in d["responseMappings"]:
            value = _lookup_path(doc, str(m.get("attribute", "")))
            f = self.emu.schema.lookup_loose(str(m.get("field", "")))
            if f is None or value is None or not f.updateable:
                continue
            v = coerce(f, value)
            if v is INVALID:  # types must match; a mismatch is dropped, not coerced
                continue
            changes[f.name] = v
        if not changes or lead_id not in self.emu.store.people:
            return []
        return update_person(
            self.emu,
            lead_id,
            changes,
            None,
            "callWebhook",
            "",
            reason=f"Webhook: {d['name']}",
            source="Webhook",
        )

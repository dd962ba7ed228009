"""The Python flagd provider (openfeature-provider-flagd, unmodified) against a flag-service,
and a recorder for the events it emits."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import CacheType, ResolverType
from openfeature.event import EventDetails, ProviderEvent
from openfeature.provider import ProviderStatus

MODES = {"rpc": ResolverType.RPC, "in-process": ResolverType.IN_PROCESS}
EVENTS = {
    "ready": ProviderEvent.PROVIDER_READY,
    "error": ProviderEvent.PROVIDER_ERROR,
    "stale": ProviderEvent.PROVIDER_STALE,
    "change": ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
}
_domains = itertools.count(1)


@dataclass
class Event:
    kind: str
    details: EventDetails
    at: float  # time.monotonic() when the handler ran


@dataclass
class EventLog:
    """Every event of the kinds subscribed to, in order, with the time the handler ran."""

    events: list[Event] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def handler(self, kind: str):
        def record(details: EventDetails) -> None:
            with self.condition:
                self.events.append(Event(kind, details, time.monotonic()))
                self.condition.notify_all()

        return record

    def count(self, kind: str) -> int:
        with self.condition:
            return sum(1 for event in self.events if event.kind == kind)

    def wait(self, kind: str, *, after: int = 0, timeout: float = 10.0, where=lambda event: True) -> Event:
        """The first event of `kind` at index `after` or later that satisfies `where`."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                for event in self.events[after:]:
                    if event.kind == kind and where(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(e.kind, e.details.flags_changed) for e in self.events]
                    raise AssertionError(f"no {kind} event within {timeout}s; events so far: {seen}")
                self.condition.wait(remaining)

    def mark(self) -> int:
        with self.condition:
            return len(self.events)


def provider(mode: str, port: int, **options) -> FlagdProvider:
    """A FlagdProvider for flag-service on 127.0.0.1:`port` with quick test timings; `options`
    override any FlagdProvider argument."""
    settings = dict(
        resolver_type=MODES[mode],
        host="127.0.0.1",
        port=port,
        tls=False,
        deadline_ms=3000,
        stream_deadline_ms=0,
        retry_backoff_ms=1000,
        retry_backoff_max_ms=1000,
        retry_grace_period=2,
    )
    if mode == "rpc":
        settings["cache"] = CacheType.DISABLED
    settings.update(options)
    return FlagdProvider(**settings)


def connect(mode: str, port: int, *, events: tuple[str, ...] = (), wait: bool = True, **options):
    """Registers a new provider under its own domain and returns (client, event log). With
    `wait`, blocks until the provider is READY. Handlers for `events` are added right after
    registration, before any test action."""
    domain = f"e2e-{mode}-{next(_domains)}"
    flagd = provider(mode, port, **options)
    if wait:
        api.set_provider_and_wait(flagd, domain)
    else:
        api.set_provider(flagd, domain)
    client: OpenFeatureClient = api.get_client(domain)
    log = EventLog()
    for kind in events:
        client.add_handler(EVENTS[kind], log.handler(kind))
    return client, log


def wait_status(client: OpenFeatureClient, status: ProviderStatus, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get_provider_status() != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"provider status {client.get_provider_status()} != {status} after {timeout}s")
        time.sleep(0.02)

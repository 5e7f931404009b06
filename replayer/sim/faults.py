"""Injected misbehaviour of the simulator, so that every failure path of a client can be exercised."""

from __future__ import annotations

from dataclasses import dataclass

from replayer.errors import ConfigError

FAULT_NAMES = ("refuse", "reset", "stall", "drip", "malformed", "truncate", "huge", "wrong-type")
"""The faults besides HTTP errors, each with its `<name>_rate` field in `Faults` (drawn in this order)."""
STREAM_FAULTS = ("reset", "drip", "malformed", "truncate", "huge")
"""Faults that only a streamed answer can show (a non-streamed request drawing one is served normally)."""


def rate_field(fault: str) -> str:
    """The `Faults` field holding a fault's rate (`wrong-type` → `wrong_type_rate`)."""
    return f"{fault.replace('-', '_')}_rate"


@dataclass(frozen=True)
class Faults:
    """Injected misbehaviour, so that every failure path of a client can be exercised. Each rate is a
    fraction of requests; one draw per request picks at most one fault, so the rates add up to at
    most 1. Stream faults strike half way through the tokens."""

    error_rates: tuple[tuple[int, float], ...] = ()
    """(HTTP status, fraction answered with it), e.g. ((429, 0.05), (503, 0.01))."""
    retry_after_s: float | None = None
    """A `Retry-After` header on injected 429 and 503 answers, if set."""
    refuse_rate: float = 0.0
    """Connections closed before any response."""
    reset_rate: float = 0.0
    """Streams whose connection is reset mid-way."""
    stall_rate: float = 0.0
    stall_s: float = 0.0
    """How long a stall before the first token lasts (`inf`: forever)."""
    drip_rate: float = 0.0
    drip_s: float = 1.0
    """The gap before each token of a dripping stream."""
    malformed_rate: float = 0.0
    """Streams with one chunk cut inside its JSON."""
    truncate_rate: float = 0.0
    """Streams ended cleanly but early, with neither a finish_reason nor `[DONE]`."""
    huge_rate: float = 0.0
    huge_bytes: int = 4 * 1024 * 1024
    """The size of the one huge content chunk such a stream carries."""
    wrong_type_rate: float = 0.0
    """HTTP 200 answers with an HTML page instead of an event stream or JSON."""
    seed: int = 0

    def __post_init__(self) -> None:
        rates = self._rates()
        for name, rate in rates:
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"simulator {name}-rate must be in [0, 1], got {rate}")
        if sum(rate for _, rate in rates) > 1.0 + 1e-9:
            raise ConfigError("simulator fault rates add up to more than 1")
        for status, _ in self.error_rates:
            if not 400 <= status <= 599:
                raise ConfigError(f"simulator error status must be an HTTP error status (400-599), got {status}")
        if self.stall_s < 0 or self.drip_s < 0 or (self.retry_after_s or 0) < 0:
            raise ConfigError("simulator stall-s, drip-s and retry-after must be >= 0")
        if self.huge_bytes < 1:
            raise ConfigError("simulator huge-bytes must be >= 1")

    def _rates(self) -> list[tuple[str | int, float]]:
        return [*self.error_rates, *((name, getattr(self, rate_field(name))) for name in FAULT_NAMES)]

    @property
    def active(self) -> bool:
        return any(rate for _, rate in self._rates())

    def pick(self, draw: float) -> str | int | None:
        """The fault of a request whose uniform draw is `draw`: an HTTP status, a fault name, or None."""
        edge = 0.0
        for fault, rate in self._rates():
            edge += rate
            if draw < edge:
                return fault
        return None



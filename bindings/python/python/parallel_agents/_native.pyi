"""Type stubs of the native module (src/*.rs); the public API is re-exported by
``parallel_agents``."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__version__: str

class Error(RuntimeError):
    """A library call failed; ``status`` names why, ``message`` says what happened."""

    status: str
    message: str

def shutdown(timeout: float = 1.0) -> None: ...

class Result:
    """The result of one call."""

    @property
    def index(self) -> int: ...
    @property
    def id(self) -> str:
        """The host's id for the question, or its index in decimal."""
    @property
    def replayed(self) -> bool:
        """Whether the result came from the journal instead of a call."""
    @property
    def agent_id(self) -> int: ...
    @property
    def question(self) -> str: ...
    @property
    def outcome(self) -> str:
        """``"ok"``, ``"failed"``, ``"timed_out"`` or ``"cancelled"``."""
    @property
    def ok(self) -> bool: ...
    @property
    def answer(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def attempts(self) -> int: ...
    @property
    def duration(self) -> float:
        """Seconds from the first attempt's start to the end."""
    @property
    def prompt_tokens(self) -> Optional[int]: ...
    @property
    def completion_tokens(self) -> Optional[int]: ...
    @property
    def hedged(self) -> bool: ...
    def to_dict(self) -> Dict[str, Any]: ...

class Metrics:
    """What a batch or an executor did; durations in seconds."""

    @property
    def total_duration(self) -> float: ...
    @property
    def successful_count(self) -> int: ...
    @property
    def failed_count(self) -> int: ...
    @property
    def timed_out_count(self) -> int: ...
    @property
    def cancelled_count(self) -> int: ...
    @property
    def total_count(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def hedged_count(self) -> int: ...
    @property
    def avg_duration(self) -> float: ...
    @property
    def min_duration(self) -> float: ...
    @property
    def max_duration(self) -> float: ...
    @property
    def p50_duration(self) -> float: ...
    @property
    def p95_duration(self) -> float: ...
    @property
    def p99_duration(self) -> float: ...
    @property
    def throughput(self) -> float: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    def to_dict(self) -> Dict[str, float]: ...

class Consensus:
    """A vote: the winner, its confidence, the tally and every call."""

    @property
    def answer(self) -> Optional[str]: ...
    @property
    def confidence(self) -> float: ...
    @property
    def votes(self) -> int: ...
    @property
    def counted(self) -> int: ...
    @property
    def reached(self) -> bool: ...
    @property
    def early_stopped(self) -> bool: ...
    @property
    def tally(self) -> List[Tuple[str, int]]: ...
    @property
    def results(self) -> List[Result]: ...
    @property
    def metrics(self) -> Metrics: ...

class MockAgent:
    """A simulated agent (latency, jitter, injected failures and hangs, seeded)."""

    def __init__(
        self,
        *,
        latency: float = 0.1,
        jitter: float = 0.0,
        failure_rate: float = 0.0,
        hang_rate: float = 0.0,
        seed: int = 42,
        votes: Optional[Dict[str, float]] = None,
    ) -> None: ...

class OpenAIAgent:
    """An OpenAI-compatible chat-completions client in Rust."""

    def __init__(
        self,
        *,
        base_url: str = "https://api.openai.com/v1",
        model: str = "gpt-4o-mini",
        api_key_env: str = "OPENAI_API_KEY",
        system_prompt: Optional[str] = None,
        user_template: str = "{question}",
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        max_completion_tokens: Optional[int] = None,
        extra_body: Optional[Dict[str, Any]] = None,
        headers: Optional[Sequence[Tuple[str, str]]] = None,
        request_timeout: float = 60.0,
        idle_timeout: float = 4.0,
        tokens_per_minute: Optional[int] = None,
    ) -> None: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def model(self) -> str: ...

class CallableAgent:
    """Python code as an agent (made by ``parallel_agents.CallableAgent``)."""

    def __init__(
        self,
        *,
        call: Optional[Callable[[str, int], Tuple[bool, str, bool]]] = None,
        submit: Optional[Callable[[int, str, int, Callable[[bool, str, bool], None]], None]] = None,
        cancel: Optional[Callable[[int], None]] = None,
        max_threads: Optional[int] = None,
    ) -> None: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def thread_limit(self) -> int: ...

class RateLimiter:
    """A rate limit shared by every executor given it; in this process, or in Redis."""

    def __init__(self, requests_per_minute: float, burst: int = 1) -> None: ...
    @staticmethod
    def redis(
        url: str,
        key: str,
        requests_per_minute: float,
        tokens_per_minute: Optional[int] = None,
    ) -> "RateLimiter": ...
    @property
    def requests_per_minute(self) -> float: ...

class Config:
    def __init__(
        self,
        *,
        max_concurrency: int = 64,
        timeout: float = 60.0,
        retries: int = 0,
        backoff: float = 0.1,
        backoff_cap: float = 10.0,
        retry_timeouts: bool = False,
        rate_limit: Optional[float] = None,
        rate_burst: int = 1,
        tokens_per_minute: Optional[int] = None,
        hedge: Optional[float] = None,
        hedge_p95: bool = False,
        max_errors: Optional[int] = None,
        stream_buffer: int = 1024,
        consensus_threshold: float = 0.6,
        consensus_early_stop: bool = True,
        journal: Optional[str] = None,
        journal_rerun_failed: bool = False,
        rate_limiter: Optional["RateLimiter"] = None,
    ) -> None: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def tokens_per_minute(self) -> Optional[int]: ...

class Batch:
    def next_many(self, max: int = 1024, timeout: Optional[float] = None) -> Optional[List[Result]]: ...
    def wait_all(self, timeout: Optional[float] = None) -> Optional[Tuple[List[Result], Metrics]]: ...
    def cancel(self) -> None: ...
    def progress(self) -> Tuple[int, int]: ...
    def metrics(self) -> Optional[Metrics]: ...
    @property
    def budget_exceeded(self) -> bool: ...

class RunTask:
    def wait(self, timeout: Optional[float] = None) -> Optional[Tuple[List[Result], Metrics]]: ...
    def cancel(self) -> None: ...
    def progress(self) -> Tuple[int, int]: ...

class ConsensusTask:
    def wait(self, timeout: Optional[float] = None) -> Optional[Consensus]: ...
    def cancel(self) -> None: ...

class Executor:
    def __init__(self, agent: Any, config: Config) -> None: ...
    def submit(self, questions: List[str], ids: Optional[List[str]] = None) -> Batch: ...
    def run(self, questions: List[str], ids: Optional[List[str]] = None) -> RunTask: ...
    def consensus(self, question: str, n: int) -> ConsensusTask: ...
    def metrics(self) -> Metrics: ...
    @property
    def in_flight(self) -> int: ...
    def cancel_all(self) -> None: ...

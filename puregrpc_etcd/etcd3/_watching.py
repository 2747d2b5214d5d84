"""The watch methods of python-etcd3's client: ``watch``, ``watch_prefix``, ``watch_once``,
their ``_response`` forms, ``add_watch_callback``, ``add_watch_prefix_callback`` and
``cancel_watch``."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, Optional

from . import exceptions, utils
from ._native import handle_errors
from .watch import Watcher

__all__ = ["WatchMethods"]


class WatchMethods:
    """Mixed into ``MultiEndpointEtcd3Client``."""

    timeout: Optional[float]
    _watcher: Optional[Watcher]
    _watcher_lock: threading.Lock

    def _init_watching(self) -> None:
        self._watcher = None
        self._watcher_lock = threading.Lock()

    def _close_watching(self) -> None:
        with self._watcher_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()

    def get_watcher(self) -> Watcher:
        """A new ``Watcher`` for this client."""
        return Watcher(self, timeout=self.timeout)

    @property
    def watcher(self) -> Watcher:
        """The client's ``Watcher`` (made on first use)."""
        with self._watcher_lock:
            if self._watcher is None:
                self._watcher = self.get_watcher()
            return self._watcher

    @watcher.setter
    def watcher(self, value: Watcher) -> None:
        with self._watcher_lock:
            self._watcher = value

    @handle_errors
    def add_watch_callback(self, *args: Any, **kwargs: Any) -> int:
        """Watch a key (``key, callback, range_end=None, start_revision=None,
        progress_notify=False, filters=None, prev_kv=False``) and call ``callback`` with each
        ``WatchResponse`` (or once with the exception that ended the watch); returns the watch
        id. ``ConnectionFailedError`` if no member can be reached (``NoServerAvailableError``
        with ``failover=True``), ``WatchTimedOut`` if the watch is not created in time (see
        ``Watcher.add_callback``)."""
        return self.watcher.add_callback(*args, **kwargs)

    def add_watch_prefix_callback(
        self, key_prefix: Any, callback: Callable[[Any], object], **kwargs: Any
    ) -> int:
        """``add_watch_callback`` for every key under a prefix."""
        kwargs["range_end"] = utils.prefix_range_end(utils.to_bytes(key_prefix))
        return self.add_watch_callback(key_prefix, callback, **kwargs)

    def watch_response(self, key: Any, **kwargs: Any) -> tuple[Iterator[Any], Callable[[], None]]:
        """``(responses_iterator, cancel)``: iterate the ``WatchResponse``s of a watch until
        ``cancel()`` is called (from any thread)."""
        response_queue: queue.Queue[Any] = queue.Queue()
        watch_id = self.add_watch_callback(key, response_queue.put, **kwargs)
        canceled = threading.Event()

        def cancel() -> None:
            canceled.set()
            response_queue.put(None)
            self.cancel_watch(watch_id)

        def iterator() -> Iterator[Any]:
            while not canceled.is_set():
                response = response_queue.get()
                if response is None:
                    canceled.set()
                if isinstance(response, Exception):
                    canceled.set()
                    raise response
                if not canceled.is_set():
                    yield response

        return iterator(), cancel

    def watch(self, key: Any, **kwargs: Any) -> tuple[Iterator[Any], Callable[[], None]]:
        """``(events_iterator, cancel)``: iterate the events of a key until ``cancel()``."""
        response_iterator, cancel = self.watch_response(key, **kwargs)
        return utils.response_to_event_iterator(response_iterator), cancel

    def watch_prefix_response(
        self, key_prefix: Any, **kwargs: Any
    ) -> tuple[Iterator[Any], Callable[[], None]]:
        """``watch_response`` for every key under a prefix."""
        kwargs["range_end"] = utils.prefix_range_end(utils.to_bytes(key_prefix))
        return self.watch_response(key_prefix, **kwargs)

    def watch_prefix(
        self, key_prefix: Any, **kwargs: Any
    ) -> tuple[Iterator[Any], Callable[[], None]]:
        """``watch`` for every key under a prefix."""
        kwargs["range_end"] = utils.prefix_range_end(utils.to_bytes(key_prefix))
        return self.watch(key_prefix, **kwargs)

    def watch_once_response(self, key: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """The first ``WatchResponse`` of a watch; ``WatchTimedOut`` after ``timeout`` s.

        If the watch fails (its history was compacted, say) this raises that error, where
        python-etcd3 returns the exception object."""
        response_queue: queue.Queue[Any] = queue.Queue()
        watch_id = self.add_watch_callback(key, response_queue.put, **kwargs)
        try:
            response = response_queue.get(timeout=timeout)
        except queue.Empty:
            raise exceptions.WatchTimedOut() from None
        finally:
            self.cancel_watch(watch_id)
        if isinstance(response, Exception):
            raise response
        return response

    def watch_once(self, key: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """The first event of a watch; ``WatchTimedOut`` after ``timeout`` s."""
        response = self.watch_once_response(key, timeout=timeout, **kwargs)
        return response.events[0]

    def watch_prefix_once_response(
        self, key_prefix: Any, timeout: Optional[float] = None, **kwargs: Any
    ) -> Any:
        """``watch_once_response`` for every key under a prefix."""
        kwargs["range_end"] = utils.prefix_range_end(utils.to_bytes(key_prefix))
        return self.watch_once_response(key_prefix, timeout=timeout, **kwargs)

    def watch_prefix_once(
        self, key_prefix: Any, timeout: Optional[float] = None, **kwargs: Any
    ) -> Any:
        """``watch_once`` for every key under a prefix."""
        kwargs["range_end"] = utils.prefix_range_end(utils.to_bytes(key_prefix))
        return self.watch_once(key_prefix, timeout=timeout, **kwargs)

    def cancel_watch(self, watch_id: int) -> None:
        """Stop the watch ``watch_id`` of ``add_watch_callback``."""
        self.watcher.cancel(watch_id)

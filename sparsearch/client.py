"""A small Python client for ``sparsearch serve`` (httpx).

    client = SparsearchClient("http://127.0.0.1:8000", api_key="...")
    client.create_collection("docs")
    client.upsert("docs", [{"_id": "d1", "title": "A", "text": "..."}])
    client.search("docs", "query", k=10)

Errors the server answers (4xx/5xx) raise :class:`ServiceError` carrying the
status code and the server's message.

Collection names and document ids are percent-encoded as one path segment
each (:func:`path_segment`), so an id of any characters (``..``, ``/``,
``?``, ``#``, ``%2F``, a newline) names that document and nothing else.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import quote

from sparsearch.errors import MissingDependencyError, SparsearchError


class ServiceError(SparsearchError, RuntimeError):
    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"HTTP {status_code}: {detail}")


def path_segment(value: str) -> str:
    """``value`` as one URL path segment: every byte but letters, digits and ``-_~`` percent-encoded.

    ``.`` is encoded too (``%2E``): HTTP clients, httpx among them, remove
    ``.`` and ``..`` segments from a path before sending it, so
    ``delete("docs", "..")`` would otherwise address the collection itself.
    An id that is not valid Unicode (an unpaired surrogate) cannot be a
    document id and raises ``ValueError``.
    """
    try:
        return quote(value, safe="", encoding="utf-8", errors="strict").replace(".", "%2E")
    except UnicodeEncodeError:
        raise ValueError(f"{value!r} is not valid Unicode (unpaired surrogate)") from None


class SparsearchClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, http: Any = None) -> None:
        """``http``: an existing ``httpx.Client`` (FastAPI's TestClient in tests) instead of a new one."""
        if http is None:
            try:
                import httpx
            except ImportError:
                raise MissingDependencyError("the client needs httpx: pip install 'sparsearch[service]'") from None
            http = httpx.Client(base_url=base_url, timeout=timeout)
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._http.request(method, path, json=json, headers=self._headers)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ServiceError(response.status_code, detail)
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def create_collection(self, name: str, encoder: str = "bm25", model: str | None = None,
                          dense_model: str | None = None, dense_params: dict[str, Any] | None = None,
                          **params: float | int | None) -> dict[str, Any]:
        """``model``: learned encoders (``splade``, ``inference-free``) name one of the server's models;
        ``inference-free`` without one gets the server's default (``DEFAULT_INFERENCE_FREE_MODEL``).

        ``dense_model``: a dense model of the server's (``all-minilm-l6-v2``) indexed beside the sparse
        encoder, a hybrid collection searched with ``mode``; ``dense_params``: its ``max_length``, ``batch_size``.
        """
        body: dict[str, Any] = {"encoder": encoder, "params": params}
        if model is not None:
            body["model"] = model
        if dense_model is not None:
            body["dense_model"] = dense_model
        if dense_params is not None:
            body["dense_params"] = dense_params
        return self._call("PUT", f"/collections/{path_segment(name)}", body)

    def collections(self) -> list[dict[str, Any]]:
        return self._call("GET", "/collections")["collections"]

    def describe(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/collections/{path_segment(name)}")

    def delete_collection(self, name: str) -> None:
        self._call("DELETE", f"/collections/{path_segment(name)}")

    def upsert(self, name: str, documents: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Add or replace documents; returns once the server has made them durable."""
        return self._call("POST", f"/collections/{path_segment(name)}/documents", {"documents": list(documents)})

    def get(self, name: str, doc_id: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"/collections/{path_segment(name)}/documents/{path_segment(doc_id)}")
        except ServiceError as e:
            if e.status_code == 404:
                return None
            raise

    def delete(self, name: str, doc_id: str) -> bool:
        try:
            self._call("DELETE", f"/collections/{path_segment(name)}/documents/{path_segment(doc_id)}")
            return True
        except ServiceError as e:
            if e.status_code == 404:
                return False
            raise

    def search(self, name: str, query: str, k: int = 10, filter: dict[str, Any] | None = None,
               fields: Sequence[str] = ("title",), mode: str | None = None, prf: str | None = None,
               alpha: float | None = None, fusion: str | None = None) -> list[dict[str, Any]]:
        """``mode``: sparse, dense or hybrid; ``prf``: none, rm3, rocchio or both; ``alpha``: the sparse
        ranking's weight; ``fusion``: minmax, zscore or rrf.  ``None``: the collection's default."""
        body: dict[str, Any] = {"query": query, "k": k, "filter": filter, "fields": list(fields)}
        given = {"mode": mode, "prf": prf, "alpha": alpha, "fusion": fusion}
        body.update({key: value for key, value in given.items() if value is not None})
        return self._call("POST", f"/collections/{path_segment(name)}/search", body)["hits"]

"""The FastAPI application: collections, documents, search, health and metrics.

Endpoints are plain ``def`` functions, so FastAPI runs them in its thread
pool: searches run in parallel with each other and with writes (the Numba
kernels release the GIL), and each collection serialises its own writes.
Errors sparsearch raises map to HTTP codes in one place (:func:`_errors`).
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparsearch.errors import InputError, SparsearchError
from sparsearch.service import schemas
from sparsearch.service.metrics import Metrics
from sparsearch.service.settings import ServiceSettings
from sparsearch.service.store import (
    CollectionExists,
    CollectionNameError,
    CollectionNotFound,
    CollectionStore,
)
from sparsearch.types import Document

log = logging.getLogger(__name__)


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(status_code=413,
                                content={"detail": f"request body exceeds max_body_bytes={self.limit}"})
        await response({"type": "http"}, _no_receive, send)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Message:  # pragma: no cover - JSONResponse never reads the request
    return {"type": "http.disconnect"}


def create_app(settings: ServiceSettings) -> FastAPI:
    holder: dict[str, CollectionStore] = {}
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store()
        if settings.api_key is None:
            log.warning("no API key configured (SPARSEARCH_API_KEY): writes are open to anyone who can connect")
        try:
            yield
        finally:
            holder.pop("store").close()

    app = FastAPI(title="sparsearch", version="0.1.0", lifespan=lifespan,
                  description="Sparse retrieval service: collections, durable writes, BM25 search.")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    def store() -> CollectionStore:
        # Opened by the lifespan hook; lazily for ASGI drivers that skip lifespan events.
        if "store" not in holder:
            holder["store"] = CollectionStore(settings.data_dir, settings.live)
        return holder["store"]

    def authorize(request: Request, write: bool) -> None:
        if settings.api_key is None or not (write or settings.require_key_for_reads):
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), settings.api_key.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong API key (Authorization: Bearer KEY)",
                                headers={"WWW-Authenticate": "Bearer"})

    def writer(request: Request) -> None:
        authorize(request, write=True)

    def reader(request: Request) -> None:
        authorize(request, write=False)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Any]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(request.method, getattr(route, "path", "unmatched"), response.status_code,
                        time.perf_counter() - start)
        return response

    @app.exception_handler(SparsearchError)
    async def _errors(request: Request, error: SparsearchError) -> JSONResponse:
        code = 500
        if isinstance(error, CollectionNotFound):
            code = 404
        elif isinstance(error, CollectionExists):
            code = 409
        elif isinstance(error, (CollectionNameError, InputError, ValueError)):
            code = 422
        return JSONResponse(status_code=code, content={"detail": str(error)})

    def info(name: str) -> schemas.CollectionInfo:
        live = store().get(name)
        spec = store().spec(name)
        return schemas.CollectionInfo(name=name, encoder=spec["encoder"], params=spec["params"],
                                      documents=live.n_docs, segments=live.n_segments)

    @app.get("/healthz", response_model=schemas.Health)
    def healthz() -> schemas.Health:
        return schemas.Health(status="ok", collections=len(store().names()))

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_endpoint() -> str:
        s = store()
        return metrics.render({name: (s.get(name).n_docs, s.get(name).n_segments) for name in s.names()})

    @app.put("/collections/{name}", response_model=schemas.CollectionInfo, dependencies=[Depends(writer)])
    def create_collection(name: str, spec: schemas.CollectionSpec, response: Response) -> schemas.CollectionInfo:
        created = store().create(name, spec.encoder, spec.params.model_dump())
        response.status_code = 201 if created else 200
        return info(name)

    @app.get("/collections", response_model=schemas.CollectionList, dependencies=[Depends(reader)])
    def list_collections() -> schemas.CollectionList:
        return schemas.CollectionList(collections=[info(n) for n in store().names()])

    @app.get("/collections/{name}", response_model=schemas.CollectionInfo, dependencies=[Depends(reader)])
    def describe_collection(name: str) -> schemas.CollectionInfo:
        return info(name)

    @app.delete("/collections/{name}", dependencies=[Depends(writer)])
    def delete_collection(name: str) -> dict[str, bool]:
        store().drop(name)
        return {"deleted": True}

    @app.post("/collections/{name}/documents", response_model=schemas.WriteResult, dependencies=[Depends(writer)])
    def upsert_documents(name: str, body: schemas.DocumentsIn) -> schemas.WriteResult:
        if len(body.documents) > settings.max_batch_documents:
            raise HTTPException(status_code=413, detail=f"batch of {len(body.documents)} documents exceeds "
                                                        f"max_batch_documents={settings.max_batch_documents}")
        live = store().get(name)
        docs = [Document(d.id, d.title, d.text, d.metadata) for d in body.documents]
        live.upsert(docs)
        return schemas.WriteResult(acknowledged=len(docs), documents=live.n_docs)

    @app.get("/collections/{name}/documents/{doc_id}", response_model=schemas.DocumentOut,
             response_model_by_alias=True, dependencies=[Depends(reader)])
    def get_document(name: str, doc_id: str) -> schemas.DocumentOut:
        fields = store().get(name).get(doc_id)
        if fields is None:
            raise HTTPException(status_code=404, detail=f"no document {doc_id!r} in collection {name!r}")
        return schemas.DocumentOut(id=doc_id, **fields)

    @app.delete("/collections/{name}/documents/{doc_id}", response_model=schemas.DeleteResult,
                dependencies=[Depends(writer)])
    def delete_document(name: str, doc_id: str) -> schemas.DeleteResult:
        if not store().get(name).delete([doc_id]):
            raise HTTPException(status_code=404, detail=f"no document {doc_id!r} in collection {name!r}")
        return schemas.DeleteResult(deleted=True)

    @app.post("/collections/{name}/search", response_model=schemas.SearchOut, response_model_by_alias=True,
              dependencies=[Depends(reader)])
    def search(name: str, body: schemas.SearchIn) -> Response:
        if len(body.query) > settings.max_query_chars:
            raise HTTPException(status_code=422, detail=f"query of {len(body.query)} characters exceeds "
                                                        f"max_query_chars={settings.max_query_chars}")
        if body.k > settings.max_k:
            raise HTTPException(status_code=422, detail=f"k={body.k} exceeds max_k={settings.max_k}")
        hits = store().get(name).search(body.query, body.k, body.filter, body.fields)
        out = []
        for doc_id, score, stored in hits:
            hit: dict[str, Any] = {"_id": doc_id, "score": score}
            for f in body.fields:
                hit[f] = stored.get(f, {} if f == "metadata" else "")
            out.append(hit)
        # Built directly (the schema above documents it): validating every hit again would cost
        # more than the search itself.
        return JSONResponse({"hits": out})

    return app

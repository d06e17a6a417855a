"""The FastAPI application: collections, documents, search, health and metrics.

Endpoints are plain ``def`` functions, so FastAPI runs them in its thread
pool: searches run in parallel with each other and with writes (the Numba
kernels release the GIL), and each collection serialises its own writes.
Errors sparsearch raises (and bare ``OSError``) map to HTTP codes in one
place (:func:`status_for`).

Three ASGI middlewares wrap everything: :class:`Observe` (outermost) counts
every response by status, including unhandled 500s and the 413/408 answers
of :class:`RequestBody`, which reads the whole body first, so an oversized
body (declared or chunked) is refused with 413 and a stalled one with 408
before any endpoint runs; :class:`ExactPath` decodes the path once from the
wire bytes, so a document id in it is the same under every ASGI driver.

Learned-sparse collections encode documents inside ``upsert_documents``,
on its worker thread, under that collection's write lock only: a large batch
for one collection holds up neither searches (which read a published
snapshot) nor writes to other collections, and never the event loop.
"""

from __future__ import annotations

import errno as errno_codes
import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator
from urllib.parse import unquote_to_bytes

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparsearch.errors import (
    IndexClosedError,
    IndexFormatError,
    IndexLockedError,
    InputError,
    SparsearchError,
    StorageError,
    StorageFullError,
    TooManyOpenFilesError,
)
from sparsearch.service import schemas
from sparsearch.service.metrics import Metrics
from sparsearch.service.models import ModelCatalog, ModelUnusable, UnknownModel
from sparsearch.service.settings import ServiceSettings
from sparsearch.service.store import (
    CollectionExists,
    CollectionNameError,
    CollectionNotFound,
    CollectionStore,
    CollectionUnavailable,
    StoreClosed,
)
from sparsearch.retriever.hybrid_collection import HybridCollection
from sparsearch.types import Document

log = logging.getLogger(__name__)

FULL_ERRNOS = (errno_codes.ENOSPC, errno_codes.EDQUOT)


class _DocumentId(Convertor[str]):
    """A path parameter that takes the rest of the path, newlines included.

    Starlette's ``path`` convertor is ``.*``, which stops at a newline; a
    document id may hold any character (percent-encoded in the URL, ``.``
    as ``%2E`` so that no client collapses ``..`` segments).
    """

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("document_id", _DocumentId())


def _send_json(status: int, detail: str, close: bool) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail},
                        headers={"Connection": "close"} if close else None)


class RequestBody:
    """ASGI middleware: read the whole body up front, refusing oversized (413) or stalled (408) ones.

    Reading first (rather than counting while the endpoint reads) is what
    makes a chunked body over the limit a 413: FastAPI turns any error
    raised while it reads a body into 400.  A body that stops arriving
    (a Content-Length longer than what is sent) gets 408 after
    ``timeout`` seconds without a byte, and the connection is closed.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await _send_json(413, f"request body exceeds max_body_bytes={self.limit}", True)(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message: Message | None = None
            with anyio.move_on_after(self.timeout):
                message = await receive()
            if message is None:
                await _send_json(408, f"request body not received within {self.timeout:g} s "
                                      f"(a Content-Length longer than the body?)", True)(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return  # the client went away: nobody to answer
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                await _send_json(413, f"request body exceeds max_body_bytes={self.limit}", True)(
                    scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ExactPath:
    """ASGI middleware: ``path`` decoded exactly once from the bytes on the wire (``raw_path``).

    That is what the ASGI spec defines and what uvicorn does, but not every
    driver: Starlette's TestClient percent-decodes twice, turning the id
    ``%2F`` into ``/``.  Document ids are taken from the path, so they must
    not depend on the driver.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw and not scope.get("root_path"):  # drivers differ on root paths
            # In place, not a copy: Observe reads the matched route from this same dict.
            scope["path"] = unquote_to_bytes(raw).decode("utf-8", "replace")
        await self.app(scope, receive, send)


class Observe:
    """ASGI middleware, outermost: count every response by method, route and status, and time it.

    An exception that escapes the application is counted as the 500 the
    server answers for it; a request whose client went away before any
    answer is counted as 499.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500
            raise
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope.get("method", ""), route, status or 499, time.perf_counter() - start)


def status_for(error: BaseException) -> int:
    """The HTTP status for an error sparsearch raised (or a bare ``OSError``): the one mapping.

    ``IndexLockedError`` is 503, not 409: another process (``sparsearch
    add``, a second server) holds the collection's index, which is a state
    of the server the client cannot change by changing its request; retrying
    once that process is done succeeds.
    """
    if isinstance(error, (CollectionNotFound, IndexClosedError)):
        return 404  # IndexClosedError: the collection was deleted under a racing request
    if isinstance(error, (IndexLockedError, CollectionUnavailable, StoreClosed, TooManyOpenFilesError)):
        return 503
    if isinstance(error, StorageFullError):
        return 507
    if isinstance(error, (StorageError, IndexFormatError)):
        return 503
    if isinstance(error, CollectionExists):
        return 409
    if isinstance(error, OSError):  # not wrapped by the storage layer
        if error.errno in FULL_ERRNOS:
            return 507
        return 503
    if isinstance(error, (CollectionNameError, InputError, ValueError)):
        return 422
    return 500


def _printable(value: Any) -> Any:
    """A string as JSON can carry it (an unpaired surrogate written as ``\\udXXX``)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


def open_store(settings: ServiceSettings) -> CollectionStore:
    """The data directory's store, locked for this process (raises ``DataDirLocked`` if another holds it)."""
    return CollectionStore(settings.data_dir, settings.live, max_open=settings.max_open_collections,
                           fd_budget=settings.fd_budget, retry_seconds=settings.retry_unavailable_seconds,
                           models=ModelCatalog(settings.models_dir))


def create_app(settings: ServiceSettings, store: CollectionStore | None = None) -> FastAPI:
    """The application; ``store``: an already opened store (``sparsearch serve`` opens it first, to fail fast)."""
    settings.check()
    holder: dict[str, CollectionStore] = {} if store is None else {"store": store}
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Endpoints are sync functions run in anyio's thread pool: its size bounds the server's threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        app.state.store = get_store()
        if settings.api_key is None:
            log.warning("no API key configured, --open-writes: writes are open to anyone who can connect")
        try:
            yield
        finally:
            holder.pop("store").close()

    app = FastAPI(title="sparsearch", version="0.1.0", lifespan=lifespan,
                  description="Sparse retrieval service: collections, durable writes, BM25 and "
                              "learned sparse search.")
    app.state.store = store
    app.add_middleware(ExactPath)
    app.add_middleware(RequestBody, limit=settings.max_body_bytes, timeout=settings.body_timeout_seconds)
    app.add_middleware(Observe, metrics=metrics)  # added last: outermost, sees every answer

    def get_store() -> CollectionStore:
        # Opened by the lifespan hook; lazily for ASGI drivers that skip lifespan events.
        if "store" not in holder:
            holder["store"] = open_store(settings)
        return holder["store"]

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return (settings.api_key is not None and scheme.lower() == "bearer"
                and hmac.compare_digest(token.encode(), settings.api_key.encode()))

    def authorize(request: Request, write: bool) -> None:
        if settings.api_key is None or not (write or settings.require_key_for_reads):
            return
        if not authorized(request):
            raise HTTPException(status_code=401, detail="missing or wrong API key (Authorization: Bearer KEY)",
                                headers={"WWW-Authenticate": "Bearer"})

    def writer(request: Request) -> None:
        authorize(request, write=True)

    def reader(request: Request) -> None:
        authorize(request, write=False)

    async def _errors(request: Request, error: Exception) -> JSONResponse:
        code = status_for(error)
        if code == 500:
            log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
        headers = {"Retry-After": "1"} if isinstance(error, (IndexLockedError, TooManyOpenFilesError)) else None
        return JSONResponse(status_code=code, content={"detail": _printable(str(error))}, headers=headers)

    app.add_exception_handler(SparsearchError, _errors)
    app.add_exception_handler(OSError, _errors)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # The offending input is left out: it may be NaN or hold an unpaired surrogate, which
        # no JSON response can carry (FastAPI's default handler would answer 500 for it).
        detail = [{"loc": [_printable(x) for x in e.get("loc", ())], "msg": _printable(e.get("msg", "")),
                   "type": e.get("type", "")} for e in error.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    def info(name: str) -> schemas.CollectionInfo:
        s = get_store()
        spec = s.spec(name)
        documents, segments = s.stats(name)
        model, dense = s.model_info(name), s.dense_model_info(name)
        return schemas.CollectionInfo(name=name, encoder=spec["encoder"], params=spec["params"],
                                      documents=documents, segments=segments,
                                      model=None if model is None else schemas.ModelOut(**model),
                                      dense_model=None if dense is None else schemas.ModelOut(**dense),
                                      modes=["sparse"] if dense is None else ["sparse", "dense", "hybrid"])

    def unavailable() -> list[schemas.Unavailable]:
        return [schemas.Unavailable(name=n, reason=r) for n, r in get_store().unavailable().items()]

    @app.get("/healthz", response_model=schemas.Health)
    def healthz(request: Request) -> schemas.Health:
        """Open to load balancers; which collections are unavailable and why only to those who may read."""
        down = unavailable()
        show = settings.api_key is None or not settings.require_key_for_reads or authorized(request)
        return schemas.Health(status="degraded" if down else "ok", collections=len(get_store().names()),
                              unavailable=down if show else [])

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(reader)])
    def metrics_endpoint() -> str:
        s = get_store()
        return metrics.render(s.known_stats(), unavailable=len(s.unavailable()))

    @app.put("/collections/{name}", response_model=schemas.CollectionInfo, dependencies=[Depends(writer)])
    def create_collection(name: str, spec: schemas.CollectionSpec, response: Response) -> schemas.CollectionInfo:
        assert spec.params is not None  # filled by the schema
        try:
            created = get_store().create(name, spec.encoder, spec.params.model_dump(), spec.model, spec.dense_model,
                                         None if spec.dense_params is None else spec.dense_params.model_dump())
        except (UnknownModel, ModelUnusable) as e:
            field = e.field if isinstance(e, ModelUnusable) else ("model",)
            raise RequestValidationError([{"loc": ("body", *field), "msg": str(e), "type": "value_error"}]) from None
        response.status_code = 201 if created else 200
        return info(name)

    @app.get("/collections", response_model=schemas.CollectionList, dependencies=[Depends(reader)])
    def list_collections() -> schemas.CollectionList:
        found, down = [], []
        for name in get_store().names():
            try:
                found.append(info(name))
            except CollectionNotFound:
                continue  # deleted meanwhile
            except (CollectionUnavailable, StorageError, IndexLockedError) as e:
                down.append(schemas.Unavailable(name=name, reason=getattr(e, "reason", str(e))))
        return schemas.CollectionList(collections=found, unavailable=down)

    @app.get("/collections/{name}", response_model=schemas.CollectionInfo, dependencies=[Depends(reader)])
    def describe_collection(name: str) -> schemas.CollectionInfo:
        return info(name)

    @app.delete("/collections/{name}", dependencies=[Depends(writer)])
    def delete_collection(name: str) -> dict[str, bool]:
        get_store().drop(name)
        return {"deleted": True}

    @app.post("/collections/{name}/documents", response_model=schemas.WriteResult, dependencies=[Depends(writer)])
    def upsert_documents(name: str, body: schemas.DocumentsIn) -> schemas.WriteResult:
        if len(body.documents) > settings.max_batch_documents:
            raise HTTPException(status_code=413, detail=f"batch of {len(body.documents)} documents exceeds "
                                                        f"max_batch_documents={settings.max_batch_documents}")
        docs = [Document(d.id, d.title, d.text, d.metadata) for d in body.documents]
        with get_store().use(name) as live:
            live.upsert(docs)
            return schemas.WriteResult(acknowledged=len(docs), documents=live.n_docs)

    @app.get("/collections/{name}/documents/{doc_id:document_id}", response_model=schemas.DocumentOut,
             response_model_by_alias=True, dependencies=[Depends(reader)])
    def get_document(name: str, doc_id: str) -> schemas.DocumentOut:
        with get_store().use(name) as live:
            doc = live.document(doc_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no document {doc_id!r} in collection {name!r}")
        return schemas.DocumentOut(id=doc_id, title=doc.title, text=doc.text, metadata=doc.metadata)

    @app.delete("/collections/{name}/documents/{doc_id:document_id}", response_model=schemas.DeleteResult,
                dependencies=[Depends(writer)])
    def delete_document(name: str, doc_id: str) -> schemas.DeleteResult:
        with get_store().use(name) as live:
            found = live.delete([doc_id])
        if not found:
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
        options = body.options()
        with get_store().use(name) as live:
            if options and not isinstance(live, HybridCollection):  # a one-index collection: modes it has, PRF
                live = HybridCollection.of(live, name=f"collection {name!r}")
            hits = live.search(body.query, body.k, body.filter, **options)
        wanted = sorted(set(body.fields))  # decode only the fields asked for: a title list skips the texts
        out = []
        for i, (doc_id, score) in enumerate(hits):
            stored = hits.fields(i, wanted)
            hit: dict[str, Any] = {"_id": doc_id, "score": score}
            for f in body.fields:
                hit[f] = stored.get(f, {} if f == "metadata" else "")
            out.append(hit)
        # Built directly (the schema above documents it): validating every hit again would cost
        # more than the search itself.
        return JSONResponse({"hits": out})

    return app

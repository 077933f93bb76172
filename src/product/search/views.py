"""Pages: collections, a collection's documents (state shown live), search."""

from __future__ import annotations

from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from product.inference.live import released
from product.inference.specs import InputError
from product.quotas.services import LimitExceeded
from product.search import querying, selectors, services
from product.search.extraction import ExtractionError, extract_text
from product.search.models import Collection, Document

#: The sample collection: the project's own documentation.
SAMPLE_DIR = Path(__file__).resolve().parents[3] / "docs"


def _collection(request: HttpRequest, collection_id: int) -> Collection:
    try:
        return selectors.collection_get(user=request.user, collection_id=collection_id)
    except Collection.DoesNotExist:
        raise Http404("No such collection.") from None


@login_required
def collection_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        collection = services.collection_create(user=request.user, name=request.POST.get("name", ""))
        return redirect("search:collection_detail", collection_id=collection.pk)
    return render(request, "search/collection_list.html", {
        "collections": selectors.collections_of(user=request.user),
        "sample_available": SAMPLE_DIR.is_dir(),
    })


@login_required
@require_POST
def sample_add(request: HttpRequest) -> HttpResponse:
    """Add the sample collection (the project's docs/*.md)."""
    collection = services.collection_create(user=request.user, name="Sample: this project's docs")
    documents = [
        services.NewDocument(path.name, ".md", path.read_text(encoding="utf-8"))
        for path in sorted(SAMPLE_DIR.glob("*.md"))
    ]
    try:
        services.documents_add(collection=collection, documents=documents)
    except LimitExceeded as limit:
        messages.error(request, limit.message)
    return redirect("search:collection_detail", collection_id=collection.pk)


def _documents_context(collection: Collection) -> dict:
    services.chunks_collect(collection_ids=[collection.pk])
    documents = list(collection.documents.defer("text"))
    progress = selectors.documents_progress(documents)
    return {
        "collection": collection,
        "documents": [(d, progress[d.pk]) for d in documents],
    }


@login_required
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = _collection(request, collection_id)
    errors, status = [], 200
    if request.method == "POST":
        errors = _add_documents(request, collection)
        if not errors:
            return redirect("search:collection_detail", collection_id=collection.pk)
        status = 400
    context = _documents_context(collection)
    if request.GET.get("partial") == "documents":
        return render(request, "search/_documents.html", context)
    return render(request, "search/collection_detail.html", {**context, "errors": errors}, status=status)


def _add_documents(request: HttpRequest, collection: Collection) -> list[str]:
    """Add the pasted text and the uploaded files; the errors (then nothing was added)."""
    new, errors = [], []
    pasted = request.POST.get("text", "").replace("\x00", "")
    if pasted.strip():
        new.append(services.NewDocument(request.POST.get("title", "").strip() or "Pasted text", "pasted", pasted))
    for upload in request.FILES.getlist("files"):
        try:
            new.append(services.NewDocument(upload.name, "." + upload.name.rsplit(".", 1)[-1].lower(), extract_text(upload.name, upload.read())))
        except ExtractionError as error:
            errors.append(str(error))
    if not new and not errors:
        errors.append("Paste a text or choose files (.txt, .md, .html).")
    if errors:
        return errors
    try:
        services.documents_add(collection=collection, documents=new)
    except (LimitExceeded, InputError) as error:
        return [getattr(error, "message", str(error))]
    return []


@login_required
@require_POST
def collection_delete(request: HttpRequest, collection_id: int) -> HttpResponse:
    services.collection_delete(collection=_collection(request, collection_id))
    return redirect("search:collection_list")


@login_required
@require_POST
def document_delete(request: HttpRequest, document_id: int) -> HttpResponse:
    try:
        document = selectors.document_get(user=request.user, document_id=document_id)
    except Document.DoesNotExist:
        raise Http404("No such document.") from None
    collection_id = document.collection_id
    services.document_delete(document=document)
    return redirect("search:collection_detail", collection_id=collection_id)


async def search_page(request: HttpRequest) -> HttpResponse:
    """Search the user's collections (``?q=``; ``?collection=`` one; staff ``?all=1``)."""
    user = await request.auser()
    if not user.is_authenticated:
        return redirect(f"{reverse('login')}?next={request.get_full_path()}")
    query = request.GET.get("q", "")
    everyone = request.GET.get("all") == "1"
    collection = request.GET.get("collection")
    collection_ids = [int(collection)] if collection and collection.isdigit() else None
    results, error, status = [], None, 200
    if query.strip():
        try:
            results = await querying.search(
                user=user, query=query, collection_ids=collection_ids, everyone=everyone
            )
        except querying.SearchError as failure:
            error, status = str(failure), failure.status
        except LimitExceeded as limit:
            error, status = limit.message, 429
    return await released(render)(request, "search/search.html", {
        "query": query, "results": results, "error": error, "everyone": everyone,
        "collection": collection or "", "searched": bool(query.strip()),
    }, status=status)

"""Accounts' pages: the API tokens page, and sign-in throttled after repeated failures."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UsernameField
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from product.accounts import selectors, services
from product.accounts.forms import NAME_MAX, TokenCreateForm, TokenRenameForm
from product.accounts.models import ApiToken


# --- API tokens --------------------------------------------------------------------------------


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    """The user's tokens, and a form to create one; its secret is shown in the answer to the
    POST that created it, and never again."""
    form = TokenCreateForm(request.POST or None)
    created = secret = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            created, secret = services.token_create(
                user=request.user, name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"],
            )
            form = TokenCreateForm()
        else:
            status = 400
    context = {
        "form": form, "tokens": selectors.tokens_of(user=request.user),
        "created": created, "secret": secret,
    }
    response = render(request, "accounts/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"  # No cache may keep a page that showed a secret.
    return response


def _own_token(request: HttpRequest, token_id: int) -> ApiToken:
    try:
        return selectors.token_of(user=request.user, token_id=token_id)
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None


@login_required
@require_POST
def token_rename(request: HttpRequest, token_id: int) -> HttpResponse:
    token = _own_token(request, token_id)
    form = TokenRenameForm(request.POST)
    if form.is_valid():
        services.token_rename(token=token, name=form.cleaned_data["name"])
        messages.success(request, f"Token {token.prefix}… is now named “{token.name}”.")
    else:
        messages.error(request, f"A token's name is 1 to {NAME_MAX} characters.")
    return redirect("accounts:tokens")


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = services.token_revoke(token=_own_token(request, token_id))
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) is revoked.")
    return redirect("accounts:tokens")


# --- Sign-in -----------------------------------------------------------------------------------


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, which uvicorn's --proxy-headers sets from
    X-Forwarded-For when the connection comes from a trusted proxy (--forwarded-allow-ips)."""
    return request.META.get("REMOTE_ADDR", "")[:64]


class ThrottledLoginView(LoginView):
    """Django's sign-in, refused with 429 and Retry-After after SIGNIN_MAX_FAILURES failures
    of a user name (or SIGNIN_MAX_FAILURES_PER_ADDRESS from one address) within
    SIGNIN_FAILURE_WINDOW seconds. A refused attempt does not check the password at all, and
    is not counted; a successful sign-in clears the user name's failures."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = selectors.signin_wait(username=self._username(), address=client_address(request))
        if not wait:
            return super().post(request, *args, **kwargs)
        # An unbound form: a bound one would check the password to show its errors.
        form = self.get_form_class()(request, initial={"username": self._username()})
        response = self.render_to_response(
            self.get_context_data(form=form, throttled_minutes=-(-wait // 60)), status=429
        )
        response["Retry-After"] = str(wait)
        return response

    def form_invalid(self, form) -> HttpResponse:
        if self._username() and self.request.POST.get("password"):
            services.signin_failure_record(
                username=self._username(), address=client_address(self.request)
            )
        return super().form_invalid(form)

    def form_valid(self, form) -> HttpResponse:
        services.signin_failures_clear(username=form.get_user().get_username())
        return super().form_valid(form)

    def _username(self) -> str:
        # Normalised as the form does before authenticating, so that variants of one name
        # (white space, compatibility characters) count as that name.
        return (UsernameField().to_python(self.request.POST.get("username", "")) or "")[:150]

from __future__ import annotations

from django import forms

from product.accounts.models import ApiToken

NAME_MAX = ApiToken._meta.get_field("name").max_length
MAX_EXPIRY_DAYS = 3650


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX, help_text="What the token is for.")
    expires_in_days = forms.IntegerField(
        label="Expires after (days)", required=False, min_value=1, max_value=MAX_EXPIRY_DAYS,
        help_text="Empty: the token lasts until you revoke it.",
    )


class TokenRenameForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)

from django.contrib import admin

from product.quotas.models import UserQuota
from product.quotas.selectors import default_limits

LIMIT_FIELDS = ["max_queued_texts", "submits_per_minute", "submit_burst"]


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    """Raise or lower one user's limits; an empty field means the environment's default."""

    list_display = ["user", *LIMIT_FIELDS]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]
    readonly_fields = ["bucket_tokens", "bucket_updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # The admin must never re-point a row at another user.
        return [*self.readonly_fields, "user"] if obj else self.readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        for name, default in default_limits().items():
            if name in form.base_fields:
                form.base_fields[name].help_text += f" Default now: {default}."
        return form

    def save_model(self, request, obj, form, change):
        if change:
            # Only the limits: the bucket is the submits' to write, and this form's copy of it
            # is as old as the page.
            obj.save(update_fields=LIMIT_FIELDS)
        else:
            obj.save()

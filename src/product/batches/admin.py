from django.contrib import admin

from product.batches.models import Batch


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Read-only: batches change through their page, the API and the feeder (services)."""

    list_display = ("id", "owner", "model", "filename", "status", "text_count", "bad_line_count", "created_at")
    list_filter = ("status", "model")
    search_fields = ("filename", "owner__username")
    readonly_fields = [field.name for field in Batch._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

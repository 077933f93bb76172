from django.contrib import admin

from product.inference.models import InferenceRequest


@admin.register(InferenceRequest)
class InferenceRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "model", "status", "item_count", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "model"]
    search_fields = ["id", "owner__username", "error"]
    readonly_fields = [f.name for f in InferenceRequest._meta.fields]
    exclude = ["output"]

    def has_add_permission(self, request):
        return False  # Requests are created through the services, with their job.

from django.urls import path

from orders import views, views_batch, views_usage, views_worklist, webhook

urlpatterns = [
    path("redox/webhook/", webhook.redox_webhook, name="redox_webhook"),
    # Uploaders' home is the worklist; viewers go on to the order list (orders/views_worklist.py).
    path("", views_worklist.home, name="home"),
    path("orders/", views.order_list, name="order_list"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
    path("orders/<int:pk>/notes/new/", views.upload_note, name="upload_note"),
    path("notes/<int:pk>/", views.review_note, name="review_note"),
    path("notes/<int:pk>/send/", views.send_note, name="send_note"),
    path("notes/<int:pk>/resend/", views.resend_note, name="resend_note"),
    path("notes/<int:pk>/pdf/", views.note_pdf, name="note_pdf"),
    path("notes/<int:pk>/pages/<int:number>.png", views.note_page, name="note_page"),
    path("notes/<int:pk>/download/", views.note_download, name="note_download"),
    path("deliveries/<int:pk>/retry/", views.retry_delivery, name="retry_delivery"),
    path("deliveries/<int:pk>/abandon/", views.abandon_delivery, name="abandon_delivery"),
    path("batches/", views_batch.batch_list, name="batch_list"),
    path("batches/<int:pk>/", views_batch.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/send/", views_batch.batch_send, name="batch_send"),
    path("batch-files/<int:pk>/preview/", views_batch.batch_file_preview, name="batch_file_preview"),
    path("usage/", views_usage.usage, name="usage"),
    path("reconcile/", views.reconcile, name="reconcile"),
]

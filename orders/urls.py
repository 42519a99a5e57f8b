from django.urls import path

from orders import views, webhook

urlpatterns = [
    path("redox/webhook/", webhook.redox_webhook, name="redox_webhook"),
    path("", views.order_list, name="order_list"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
]

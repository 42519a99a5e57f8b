"""Sign-in URLs: allauth's sign-in, MFA and company sign-in pages, and nothing else of it.

Not `include("allauth.urls")`: that adds sign-up, e-mail management and password reset by
mail, none of which HCOINT offers: admins create users and reset passwords. (Mail can be
configured, EMAIL_URL in hcoint/settings.py, but only the digest sends any.) The names
allauth reverses on the included paths are kept (`account_login`, `account_logout`), next
to the names the rest of HCOINT uses (`login`, `logout`).
Sign-out and password change stay Django's own views.
"""

from allauth.account import views as account_views
from allauth.socialaccount import views as social_views
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from hcoint import signin

urlpatterns = [
    path("accounts/login/", account_views.login, name="login"),
    path("accounts/login/", account_views.login, name="account_login"),
    # Django's sign-out: a POST only (a link or an image cannot sign anyone out).
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="account_logout"),
    path("accounts/inactive/", account_views.account_inactive, name="account_inactive"),
    path("accounts/reauthenticate/", account_views.reauthenticate, name="account_reauthenticate"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/2fa/", include("allauth.mfa.urls")),
    path("accounts/session/keepalive/", signin.session_keepalive, name="session_keepalive"),
]
# Company sign-in's pages answer 404 while OIDC_* is unset (no provider is configured).
urlpatterns += [
    path("accounts/oidc/login/cancelled/", social_views.login_cancelled, name="socialaccount_login_cancelled"),
    path("accounts/oidc/login/error/", login_not_required(social_views.login_error), name="socialaccount_login_error"),
    path("accounts/oidc/signup/", social_views.signup, name="socialaccount_signup"),
    path("accounts/", include("allauth.socialaccount.providers.openid_connect.urls")),
]

"""The tutorial's pages are not needed to measure its sockets; one page says it is up."""

from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("", lambda request: HttpResponse("tutorial chat baseline\n"))]

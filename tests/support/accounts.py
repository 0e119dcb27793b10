"""Sign up and log in over real HTTP, as a person's browser would, for socket clients."""

import http.cookiejar
import re
import urllib.parse
import urllib.request

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class HttpSession:
    """A cookie-keeping client for one user of a running server."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path):
        with self.opener.open(self.base_url + path, timeout=15) as response:
            return response.status, response.read().decode()

    def post_form(self, path, fields):
        """POST a page's form with its CSRF token; returns (status, final URL, body)."""
        _, page = self.get(path)
        token = CSRF_FIELD.search(page)
        data = {**fields, "csrfmiddlewaretoken": token[1] if token else ""}
        request = urllib.request.Request(
            self.base_url + path,
            data=urllib.parse.urlencode(data).encode(),
            headers={"Referer": self.base_url + path},
        )
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.url, error.read().decode()

    def sign_up(self, username, password="a-long-test-password-1"):
        status, _, body = self.post_form(
            "/accounts/signup/",
            {"username": username, "password1": password, "password2": password},
        )
        assert status == 200 and "sessionid" in self.cookies(), body[-2000:]
        return self

    def log_in(self, username, password="a-long-test-password-1"):
        status, _, body = self.post_form(
            "/accounts/login/", {"username": username, "password": password}
        )
        assert status == 200 and "sessionid" in self.cookies(), body[-2000:]
        return self

    def open_room(self, name):
        """Create or join a room through the lobby form; returns its slug."""
        status, url, body = self.post_form("/", {"name": name})
        assert status == 200 and "/chat/" in url, body[-2000:]
        return url.rstrip("/").rsplit("/", 1)[-1]

    def cookies(self):
        return {cookie.name: cookie.value for cookie in self.jar}

    def socket_headers(self):
        """What a browser on this origin sends with its WebSocket handshake."""
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies().items())
        return {"Cookie": cookie}

    @property
    def origin(self):
        return self.base_url

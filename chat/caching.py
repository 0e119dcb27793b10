"""Redis: the servers REDIS_URL names, the process's one cache client, and the channel layer.

REDIS_URL names one Redis server or several, separated by commas; each is a plain Redis
URL (`redis://`, `rediss://`, `unix://`) or a master that Sentinel watches
(`redis+sentinel://`, `rediss+sentinel://`). What each server carries:

- the channel layer: every server, as shards. channels_redis keeps a group's members on
  the server its name hashes to (`room-<pk>`, `person-<pk>`, ...) and a process's
  channel on the server the channel's name hashes to, so rooms and processes spread out;
- the cache (rate limits, login lockout, rendered fragments) and the presence records:
  the first server only. A count must be read where it was written, and Django's
  RedisCache would take the other servers for read replicas and read counts back empty;
  presence reads all rooms' records in one round trip, which one server keeps.

`shared_cache`: `django.core.cache.cache` is one client per async context: every
socket's consumer would open (and keep, since sockets send no request_finished) a Redis
connection of its own. One client with redis-py's thread-safe pool serves them all.

`RedisCache` is Django's, with one `redis.Redis` object per connection pool instead of
a new one for every call: building one sets up a few hundred response callbacks, which
cost a post about a tenth of its CPU (py-spy, bench/posting.py). redis-py clients are
safe to share between threads.
"""

import functools
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.retry
import redis.sentinel
from channels_redis.core import RedisChannelLayer as ChannelsRedisChannelLayer
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff

PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
# Credentials for the Sentinel daemons, when theirs differ from the master's (none).
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class RedisServer:
    """One server of REDIS_URL: a Redis URL, or the master that Sentinel names."""

    # Passwords stay out of repr(): url, master and sentinel_auth may hold them.
    url: str = field(repr=False)  # as written in REDIS_URL
    where: str  # for messages: no password
    sentinels: tuple = ()  # ((host, port), ...) for Sentinel
    master_name: str = ""
    master: dict = field(default_factory=dict, repr=False)  # db, username, password, ssl
    sentinel_auth: dict = field(default_factory=dict, repr=False)

    @property
    def is_sentinel(self):
        return bool(self.sentinels)

    def sentinel_kwargs(self, options, *, asynchronous=False):
        # The daemons answer one quick question: the socket_* options, not a blocking read's.
        kwargs = {key: value for key, value in options.items() if key.startswith("socket_")}
        if "socket_timeout" in kwargs and "socket_connect_timeout" in kwargs:
            kwargs["socket_timeout"] = kwargs["socket_connect_timeout"]
        # Asking the next daemon is the retry: redis-py's default (3 more tries, backing
        # off from 1 s) spends seconds on a daemon that is down before asking another.
        retry = (redis.asyncio.retry.Retry if asynchronous else redis.retry.Retry)(NoBackoff(), 0)
        return {
            **kwargs,
            "retry": retry,
            **self.sentinel_auth,
            **({"ssl": True} if self.master["ssl"] else {}),
        }

    def layer_host(self, **options):
        """This server as an entry of channels_redis's `hosts`."""
        if not self.is_sentinel:
            return {"address": self.url, **options}
        return {
            "sentinels": list(self.sentinels),
            "master_name": self.master_name,
            "sentinel_kwargs": self.sentinel_kwargs(options, asynchronous=True),
            **self.master,
            **options,
        }

    def pool(self, **options):
        """A redis-py connection pool (threads); through Sentinel, it follows failovers."""
        if not self.is_sentinel:
            return redis.ConnectionPool.from_url(self.url, **options)
        sentinel = redis.sentinel.Sentinel(
            self.sentinels, sentinel_kwargs=self.sentinel_kwargs(options)
        )
        return redis.sentinel.SentinelConnectionPool(
            self.master_name, sentinel, **self.master, **options
        )

    def client(self, **options):
        """A redis.Redis that owns its pool (closing it closes the pool), as from_url's."""
        return redis.Redis.from_pool(self.pool(**options))

    def async_client(self, **options):
        """A redis.asyncio client: it belongs to the event loop that first uses it."""
        if not self.is_sentinel:
            return redis.asyncio.Redis.from_url(self.url, **options)
        sentinel = redis.asyncio.sentinel.Sentinel(
            self.sentinels, sentinel_kwargs=self.sentinel_kwargs(options, asynchronous=True)
        )
        pool = redis.asyncio.sentinel.SentinelConnectionPool(
            self.master_name, sentinel, **self.master, **options
        )
        return redis.asyncio.Redis.from_pool(pool)


def _refuse(problem, item=None):
    where = f" {_redacted(item)!r}" if item is not None else ""
    raise ImproperlyConfigured(f"REDIS_URL{where}: {problem}")


def _redacted(item):
    """The item with its passwords (in the address, or an option) hidden."""
    scheme, found, rest = item.partition("://")
    if not found:
        return item
    address, slash, path = rest.partition("/")
    userinfo, at, hosts = address.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    redacted = f"{scheme}://{userinfo}{at}{hosts}{slash}{path}"
    return re.sub(r"([?&][^=&]*password=)[^&]*", r"\1***", redacted)


def _items(value):
    """REDIS_URL's servers as written. A comma separates servers, except inside a
    Sentinel URL's list of daemons: a piece without `://` continues that list."""
    items = []
    for piece in (piece.strip() for piece in value.split(",")):
        if not piece:
            continue
        if "://" in piece:
            items.append(piece)
        elif items and items[-1].split("://", 1)[0].lower() in SENTINEL_SCHEMES:
            items[-1] += "," + piece
        else:
            _refuse(
                "is not a URL; separate servers with commas, each a whole "
                "redis://host:port/db URL (e.g. redis://a:6379/0,redis://b:6379/0)",
                piece,
            )
    return items


def _plain(item):
    parts = urlsplit(item)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        _refuse("the port must be a number from 1 to 65535", item)
    if scheme == "unix":
        if not parts.path.strip("/"):
            _refuse("names no socket file (unix:///path/to/redis.sock)", item)
        where = parts.path
    else:
        if not parts.hostname:
            _refuse("names no host (redis://host:6379/0)", item)
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            _refuse("the database after the host must be a number (redis://host:6379/0)", item)
        where = f"{parts.hostname}:{port or 6379}/{parts.path.strip('/') or 0}"
    try:
        # Parses the query's options as redis-py will, and refuses unknown ones now
        # rather than at the first connection.
        pool = redis.ConnectionPool.from_url(item)
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError) as error:
        _refuse(f"redis-py cannot use it ({error})", item)
    return RedisServer(url=item, where=f"{scheme}://{where}")


def _sentinel_host(text, item):
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        _refuse("a Sentinel address names no host", item)
    if not port:
        return host, SENTINEL_PORT
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        _refuse(f"Sentinel port {port!r} must be a number from 1 to 65535", item)
    return host, int(port)


def _sentinel(item):
    """redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db][?options]"""
    scheme, _, rest = item.partition("://")
    rest, _, query = rest.partition("?")
    address, _, path = rest.partition("/")
    userinfo, _, hosts = address.rpartition("@")
    sentinels = tuple(_sentinel_host(host.strip(), item) for host in hosts.split(","))
    master_name, _, db = path.strip("/").partition("/")
    if not master_name:
        _refuse("names no master after the Sentinel addresses (…:26379/mymaster)", item)
    if db and not db.isdigit():
        _refuse("the database after the master's name must be a number (/mymaster/0)", item)
    username, _, password = userinfo.partition(":")
    master = {
        "db": int(db or 0),
        "username": unquote(username) or None,
        "password": unquote(password) or None,
        "ssl": scheme.lower() == "rediss+sentinel",
    }
    try:
        options = dict(parse_qsl(query, strict_parsing=True)) if query else {}
    except ValueError:
        _refuse("its options must be name=value pairs joined by &", item)
    unknown = sorted(set(options) - set(SENTINEL_OPTIONS))
    if unknown:
        _refuse(
            f"unknown option {unknown[0]!r}; a Sentinel URL takes {', '.join(SENTINEL_OPTIONS)}",
            item,
        )
    auth = {name.removeprefix("sentinel_"): value for name, value in options.items()}
    daemons = ",".join(f"{host}:{port}" for host, port in sentinels)
    return RedisServer(
        url=item,
        where=f"{scheme.lower()}://{daemons}/{master_name}/{master['db']}",
        sentinels=sentinels,
        master_name=unquote(master_name),
        master=master,
        sentinel_auth=auth,
    )


@functools.cache
def redis_servers(value):
    """REDIS_URL -> (RedisServer, ...), in its order; () when it is empty.

    Raises ImproperlyConfigured, naming REDIS_URL (and never a password), for anything
    that is not a server redis-py can use.
    """
    servers = []
    for item in _items(value or ""):
        scheme = item.split("://", 1)[0].lower()
        if scheme in PLAIN_SCHEMES:
            servers.append(_plain(item))
        elif scheme in SENTINEL_SCHEMES:
            servers.append(_sentinel(item))
        else:
            _refuse(
                "must start with redis://, rediss://, unix://, redis+sentinel:// or "
                "rediss+sentinel://",
                item,
            )
    seen = set()
    for server in servers:
        if server.where in seen:
            # Two shards on one server would be one shard that channels_redis counts twice.
            _refuse(f"names {server.where} twice")
        seen.add(server.where)
    return tuple(servers)


def first_server(value):
    """The server that keeps the cache and the presence records: REDIS_URL's first."""
    servers = redis_servers(value)
    return servers[0] if servers else None


@functools.cache
def shared_cache():
    return caches.create_connection("default")


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}  # pool index -> redis.Redis

    def _get_connection_pool_index(self, write):
        # One server, read where written: Django would read from the others as replicas.
        return 0

    def _get_connection_pool(self, write):
        pool = self._pools.get(0)
        if pool is None:
            pool = self._pools[0] = first_server(self._servers[0]).pool(**self._pool_options)
        return pool

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)
            client = self._clients.setdefault(index, self._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    """Django's RedisCache on the first server of a REDIS_URL-style LOCATION (which may be
    a Sentinel URL), reusing its redis-py clients."""

    def __init__(self, server, params):
        # Django splits a LOCATION string at commas, which a Sentinel URL has inside.
        super().__init__([server] if isinstance(server, str) else server, params)
        self._class = ReusingRedisCacheClient


class RedisChannelLayer(ChannelsRedisChannelLayer):
    """channels_redis's layer, with a message to a process's own channel sent to the
    server that process reads. Its send() picks the server by the channel's full name,
    its receive by the part up to the "!" (channels_redis#221), so with several servers
    about half of them land where nobody reads: pick by that part for both. Groups and
    channels without a "!" hash as before."""

    def consistent_hash(self, value):
        if isinstance(value, str) and "!" in value:
            value = self.non_local_name(value)
        return super().consistent_hash(value)

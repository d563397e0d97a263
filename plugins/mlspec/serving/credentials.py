"""Which bearer token, if any, may go to a model server URL: the one place every sender asks.

The model server's admin token (MLSPEC_SERVER_TOKEN, else the token file in its state folder) belongs
to one server: the configured one, MLSPEC_SERVER_URL (default http://127.0.0.1:8555). It is sent to a
URL only when that URL has the same origin (scheme, host and port) as the configured server. A URL
taken from a spec (`serving.url`), an Asset event or a page request never gets it because it names a
server: a token for another server comes from an Airflow connection whose host has that URL's origin
(`serving.connection`), or nothing is sent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mlspec.connections import bearer_token, get_connection
from mlspec.errors import ServingError
from mlspec.home import local_server_url, read_server_token

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, lower-cased, with the scheme's default port filled in;
    None when it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(str(url).strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:  # a port that is not a number, a malformed IPv6 literal
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def same_origin(a: str, b: str) -> bool:
    first = origin(a)
    return first is not None and first == origin(b)


def configured_server_url() -> str:
    return local_server_url()


def is_configured_server(url: str) -> bool:
    """Whether `url` points at the configured model server (MLSPEC_SERVER_URL), the admin token's owner."""
    return same_origin(url, configured_server_url())


def connection_url(connection) -> str:
    """The URL an Airflow connection points at: its host when that is a URL, else schema://host:port."""
    host = str(connection.host or "").strip().rstrip("/")
    if "://" in host:
        # A URL as host (as for the other connections): the connection's port fills in a missing one.
        parts = urlsplit(host)
        if connection.port and parts.port is None and parts.hostname:
            return parts._replace(netloc=f"{parts.netloc}:{connection.port}").geturl()
        return host
    scheme = str(connection.schema or "http").strip().lower() or "http"
    if scheme not in _DEFAULT_PORTS:
        scheme = "http"
    port = f":{connection.port}" if connection.port else ""
    return f"{scheme}://{host}{port}"


def token_for(url: str, *, connection_id: str | None = None, field: str = "serving.url") -> str | None:
    """The bearer token that may be sent to `url`, or None (send no Authorization header).

    With `connection_id`: that Airflow connection's token, only when its host has `url`'s origin
    (ServingError otherwise: a connection's token goes only to its own server). Without one: the
    model server's admin token when `url` is the configured server, else None.
    """
    if connection_id:
        connection = get_connection(
            connection_id, used_for=f"the bearer token of the model server at {url}", error_type=ServingError
        )
        where = connection_url(connection)
        if not same_origin(where, url):
            raise ServingError(
                f"Airflow connection {connection_id!r} points at {where}, not at {field} {url}: its token is "
                f"sent only to its own server; set the connection's host to {url} (scheme, host and port)"
            )
        return bearer_token(connection)
    if is_configured_server(url):
        return read_server_token()
    return None


def foreign_server_hint(url: str, field: str = "serving.url") -> str:
    """The next step when `url` is not the configured server and no connection holds its token."""
    return (
        f"{field} {url} is not the configured model server ({configured_server_url()}, "
        "MLSPEC_SERVER_URL), so mlspec does not send the server's admin token there; put the token "
        "for that URL in an Airflow connection (host = the URL, password = the token) and name it in "
        "serving.connection, or set MLSPEC_SERVER_URL to that URL if it is your model server"
    )

"""A 401 or 403 from InfluxDB is told to the operator by its HTTP status, not by the message text
(CI on ae62434: a 401 from an InfluxDB on port 23403 was logged as a missing privilege, because
the URL in the message held "403"; test_rev41's wait for "refused the credentials" then failed)."""
import io
import urllib.error
from unittest import mock

import pytest

from wattwatch import influx
from wattwatch.sinks.influx import denied_why


def _answer(code: int, url: str):
    err = urllib.error.HTTPError(url, code, "x", {}, io.BytesIO(b'{"error":"authorization failed"}'))
    with mock.patch("urllib.request.urlopen", side_effect=err), pytest.raises(influx.Denied) as got:
        influx.Client(url.rsplit("/", 1)[0]).query("SHOW DATABASES")
    return got.value


@pytest.mark.parametrize("port", [8086, 23403, 4030])
def test_a_401_is_refused_credentials_and_a_403_a_privilege_whatever_the_port(port):
    url = f"http://127.0.0.1:{port}/query"
    e401, e403 = _answer(401, url), _answer(403, url)
    assert (e401.status, e403.status) == (401, 403)
    assert denied_why(e401).startswith("refused the credentials")
    assert denied_why(e403).startswith("lacks a privilege")

"""A WSGI app for gunicorn (tests/tests/python_package.rs): counts requests
and times them. Run with --preload, so the handles are made in gunicorn's
master and inherited by every forked worker, which must record into its
own stats."""
import stats_pipe

requests = stats_pipe.counter("requests")
latency = stats_pipe.histogram("latency[app=wsgi]")


def app(environ, start_response):
    with latency.time():
        requests.incr()
        body = b"ok\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

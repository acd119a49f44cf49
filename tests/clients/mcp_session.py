"""One MCP session with the official Python SDK (PyPI `mcp`), driven by the sidecar's tests.

    python mcp_session.py PLAN.json

PLAN: {"server": {"url": "http://127.0.0.1:PORT/mcp"} | {"command": "...", "args": [...], "env": {...}},
       "mode": "auto" | "legacy", "calls": [{"tool": NAME, "arguments": {...}}, ...]}

Prints one JSON document: the negotiated protocol version, the tools as listed, and for each call
whether it was a tool error, its text, its structured content and the progress messages received.
A protocol-level failure of a call is recorded as {"exception": ...}, not raised, so the test sees it.
"""
import asyncio
import json
import sys

import mcp
from mcp import StdioServerParameters


async def run(plan):
    server = plan["server"]
    if "url" in server:
        target = server["url"]
    else:
        target = StdioServerParameters(command=server["command"], args=server.get("args", []), env=server.get("env"))
    out = {"calls": []}
    async with mcp.Client(target, mode=plan.get("mode", "auto"), read_timeout_seconds=plan.get("timeout", 300)) as client:
        session = client.session
        out["protocol_version"] = getattr(session, "protocol_version", None) or str(
            getattr(getattr(session, "server_info", None), "protocol_version", "")
        )
        listed = await client.list_tools()
        out["tools"] = [json.loads(t.model_dump_json(by_alias=True, exclude_none=True)) for t in listed.tools]
        for call in plan.get("calls", []):
            progress = []

            async def on_progress(done, total, message, progress=progress):
                progress.append(message)

            record = {"tool": call["tool"], "progress": progress}
            try:
                result = await client.call_tool(call["tool"], call.get("arguments"), progress_callback=on_progress)
                record["is_error"] = bool(result.is_error)
                record["text"] = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
                record["structured"] = result.structured_content
            except Exception as e:  # noqa: BLE001 - the test asserts on what went wrong
                record["exception"] = f"{type(e).__name__}: {e}"
            out["calls"].append(record)
    return out


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    print(json.dumps(asyncio.run(run(plan))))


if __name__ == "__main__":
    main()

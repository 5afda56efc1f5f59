"""Call one of the app's callbacks over HTTP exactly as the browser does (``POST /_dash-update-component``).

Used by the tests (a callback answers, and answers within one page of rows) and by ``bench/callbacks.py`` (server
time and bytes of each main callback). Only callbacks with plain string ids are supported.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CallbackAnswer:
    """What a callback sent back: status, the outputs by component id, the size of the body and the time taken."""

    status: int
    outputs: dict[str, dict[str, Any]]
    n_bytes: int
    seconds: float


def find_callback(app, output: str, inputs=()) -> tuple[str, dict]:
    """The callback-map key and spec of the one callback with output ``output`` ('id.property') and, when given,
    every input of ``inputs`` ('id.property')."""
    found = []
    for key, spec in app.callback_map.items():
        outputs = [f"{o['id']}.{o['property']}" for o in _outputs_of(key)]
        spec_inputs = {f"{i['id']}.{i['property']}" for i in spec["inputs"]}
        if output in outputs and set(inputs) <= spec_inputs:
            found.append((key, spec))
    if len(found) != 1:
        raise ValueError(f"{len(found)} callbacks have output {output!r} and inputs {list(inputs)}; name exactly one")
    return found[0]


def _outputs_of(key: str) -> list[dict[str, str]]:
    parts = key.strip(".").split("...") if key.startswith("..") else [key]
    outputs = []
    for part in parts:
        component, _, prop = part.rpartition(".")
        outputs.append({"id": component, "property": prop.split("@")[0]})
    return outputs


def call_callback(client, app, output: str, inputs: dict[str, Any], state: dict[str, Any] | None = None, changed=None):
    """POST the callback that has ``output`` and ``inputs`` with ``inputs`` / ``state`` given as
    {'id.property': value}; ``changed`` names the inputs that triggered it (default: every input given).
    Returns a :class:`CallbackAnswer`."""
    key, _ = find_callback(app, output, inputs)
    return call_callback_key(client, app, key, inputs, state, changed)


def server_callback_keys(app) -> list[str]:
    """The callback-map keys of the app's server-side callbacks with plain string ids (no clientside function, no
    pattern-matching id): every callback a bad address could make fail on the server."""
    return [key for key, spec in app.callback_map.items() if "callback" in spec and "{" not in key]


def call_callback_key(client, app, key: str, inputs: dict[str, Any], state: dict[str, Any] | None = None, changed=None):
    """POST the callback with callback-map key ``key``, as :func:`call_callback` does."""
    state = state or {}
    spec = app.callback_map[key]

    def values(items, given):
        return [
            {"id": item["id"], "property": item["property"], "value": given.get(f"{item['id']}.{item['property']}")}
            for item in items
        ]

    outputs = _outputs_of(key)
    payload = {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],
        "inputs": values(spec["inputs"], inputs),
        "state": values(spec.get("state", []), state),
        "changedPropIds": list(changed if changed is not None else inputs),
    }
    started = time.perf_counter()
    response = client.post("/_dash-update-component", json=payload)
    seconds = time.perf_counter() - started
    body = response.get_data()
    decoded = json.loads(body) if response.status_code == 200 and body else {}
    return CallbackAnswer(response.status_code, decoded.get("response", {}), len(body), seconds)

"""What Temporal stores is encrypted (safeguarding/payload_codec.py): the codec itself, a real case's history
seen without the keys, the search attributes, and the codec server the Temporal UI can use."""

from __future__ import annotations

import base64
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, select
from temporalio.api.common.v1 import Payload
from temporalio.worker import Worker

from safeguarding.payload_codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    load_keys,
    parse_keys,
)
from safeguarding.settings import Settings

RV = "riverford-and-vale"


def key(byte: int) -> str:
    return base64.b64encode(bytes([byte]) * 32).decode()


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


# --- (a) the codec ---------------------------------------------------------------------------------------------


async def test_round_trip_hides_the_data_and_names_the_key():
    codec = EncryptionCodec(parse_keys(f"k1:{key(1)}"))
    original = [payload("Child Q, aged 4"), payload("second")]
    sealed = await codec.encode(original)
    assert all(p.metadata["encoding"] == ENCODING and p.metadata[KEY_ID] == b"k1" for p in sealed)
    assert all(b"Child Q" not in p.SerializeToString() and b"json/plain" not in p.data for p in sealed)
    assert sealed[0].data != (await codec.encode(original[:1]))[0].data  # a fresh nonce every time
    assert await codec.decode(sealed) == original
    plain = payload("written before encryption")
    assert await codec.decode([plain]) == [plain]  # older, unencrypted payloads pass through


async def test_rotation_old_key_still_decrypts_new_key_encrypts():
    old = EncryptionCodec(parse_keys(f"k1:{key(1)}"))
    rotated = EncryptionCodec(parse_keys(f"k2:{key(2)}, k1:{key(1)}"))
    sealed_before = await old.encode([payload("before rotation")])
    assert await rotated.decode(sealed_before) == [payload("before rotation")]
    sealed_after = await rotated.encode([payload("after rotation")])
    assert sealed_after[0].metadata[KEY_ID] == b"k2"
    with pytest.raises(PayloadDecryptionError, match=r"key id ‘k2’.*SGFLOW_PAYLOAD_KEYS"):
        await old.decode(sealed_after)  # a process without the new key says which key it lacks


async def test_tampered_ciphertext_or_key_id_is_refused():
    codec = EncryptionCodec(parse_keys(f"k1:{key(1)},k2:{key(2)}"))
    sealed = (await codec.encode([payload("untouched")]))[0]
    flipped = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadDecryptionError, match="integrity check"):
        await codec.decode([flipped])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"k2"}, data=sealed.data)
    with pytest.raises(PayloadDecryptionError, match="integrity check"):
        await codec.decode([relabelled])


@pytest.mark.parametrize("value, words", [
    ("", "is empty"),
    ("k1", "has no ‘:’"),
    ("k 1:" + key(1), "key id"),
    ("k1:not-base64!", "not valid base64"),
    ("k1:" + base64.b64encode(b"short").decode(), "5 bytes; AES-256 needs 32"),
    (f"k1:{key(1)},k1:{key(2)}", "appears twice"),
])
def test_bad_key_settings_are_one_line_naming_the_variable(value, words, tmp_path):
    with pytest.raises(PayloadKeyError) as caught:
        load_keys(Settings(data_dir=tmp_path, payload_keys=value))
    message = str(caught.value)
    assert message.startswith("SGFLOW_PAYLOAD_KEYS") and words in message and "\n" not in message
    assert key(1) not in message and key(2) not in message  # never echo a key


def test_bad_key_setting_stops_the_command_with_one_line(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "SGFLOW_DATA_DIR": str(tmp_path), "SGFLOW_PAYLOAD_KEYS": "k1:abc",
           "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "sgflow", "db", "upgrade"], env=env, check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "sgflow", "rebuild"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "SGFLOW_PAYLOAD_KEYS: key ‘k1’" in result.stderr and "Traceback" not in result.stderr


def test_generated_keys_are_private_and_stable(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = load_keys(settings)
    path = tmp_path / "data" / "payload_keys"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert load_keys(settings) == first  # read back, not generated again
    assert len(first.keys[first.current]) == 32


def payloads_in(message):
    """Every Payload anywhere inside a protobuf message (history events nest them at many depths)."""
    if message.DESCRIPTOR.full_name == "temporal.api.common.v1.Payload":
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.name == "search_attributes":  # stored in clear: checked below
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif hasattr(value, "DESCRIPTOR"):
            items = [value]
        else:
            items = list(value)  # a repeated field
        for item in items:
            if hasattr(item, "DESCRIPTOR"):
                yield from payloads_in(item)


# --- (b) a real case's history, read without the keys; (c) its search attributes --------------------------------


async def test_a_cases_history_holds_no_personal_data_in_clear(time_env, seeded_engine, settings):
    from activities import build_activities
    from safeguarding.accounts import Principal
    from safeguarding.case_commands import act_on_task, actor_of
    from safeguarding.case_records import TaskCommand
    from safeguarding.clock import london_today
    from safeguarding.intake import IncidentIn, open_incident
    from safeguarding.tables import User
    from safeguarding.temporal_connection import connect
    from workflows.registry import WORKFLOWS

    keys = parse_keys(f"k1:{key(7)}")
    # the client every process of ours gets (worker, web app, rebuild, CLI): through connect, with the settings
    sealed = await connect(settings.model_copy(update={
        "temporal_address": time_env.client.service_client.config.target_host, "payload_keys": f"k1:{key(7)}"}))
    with Session(seeded_engine) as session:
        users = {u.user_ref: u for u in session.exec(select(User).where(User.partnership_id == RV))}
    lead, notifier = Principal.of(users["u-rv-business-manager"]), Principal.of(users["u-rv-la-head-qa"])
    secrets = {
        "pseudonym": "Child Zephyrine",
        "local ref": "LA-REF-88123",
        "summary": "Quillon was admitted to hospital with bruising",
        "meeting": "the grandmother Marigold attended",
        "staff name": users["u-rv-la-head-qa"].display_name,
    }
    reference = f"RV-{uuid.uuid4().hex[:6]}"
    today = london_today()
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(sealed, task_queue=settings.task_queue, workflows=WORKFLOWS,
                          activities=build_activities(seeded_engine, settings), activity_executor=pool):
            case_id, status = await open_incident(seeded_engine, sealed, settings.task_queue, lead, RV, IncidentIn(
                case_ref=reference, aware_date=today, category="serious_harm_abuse_neglect",
                children=[{"pseudonym": secrets["pseudonym"], "local_ref": secrets["local ref"]}],
                summary=secrets["summary"], agencies=["vale-icb"]))
            assert status == "open"
            await act_on_task(sealed, case_id, "complete", TaskCommand(
                task_key="notification", actor=actor_of(notifier),
                data={"sent_on": today.isoformat(), "local_partners_notified": True}))
            await act_on_task(sealed, case_id, "complete", TaskCommand(
                task_key="meeting", actor=actor_of(Principal.of(users["u-rv-review-officer"])),
                data={"held_on": today.isoformat(), "summary": secrets["meeting"]}))
            history = await time_env.client.get_workflow_handle(case_id).fetch_history()  # no keys
            described = await time_env.client.get_workflow_handle(case_id).describe()

    raw = b"".join(event.SerializeToString() for event in history.events)
    sealed_payloads = [p for event in history.events for p in payloads_in(event)]
    assert sealed_payloads and all(p.metadata["encoding"] == ENCODING for p in sealed_payloads)
    opened = b"".join(p.SerializeToString() for p in EncryptionCodec(keys).decrypt(sealed_payloads))
    for what, text in secrets.items():
        assert text.encode() in opened, what  # with the keys they are there: the test looks in the right place
        assert text.encode() not in raw, what  # without them: not in clear
        assert base64.b64encode(text.encode())[:16] not in raw, what  # nor merely base64-encoded

    # (c) search attributes are stored in clear: they hold ids, the process and the case reference only
    fields = described.raw_description.workflow_execution_info.search_attributes.indexed_fields
    values = {name: p.data.decode() for name, p in fields.items()}
    assert {name for name in values if name.startswith("Sg")} == {"SgPartnership", "SgProcess", "SgCaseRef"}
    assert (values["SgPartnership"], values["SgProcess"], values["SgCaseRef"]) == (
        f'"{RV}"', '"incident"', f'"{reference}"')
    assert not any(text in "".join(values.values()) for text in secrets.values())


# --- the codec server the Temporal UI calls ---------------------------------------------------------------------

UI = "http://127.0.0.1:8080"


def as_json(payloads: list[Payload]) -> dict:
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payloads

    return json.loads(json_format.MessageToJson(Payloads(payloads=payloads)))


async def codec_call(path: str, body, headers: dict | None = None, host: str = "127.0.0.1:8888"):
    import httpx

    from sgflow.codec_server import create_codec_app

    app = create_codec_app(parse_keys(f"k2:{key(2)},k1:{key(1)}"), UI)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}") as client:
        if path == "OPTIONS":
            return await client.options("/decode", headers=headers)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post(path, content=content, headers={"content-type": "application/json",
                                                                  **(headers or {})})


async def test_codec_server_decodes_for_the_ui_and_nobody_else():
    old = EncryptionCodec(parse_keys(f"k1:{key(1)}"))  # sealed before a rotation: the server still opens it
    sealed = await old.encode([payload("Child Zephyrine")])
    answer = await codec_call("/decode", as_json(sealed), {"origin": UI, "x-namespace": "default"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == UI
    decoded = answer.json()["payloads"][0]
    assert base64.b64decode(decoded["data"]) == b'"Child Zephyrine"'
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"

    by_namespace = await codec_call("/default/decode", as_json(sealed), {"origin": "http://localhost:8080"})
    assert by_namespace.status_code == 200 and by_namespace.json() == answer.json()  # the CLI's form; either name

    encoded = (await codec_call("/encode", as_json([payload("x")]), {"origin": UI})).json()["payloads"][0]
    assert base64.b64decode(encoded["metadata"][KEY_ID]) == b"k2"  # the current key encrypts

    preflight = await codec_call("OPTIONS", None, {"origin": UI, "access-control-request-method": "POST",
                                                   "access-control-request-headers": "content-type,x-namespace"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == UI

    elsewhere = await codec_call("/decode", as_json(sealed), {"origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "Child" not in elsewhere.text
    assert "access-control-allow-origin" not in elsewhere.headers
    rebound = await codec_call("/decode", as_json(sealed), host="attacker.example:8888")  # DNS rebinding
    assert rebound.status_code == 400 and "Child" not in rebound.text

    unknown = await EncryptionCodec(parse_keys(f"k9:{key(9)}")).encode([payload("y")])
    refused = await codec_call("/decode", as_json(unknown), {"origin": UI})
    assert refused.status_code == 400 and "key id ‘k9’" in refused.json()["error"]
    garbage = await codec_call("/decode", b"not json", {"origin": UI})
    assert garbage.status_code == 400 and "not a Payloads JSON object" in garbage.json()["error"]


def test_codec_server_listens_on_loopback_only():
    from sgflow.codec_server import check_loopback

    assert check_loopback("127.0.0.1") == "127.0.0.1" and check_loopback("::1") == "::1"
    for host in ("0.0.0.0", "192.168.1.10", "example.org"):
        with pytest.raises(SystemExit, match="not a loopback address"):
            check_loopback(host)

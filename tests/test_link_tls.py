"""The link over TLS with client certificates and the per-unit ACL, on a real Mosquitto.

A CA and certificates are generated for the test; the broker requires a client certificate
and takes its CN as user name; the ACL is what `vigil-hub acl` prints (docs/mosquitto/).
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from firmware.link import Link
from firmware.link.config import LinkConfig
from firmware.link.signing import Signer
from tests.support.broker import MOSQUITTO, MosquittoBroker
from tests.support.tls import TestCA, mosquitto_tls_conf
from tests.test_link import make_event
from tests.test_link_commands import UnitDouble
from tools.hub.cli import acl_lines, hub_acl_lines
from tools.hub.client import HubClient

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")


@pytest.fixture
def tls_rig(tmp_path):
    ca = TestCA(tmp_path / "pki")
    server = ca.server()
    certs = {cn: ca.client(cn) for cn in ("hub", "s1.u1", "s1.u2")}
    acl = tmp_path / "acl"
    acl.write_text(
        "\n".join(
            hub_acl_lines()
            + [""]
            + acl_lines("vigil", "s1", "u1")
            + [""]
            + acl_lines("vigil", "s1", "u2")
        )
        + "\n"
    )
    with MosquittoBroker(extra_conf=mosquitto_tls_conf(ca, server, acl)) as broker:
        yield broker, ca, certs


def _raw_client(url_port: int, ca: TestCA, cert=None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"raw-{time.monotonic_ns()}")
    c.tls_set(
        ca_certs=str(ca.ca_file),
        certfile=str(cert.cert) if cert else None,
        keyfile=str(cert.key) if cert else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )
    return c


def test_events_and_commands_over_tls_with_client_certificates(tls_rig, tmp_path):
    broker, ca, certs = tls_rig
    url = f"mqtts://127.0.0.1:{broker.port}"
    signer = Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    control = UnitDouble()
    cfg = LinkConfig(
        mqtt="mqtt://127.0.0.1:1",  # overridden, as `vigil run --mqtt mqtts://...` does
        tls_ca="pki/ca.pem",  # relative to the config file's folder
        tls_cert=str(certs["s1.u1"].cert),
        tls_key=str(certs["s1.u1"].key),
        hub_public_key=str(tmp_path / "hub.pub.pem"),
        reconnect_min_s=0.2,
    )
    link = Link(
        cfg,
        site="s1",
        unit="u1",
        data_dir=tmp_path / "unit",
        birth=dict(firmware="t", models=[], config_hash="", capabilities=[]),
        control=control,
        url_override=url,
        config_dir=tmp_path,
    )
    hub_cert = certs["hub"]
    hub = HubClient(
        url,
        site="s1",
        ca=str(ca.ca_file),
        cert=str(hub_cert.cert),
        key=str(hub_cert.key),
        signer=signer,
    )
    with hub:
        link.start()
        try:
            for i in range(5):
                link.publish_event(make_event(i))
            hub.wait_for(lambda _r: len(hub.events("u1")) == 5)
            assert hub.statuses("u1")[-1] == "online"
            assert hub.command("u1", "disarm", {"zone": "till"})["ok"]
            assert control.armed["till"] is False
        finally:
            link.stop()
        hub.wait_for(lambda _r: hub.statuses("u1")[-1] == "stopped")
        assert not [r for r in hub.received if r.problems]


def test_acl_keeps_a_unit_inside_its_own_prefix(tls_rig):
    broker, ca, certs = tls_rig
    url = f"mqtts://127.0.0.1:{broker.port}"
    hub_cert = certs["hub"]
    with HubClient(
        url,
        site="s1",
        ca=str(ca.ca_file),
        cert=str(hub_cert.cert),
        key=str(hub_cert.key),
        validate=False,
    ) as hub:
        u1 = _raw_client(broker.port, ca, certs["s1.u1"])
        u1.connect("127.0.0.1", broker.port)
        u1.loop_start()
        try:
            # impersonating unit 2 (and sending commands) is silently dropped by the broker
            u1.publish("vigil/s1/u2/events", b"forged", qos=1).wait_for_publish(5)
            u1.publish("vigil/s1/u2/cmd/disarm", b"forged", qos=1).wait_for_publish(5)
            u1.publish("vigil/s1/u1/events", b"mine", qos=1).wait_for_publish(5)
            hub.wait_for(lambda _r: hub.of("events", "u1"))
            time.sleep(0.3)  # anything forged would have arrived by now (same connection order)
            assert [r.topic for r in hub.received if r.payload in (b"forged", b"mine")] == [
                "vigil/s1/u1/events"
            ]
        finally:
            u1.loop_stop()
            u1.disconnect()


def test_no_client_certificate_no_connection(tls_rig):
    broker, ca, _certs = tls_rig
    anon = _raw_client(broker.port, ca, cert=None)
    connected = []
    anon.on_connect = lambda *a: connected.append(a[3])
    refused = None
    try:
        anon.connect("127.0.0.1", broker.port)
        for _ in range(30):  # TLS 1.3 may only report the refusal on the first read
            rc = anon.loop(0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                refused = f"loop rc {rc}"
                break
            if connected:
                break
    except (ssl.SSLError, OSError) as e:
        refused = str(e)
    assert not [reason for reason in connected if not reason.is_failure], "connected without a cert"
    assert refused, "the broker neither refused nor accepted the connection"


def test_the_documented_broker_config_and_acl_work(tmp_path):
    """docs/mosquitto/: the example TLS config and ACL, with test certificates swapped in."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "mosquitto"
    ca = TestCA(tmp_path / "pki")
    server = ca.server()
    hub_cert = ca.client("hub")
    u1 = ca.client("demo-site.unit-01")
    swap = {
        "/etc/mosquitto/certs/ca.pem": str(ca.ca_file),
        "/etc/mosquitto/certs/broker.crt": str(server.cert),
        "/etc/mosquitto/certs/broker.key": str(server.key),
        "/etc/mosquitto/vigil.acl": str(docs / "acl.example"),
    }
    conf = []
    for line in (docs / "mosquitto-tls.conf").read_text().splitlines():
        if line.startswith(("listener", "persistence")):
            continue  # the test broker has its own loopback listener and temp folder
        for old, new in swap.items():
            line = line.replace(old, new)
        conf.append(line)
    with MosquittoBroker(extra_conf="\n".join(conf)) as broker:
        url = f"mqtts://127.0.0.1:{broker.port}"
        with HubClient(
            url,
            site="demo-site",
            ca=str(ca.ca_file),
            cert=str(hub_cert.cert),
            key=str(hub_cert.key),
            validate=False,
        ) as hub:
            c = _raw_client(broker.port, ca, u1)
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            try:
                c.publish("vigil/demo-site/unit-02/events", b"forged", qos=1).wait_for_publish(5)
                c.publish("vigil/demo-site/unit-01/events", b"mine", qos=1).wait_for_publish(5)
                hub.wait_for(lambda _r: hub.of("events", "unit-01"))
                time.sleep(0.3)
                assert not hub.of("events", "unit-02")
            finally:
                c.loop_stop()
                c.disconnect()

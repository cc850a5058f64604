"""The test broker really is a broker: a client publishes and another receives."""

import threading

import paho.mqtt.client as mqtt


def test_broker_relays_messages(broker):
    got = threading.Event()
    received = []

    def on_message(_c, _u, msg):
        received.append(msg.payload)
        got.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("t/#", qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        for _ in range(50):
            pub.publish("t/x", b"hello", qos=1).wait_for_publish(2)
            if got.wait(0.1):
                break
        assert received and received[0] == b"hello"
    finally:
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()

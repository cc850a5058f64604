"""Hub-side reference client for the Vigil MQTT contract (docs/mqtt.md): `vigil-hub`."""

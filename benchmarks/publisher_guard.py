"""The cost of MqttPublisher's connect guard on each publish (the paho reorder fix), against a whole QoS 1
publish, on the Mosquitto at 127.0.0.1:1883: ``python -m benchmarks.publisher_guard``."""
import time
import uuid

from aiotstream.config.inputs import MqttConnection
from aiotstream.io.mqtt import MqttPublisher

pub = MqttPublisher(MqttConnection(host="127.0.0.1", port=1883, qos=1), "bench-" + uuid.uuid4().hex[:6], persistent=False)
n = 200_000
t = time.perf_counter()
for _ in range(n):
    pub._wait_up()
guard = (time.perf_counter() - t) / n
payload = b'{"ts": 1, "value": 1.5}'
n2 = 20_000
t = time.perf_counter()
for i in range(n2):
    pub.publish("bench/x", payload)
pubc = (time.perf_counter() - t) / n2
pub.flush(60); pub.close()
print(f"wait_up guard {guard*1e9:.0f} ns per call; publish (QoS 1, incl. guard) {pubc*1e6:.1f} us; guard share {guard/pubc:.2%}")

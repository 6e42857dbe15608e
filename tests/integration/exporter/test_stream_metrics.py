"""The tag stream in the exporter: subscribers, tags sent and tags lost, over a real /metrics scrape."""

from __future__ import annotations

import gc
import threading
import time
import urllib.request

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from taggerhub.config import ExporterSettings
from taggerhub.lab.exporter import serving
from taggerhub.testing import ServerContext

QUEUE_BYTES = 256 * 1024  # ~0.1 s of the default lab's channels 1 and 2: the stuck subscriber overflows at once


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("taggerhub_stream_")}


def test_metrics_show_both_subscribers_the_slow_ones_loss_and_rising_sent_counts() -> None:
    with ServerContext(env={"TAGGERHUB_SIMULATOR_CLOCK": "realtime",
                            "TAGGERHUB_LIMITS_STREAM_QUEUE_BYTES": str(QUEUE_BYTES)}) as ctx:
        stop, ready = threading.Event(), threading.Event()
        bound: list[int] = []

        def serve() -> None:
            settings = ExporterSettings(listen="127.0.0.1:0", server=f"127.0.0.1:{ctx.port}", timeout_s=10)
            serving.run(settings, stop, lambda _host, port: (bound.append(port), ready.set()))

        released = threading.Event()  # the stuck subscriber's process() returns once set
        exporter = threading.Thread(target=serve, name="test-exporter")
        exporter.start()
        TT = ctx.proxy()
        try:
            assert ready.wait(30), "the exporter did not start"
            port = bound[0]
            assert scrape(port)["taggerhub_stream_subscribers"] == 0
            tagger = TT.createTimeTagger()
            counted = {"fast": 0}

            class Stuck(TT.CustomMeasurement):
                """Blocks in its first process() until released: its queue on the server fills and overflows."""

                def __init__(self) -> None:
                    super().__init__(tagger)
                    self.register_channel(1)
                    self.register_channel(2)
                    self.finalize_init()

                def process(self, incoming_tags, begin_time, end_time) -> None:
                    released.wait(60)

            class Fast(TT.CustomMeasurement):
                def __init__(self) -> None:
                    super().__init__(tagger)
                    self.register_channel(1)
                    self.register_channel(2)
                    self.finalize_init()

                def process(self, incoming_tags, begin_time, end_time) -> None:
                    counted["fast"] += int(np.count_nonzero(incoming_tags["type"] == 0))

            slow, fast = Stuck(), Fast()
            deadline = time.monotonic() + 30
            while TT.hub_stream_state(slow._pump.stream_id)["tags_lost"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            first = scrape(port)
            assert first["taggerhub_stream_subscribers"] == 2
            assert first["taggerhub_stream_tags_lost_total"] > 0
            time.sleep(1.0)  # the fast one keeps reading
            second = scrape(port)
            fast_state = TT.hub_stream_state(fast._pump.stream_id)
            slow_state = TT.hub_stream_state(slow._pump.stream_id)
            assert fast_state["tags_lost"] == 0, fast_state  # every loss counted is the slow one's
            assert second["taggerhub_stream_tags_sent_total"] > first["taggerhub_stream_tags_sent_total"]
            assert first["taggerhub_stream_tags_lost_total"] <= second["taggerhub_stream_tags_lost_total"] \
                <= slow_state["tags_lost"]
            assert counted["fast"] > 0

            released.set()
            slow.stop()
            del slow  # as with the vendor's library: a dropped measurement is freed (its stream closed)
            gc.collect()
            deadline = time.monotonic() + 30
            while (third := scrape(port))["taggerhub_stream_subscribers"] != 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert third["taggerhub_stream_subscribers"] == 1
            # A closed stream's counts stay in the totals: counters never go down while the server runs.
            assert third["taggerhub_stream_tags_lost_total"] >= second["taggerhub_stream_tags_lost_total"]
            assert third["taggerhub_stream_tags_sent_total"] >= second["taggerhub_stream_tags_sent_total"]
            fast.stop()
        finally:
            released.set()
            stop.set()
            exporter.join(30)
            TT._pyroRelease()

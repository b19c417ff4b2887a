"""The Kafka edge of the project: the one place in ``shared`` that talks to Kafka.

Everything else in ``shared`` is the pure core (no Kafka, HTTP or other I/O besides the
model directory). Here live the connection options every client uses (:mod:`.options`), the
aiokafka adapter of the core's topic-reader port (:mod:`.topic_reader`), and
:mod:`.aiokafka_compat`, the only module that touches aiokafka's internals.
"""

from shared.kafka.options import MskIamTokenProvider, broker_options, client_options, ssl_context

__all__ = ["MskIamTokenProvider", "broker_options", "client_options", "ssl_context"]

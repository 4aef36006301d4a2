"""Creates topics for the Python streamer's run, as its guide's cluster has them.

    bench/python/venv/bin/python bench/create_topics.py BROKERS PARTITIONS TOPIC...

The streamer itself creates nothing: left to the broker's auto-creation its
topics would get one partition, whereas cdr-to-redpanda creates its own with
CDR_TOPIC_PARTITIONS. Same partition count for both, so neither wins by it.
Uses the kafka-python admin client from the streamer's own virtualenv.
"""

import sys

from kafka.admin import KafkaAdminClient, NewTopic


def main():
    brokers, partitions, topics = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    admin = KafkaAdminClient(bootstrap_servers=brokers.split(","))
    try:
        admin.create_topics(
            [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in topics]
        )
    finally:
        admin.close()


if __name__ == "__main__":
    main()

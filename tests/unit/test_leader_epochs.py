"""LeaderEpochs answers OffsetForLeaderEpoch as Kafka's LeaderEpochFileCache.endOffsetFor does."""

from __future__ import annotations

from kafka_redis_gateway.gateway.storage.epochs import LeaderEpochs

# Epochs 2 from 10 and 5 from 30 known (0, 1, 3 and 4 trimmed or never recorded); the log ends at 40.
EPOCHS = LeaderEpochs(((2, 10), (5, 30)))


def test_parse() -> None:
    assert LeaderEpochs.parse(b"2:10,5:30") == EPOCHS
    assert LeaderEpochs.parse(None) == LeaderEpochs.parse("") == LeaderEpochs(((0, 0),))


def test_the_current_epoch_ends_at_the_log_end() -> None:
    assert EPOCHS.current == 5
    assert EPOCHS.end_offset_for(5, 40) == (5, 40)


def test_an_older_epoch_ends_where_the_next_known_one_begins() -> None:
    assert EPOCHS.end_offset_for(2, 40) == (2, 30)
    # Unknown epochs between known ones: the newest known below answers.
    assert EPOCHS.end_offset_for(3, 40) == (2, 30)
    assert EPOCHS.end_offset_for(4, 40) == (2, 30)


def test_an_epoch_older_than_any_known_ends_where_the_first_known_begins() -> None:
    assert EPOCHS.end_offset_for(0, 40) == (0, 10)
    assert EPOCHS.end_offset_for(1, 40) == (1, 10)


def test_undefined_and_future_epochs_are_undefined() -> None:
    assert EPOCHS.end_offset_for(-1, 40) == (-1, -1)
    assert EPOCHS.end_offset_for(6, 40) == (-1, -1)


def test_epoch_of_an_offset() -> None:
    assert [EPOCHS.epoch_of(offset) for offset in (0, 9, 10, 29, 30, 39)] == [2, 2, 2, 2, 5, 5]

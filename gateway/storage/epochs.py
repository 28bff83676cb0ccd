"""A partition's leader epochs (KIP-320), as stream_info.lua keeps them in its meta hash.

Each epoch begins at an offset; a new one begins whenever the Redis server
serving the partition changed (restart, promotion of a replica), since that
may have cut the log's tail. Kafka clients compare what they consumed with
where each epoch ended (OffsetForLeaderEpoch) to detect a cut log.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
UNDEFINED = -1


@dataclass(frozen=True, slots=True)
class LeaderEpochs:
    """(epoch, start offset) pairs, oldest first; the last is the current epoch."""

    entries: tuple[tuple[int, int], ...] = ((0, 0),)

    @classmethod
    def parse(cls, text: bytes | str | None) -> LeaderEpochs:
        """From the script's 'epoch:start,...'; epoch 0 from offset 0 when empty."""
        if isinstance(text, bytes):
            text = text.decode()
        entries = tuple((int(epoch), int(start)) for epoch, start in
                        (part.split(":") for part in (text or "").split(",") if part))
        return cls(entries or ((0, 0),))

    @property
    def current(self) -> int:
        return self.entries[-1][0]

    def epoch_of(self, offset: int) -> int:
        """The epoch the record at ``offset`` was written in (the oldest known one for older records)."""
        epoch = self.entries[0][0]
        for candidate, start in self.entries:
            if start > offset:
                break
            epoch = candidate
        return epoch

    def end_offset_for(self, requested: int, log_end: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch's answer: (epoch, end offset), as Kafka's LeaderEpochFileCache.endOffsetFor.

        The current epoch ends at the log end; an older one where the next
        known epoch begins, and the answer names the newest known epoch at or
        below the one asked for (the asked one when none is known, its
        entries trimmed or never recorded here).
        """
        if requested == UNDEFINED:
            return UNDEFINED, UNDEFINED
        if requested == self.current:
            return requested, log_end
        higher = next(((epoch, start) for epoch, start in self.entries if epoch > requested), None)
        if higher is None:
            return UNDEFINED, UNDEFINED
        floor = [epoch for epoch, _ in self.entries if epoch <= requested]
        return (floor[-1] if floor else requested), higher[1]

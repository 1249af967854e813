"""Dead letters as ``monitor dlq list | replay`` sees them, in either mode (pure: no transport).

A dead letter is the original bytes plus headers naming the stage, the error and the time
(``monitor.dlq`` in Kafka mode, the ``dead_letters`` table in embedded mode). The alert stage
adds receiver, id, partition and attempts, and its bytes are the notification's payload, so a
replay renders it afresh through the current templates. A replay sends at once, one attempt
per URL, through the shared core; when every URL accepts it the caller writes the returned
``sent`` record on the alert log (partition as the dead letter says), which is also what marks
the dead letter as replayed in ``list``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.alerting.alert_log import AlertRecord
from monitor.alerting.core import AlertCore, Attempt, Sent
from monitor.alerting.messages import decode_payload
from monitor.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: str
    id: str  # the notification id for the alert stage; the record's place for others
    receiver: str
    error: str
    at: str
    attempts: int
    partition: int
    payload: bytes


def dead_letters(records: Iterable[tuple[str, Mapping[str, str], bytes]]) -> list[DeadLetter]:
    """(place, headers, value) of every dead letter -> dead letters, oldest first."""
    found = []
    for place, headers, value in records:
        stage = headers.get("stage", "?")
        found.append(DeadLetter(
            stage, headers.get("id") or headers.get("source") or place,
            headers.get("receiver", "-"), headers.get("error", ""), headers.get("time", "-"),
            int(headers.get("attempts", "0") or 0), int(headers.get("partition", "0") or 0),
            value))
    return found


def find_alert_letter(letters: Iterable[DeadLetter], letter_id: str) -> DeadLetter:
    """The alert stage's dead letter ``letter_id`` (the newest when it died more than once);
    InvalidInputError when there is none."""
    chosen = [letter for letter in letters if letter.stage == "alert" and letter.id == letter_id]
    if not chosen:
        raise InvalidInputError(f"dlq: no dead letter with id {letter_id!r} from the alert "
                                "stage")
    return chosen[-1]


@dataclass(frozen=True, slots=True)
class _Replay:
    id: str
    receiver: str
    payload: bytes
    attempts: int = 0


def replay(core: AlertCore, letter: DeadLetter, now: float) -> tuple[Attempt, AlertRecord | None]:
    """Send ``letter`` once; the outcome and, when sent, the record to write."""
    matches = decode_payload(letter.payload)
    outcome = core.attempt(_Replay(letter.id, letter.receiver, letter.payload), now)
    if not isinstance(outcome, Sent):
        return outcome, None
    record = AlertRecord("sent", letter.id, letter.receiver,
                         tuple(sorted({m.claim_id for m in matches})),
                         tuple(m.match_id for m in matches), now, 1, f"replayed: {outcome.detail}")
    return outcome, record

"""Where the records of an agency seal's run are, for the findings and the lane tracker (`leadbus.audit.seals`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from leadbus.audit.verification import Mark


def link_mark(link: Sequence[Any]) -> Mark:
    """The place of a link's record (its first item: topic, partition, offset, archive file, index)."""
    topic, partition, offset, file, index = link[0]
    return Mark(topic, partition, offset, file, index)


class LinkMarks(Sequence[Mark]):
    """The marks of a run's records for the lane tracker, each made when asked: an unbroken run asks for its first and
    last alone (`LaneTracker.observe_run`), where a `Mark` per record cost a constructor's call each."""

    __slots__ = ("_links",)

    def __init__(self, links: Sequence[Sequence[Any]]) -> None:
        self._links = links

    def __len__(self) -> int:
        return len(self._links)

    @overload
    def __getitem__(self, i: int) -> Mark: ...

    @overload
    def __getitem__(self, i: slice) -> list[Mark]: ...

    def __getitem__(self, i: int | slice) -> Mark | list[Mark]:
        if isinstance(i, slice):
            return [link_mark(link) for link in self._links[i]]
        return link_mark(self._links[i])

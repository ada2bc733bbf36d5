"""The library of people: named and unnamed people shared by every job of the store.

Its own concern (``jobs`` links a job's people at its end, ``api`` and ``cli`` name, merge
and forget them). Imports nothing heavy: numpy for the descriptor search; OpenCV and the
models only inside ``photos.ModelPhotoFaces`` when a photo is read.
"""

from vidwatch.library.people import (
    EnrolFace,
    InvalidName,
    JobPerson,
    LibraryChange,
    LibraryConflict,
    PeopleLibrary,
    Person,
    PersonNotFound,
)

__all__ = [
    "EnrolFace",
    "InvalidName",
    "JobPerson",
    "LibraryChange",
    "LibraryConflict",
    "PeopleLibrary",
    "Person",
    "PersonNotFound",
]

"""``vidwatch people``: the people library from the command line (add, list, show,
rename, merge, forget, prune), on the configured store,
without a running daemon (the same ``PeopleLibrary`` the daemon and the API use).

``add NAME PHOTO...`` loads the face models (MTCNN, dlib) for the photos; the other
commands load none. Exit codes: 0 done, 1 a bad photo, name or unknown id (nothing
changed), 2 configuration, 3 the store failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vidwatch.config import Settings


def add_people_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "people",
        help="the library of people: add, list, show, rename, merge, forget",
        description="Name the people the jobs found, across every video of the store.",
    )
    commands = parser.add_subparsers(dest="people_command", metavar="COMMAND")
    commands.required = True
    add = commands.add_parser("add", help="enrol a person from photos (one face each)")
    add.add_argument("name")
    add.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    listing = commands.add_parser("list", help="every person, newest first")
    listing.add_argument("--limit", type=int, default=1000)
    show = commands.add_parser("show", help="a person and their appearances")
    show.add_argument("id")
    rename = commands.add_parser("rename", help="name or rename a person ('' removes the name)")
    rename.add_argument("id")
    rename.add_argument("name")
    merge = commands.add_parser("merge", help="merge OTHER into ID (OTHER is gone after)")
    merge.add_argument("id")
    merge.add_argument("other")
    forget = commands.add_parser(
        "forget", help="delete a person: descriptors, face crops, links in every job"
    )
    forget.add_argument("id")
    prune = commands.add_parser(
        "prune", help="drop appearances in jobs that are gone; forget strangers seen only there"
    )
    for sub in (add, listing, show, rename, merge, forget, prune):
        sub.add_argument("--json", action="store_true", help="print JSON")
    return parser


def run_people(args: argparse.Namespace, settings: Settings) -> int:  # noqa: C901 - one branch per subcommand, each a few lines
    from vidwatch.library import InvalidName, PeopleLibrary, PersonNotFound
    from vidwatch.library import keys as lkeys
    from vidwatch.library.photos import PhotoError, enrolment_faces, load_photo_faces
    from vidwatch.logs import configure_logging
    from vidwatch.r2 import StoreError, open_store

    configure_logging("auto", "warning")  # on stderr: stdout is the answer
    if not settings.face_library:
        print("vidwatch: the people library is off (FACE_LIBRARY=false)", file=sys.stderr)
        return 2
    try:
        store = open_store(settings)
    except StoreError as exc:
        print(f"vidwatch: the store failed: {exc}", file=sys.stderr)
        return 3
    library = PeopleLibrary(store, threshold=settings.face_match_threshold)
    command = args.people_command

    def person_id(value: str) -> str:
        normalised = lkeys.normalize_person_id(value)
        if normalised is None:
            raise PersonNotFound(value)
        return normalised

    try:
        if command == "add":
            photos = []
            for path in args.photos:
                try:
                    photos.append(path.read_bytes())
                except OSError as exc:
                    print(f"vidwatch: cannot read {path}: {exc.strerror}", file=sys.stderr)
                    return 1
            faces = enrolment_faces(photos, load_photo_faces(settings))
            person, count = library.enrol(args.name, faces)
            plural = "s" if count != 1 else ""
            text = f"{person.id}  {person.name}  ({count} face{plural} enrolled)"
            _out(args, {"id": person.id, "name": person.name, "faces": count}, text)
        elif command == "list":
            people, _ = library.list(limit=args.limit)
            rows = [{"id": p.id, "name": p.name, "jobs": len(p.job_ids)} for p in people]
            text = "\n".join(
                f"{r['id']}  {r['jobs']:>4} jobs  {r['name'] or '(unnamed)'}" for r in rows
            )
            _out(args, {"people": rows}, text or "(nobody yet)")
        elif command == "show":
            person = library.get(person_id(args.id))
            lines = [f"{person.id}  {person.name or '(unnamed)'}"]
            for a in person.appearances:
                lines.append(
                    f"  {a.get('job_id')}  person {a.get('person')}  "
                    f"{a.get('first_s')}-{a.get('last_s')} s  {a.get('file_name') or ''}"
                )
            _out(args, person.to_json(), "\n".join(lines))
        elif command == "rename":
            person = library.rename(person_id(args.id), args.name)
            _out(
                args,
                {"id": person.id, "name": person.name},
                f"{person.id}  {person.name or '(unnamed)'}",
            )
        elif command == "merge":
            person = library.merge(person_id(args.id), person_id(args.other))
            other = args.other.strip().upper()
            _out(
                args,
                {"id": person.id, "name": person.name, "merged": other},
                f"{other} merged into {person.id}",
            )
        elif command == "forget":
            person = library.forget(person_id(args.id))
            _out(
                args,
                {"id": person.id, "forgotten": True},
                f"{person.id} forgotten ({len(person.job_ids)} jobs unlinked)",
            )
        elif command == "prune":
            counts = library.prune()
            _out(args, counts, ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
    except PhotoError as exc:
        print(f"vidwatch: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except (PersonNotFound, InvalidName, ValueError) as exc:
        print(f"vidwatch: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"vidwatch: the store failed: {exc}", file=sys.stderr)
        return 3
    finally:
        store.close()
    return 0


def _out(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc, ensure_ascii=False) if args.json else text)

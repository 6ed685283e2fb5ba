"""Forms the small urlencoded reader of guard.py does not take: bulk checkboxes and file uploads.

A multipart upload (RFC 7578) is streamed: its file part goes straight to a file in a folder we
choose (under the data directory), counted as it arrives and refused (413) above a cap, never
held whole in memory. The CSRF token travels as a form field, as on every admin form.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import FormParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

from fedblog.admin import auth
from fedblog.web.admin.guard import Admin, current_admin

MAX_LIST_FORM_BYTES = 64 * 1024


def _check(admin: Admin | None, token: str) -> Admin:
    if admin is None:
        raise HTTPException(403, "You are not logged in (or your session has ended): log in again.")
    if not auth.check_csrf(admin.csrf, token):
        raise HTTPException(403, "The form's security token is missing or wrong: reload the page and submit it again.")
    return admin


async def list_form(request: Request) -> tuple[Admin, list[tuple[str, str]]]:
    """An urlencoded form whose fields may repeat (a checkbox per row), with its CSRF checked."""
    admin = await current_admin(request)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LIST_FORM_BYTES:
            raise HTTPException(413, "This form is too large: select fewer items.")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded (the admin pages do).")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=500)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The form could not be read: it is not UTF-8 urlencoded text.") from None
    token = next((v for k, v in pairs if k == "csrf"), "")
    return _check(admin, token), pairs


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the file part, on disk (the caller removes it)
    filename: str = ""
    size: int = 0


async def multipart_upload(request: Request, folder: Path, max_bytes: int) -> tuple[Admin, Upload]:
    """One file and a few small fields, the file streamed into ``folder``; CSRF checked after."""
    admin = await current_admin(request)
    if admin is None:  # refuse before reading (and writing) anything
        raise HTTPException(403, "You are not logged in (or your session has ended): log in again.")
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise HTTPException(415, "Send the file as multipart/form-data (the upload form does).")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise HTTPException(413, f"The file is too large: the limit is {max_bytes // 2**20} MB.")
    folder.mkdir(parents=True, exist_ok=True)
    up = Upload()
    files: list[Any] = []

    def on_field(f: Any) -> None:
        if len(up.fields) < 10 and f.field_name:
            up.fields[f.field_name.decode("utf-8", "replace")] = (f.value or b"").decode("utf-8", "replace")

    config = {"UPLOAD_DIR": str(folder), "MAX_MEMORY_FILE_SIZE": 0, "UPLOAD_DELETE_TMP": False,
              "MAX_FIELD_SIZE": 4096, "MAX_BODY_SIZE": max_bytes + 64 * 1024}
    parser = FormParser("multipart/form-data", on_field, files.append, boundary=params[b"boundary"], config=config)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + 64 * 1024:
                raise HTTPException(413, f"The file is too large: the limit is {max_bytes // 2**20} MB.")
            parser.write(chunk)
        parser.finalize()
    except HTTPException:
        _discard(files)
        raise
    except Exception:  # python-multipart raises its own errors on a malformed body
        _discard(files)
        raise HTTPException(400, "The upload could not be read: send it again from the form.") from None
    try:
        _check(admin, up.fields.get("csrf", ""))
    except HTTPException:
        _discard(files)
        raise
    if len(files) > 1:
        _discard(files)
        raise HTTPException(400, "Send one file at a time.")
    if files:
        f = files[0]
        f.close()
        up.path = Path(f.actual_file_name.decode() if isinstance(f.actual_file_name, bytes) else f.actual_file_name)
        up.filename = (f.file_name or b"").decode("utf-8", "replace")[:200]
        up.size = up.path.stat().st_size
    return admin, up


def _discard(files: list[Any]) -> None:
    for f in files:
        try:
            f.close()
            name = f.actual_file_name
            if name:
                os.unlink(name.decode() if isinstance(name, bytes) else name)
        except (OSError, AttributeError):
            pass

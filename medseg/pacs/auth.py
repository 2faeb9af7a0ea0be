"""Credentials for a DICOMweb server: HTTP basic or a bearer token.

They come from the environment (``MEDSEG_DICOMWEB_USER`` + ``MEDSEG_DICOMWEB_PASSWORD``, or
``MEDSEG_DICOMWEB_TOKEN``) or from a JSON file (``{"user": ..., "password": ...}`` or
``{"token": ...}``) that other users cannot read; never from a command-line argument, which
``ps`` and shell histories show to everyone.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError, MedsegError

USER_ENV = "MEDSEG_DICOMWEB_USER"
PASSWORD_ENV = "MEDSEG_DICOMWEB_PASSWORD"
TOKEN_ENV = "MEDSEG_DICOMWEB_TOKEN"


@dataclass(frozen=True)
class Credentials:
    """HTTP basic (``user`` + ``password``) or a bearer ``token``; exactly one of the two."""

    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        basic = self.user is not None or self.password is not None
        if basic == (self.token is not None):
            raise MedsegError("DICOMweb credentials: give a user and password, or a token")
        if basic and (not self.user or self.password is None):
            raise MedsegError("DICOMweb credentials: a user needs a password and vice versa")

    @property
    def kind(self) -> str:
        return "bearer" if self.token is not None else "basic"

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials({self.kind}{'' if self.token else ', user=' + repr(self.user)})"


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials from ``MEDSEG_DICOMWEB_*`` (None when none is set)."""
    env = os.environ if env is None else env
    user, password, token = env.get(USER_ENV), env.get(PASSWORD_ENV), env.get(TOKEN_ENV)
    if token and (user or password):
        raise MedsegError(f"set either {TOKEN_ENV} or {USER_ENV}/{PASSWORD_ENV}, not both")
    if token:
        return Credentials(token=token)
    if user or password:
        if not user or password is None:
            raise MedsegError(f"{USER_ENV} and {PASSWORD_ENV} must be set together")
        return Credentials(user=user, password=password)
    return None


def credentials_from_file(path: str | Path) -> Credentials:
    """Credentials from a JSON file that only its owner (and group) may read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(path, "auth file not found") from None
    if mode & stat.S_IROTH:
        raise InputError(path, "auth file is readable by every user; refused "
                               f"(chmod 600 {path})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"auth file is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or set(data) - {"user", "password", "token"}:
        raise InputError(path, 'auth file must hold {"user": ..., "password": ...} or '
                               '{"token": ...}')
    values = {k: v for k, v in data.items() if v is not None}
    if not all(isinstance(v, str) for v in values.values()):
        raise InputError(path, "auth file values must be strings")
    try:
        return Credentials(**values)
    except MedsegError as exc:
        raise InputError(path, str(exc)) from None


def resolve_credentials(auth_file: str | Path | None = None) -> Credentials | None:
    """The auth file when given, else the environment, else None (anonymous)."""
    return credentials_from_file(auth_file) if auth_file else credentials_from_env()

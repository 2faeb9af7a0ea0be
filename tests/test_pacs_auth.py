"""HTTP basic authentication against a real Orthanc (``AuthenticationEnabled`` +
``RegisteredUsers``): a 401 without or with wrong credentials is one line naming the server;
credentials from the environment or a private auth file work (bearer tokens: test_pacs.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pydicom
import pytest

from medseg.cli import main
from medseg.pacs.auth import PASSWORD_ENV, USER_ENV, Credentials
from medseg.pacs.client import Server, ServerError, open_client
from medseg.pacs.query import list_studies
from tests.pacs_server import orthanc_available, running_orthanc

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
USERS = {"alice": "wonderland"}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if not orthanc_available():
        pytest.skip("needs Debian's orthanc and orthanc-dicomweb")
    with running_orthanc(tmp_path_factory.mktemp("orthanc_auth"), users=USERS) as server:
        server.upload(sorted(SERIES.iterdir())[:2])
        yield server


def test_401_without_or_with_wrong_credentials_is_one_line(orthanc, capsys, monkeypatch):
    monkeypatch.delenv(USER_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    server = Server(orthanc.dicomweb)
    with pytest.raises(ServerError, match=r"401 Unauthorized \(no credentials were sent"):
        list_studies(open_client(server), server)
    server = Server(orthanc.dicomweb, credentials=Credentials(user="alice", password="nope"))
    with pytest.raises(ServerError, match="refused the basic credentials") as exc:
        list_studies(open_client(server), server)
    assert str(exc.value).startswith(f"{orthanc.dicomweb}: listing studies: HTTP 401")
    assert "nope" not in str(exc.value)
    monkeypatch.setenv(USER_ENV, "alice")
    monkeypatch.setenv(PASSWORD_ENV, "nope")
    assert main(["pacs", "studies", orthanc.dicomweb]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and orthanc.dicomweb in err and "401" in err


def test_basic_credentials_from_the_environment_or_a_private_file(orthanc, tmp_path,
                                                                   monkeypatch, capsys):
    study = str(pydicom.dcmread(next(SERIES.iterdir()), stop_before_pixels=True)
                .StudyInstanceUID)
    monkeypatch.setenv(USER_ENV, "alice")
    monkeypatch.setenv(PASSWORD_ENV, "wonderland")
    assert main(["pacs", "studies", orthanc.dicomweb, "--json"]) == 0
    assert [r["StudyInstanceUID"] for r in json.loads(capsys.readouterr().out)] == [study]
    monkeypatch.delenv(USER_ENV)
    monkeypatch.delenv(PASSWORD_ENV)
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"user": "alice", "password": "wonderland"}))
    os.chmod(auth, 0o600)
    assert main(["pacs", "series", orthanc.dicomweb, "--study", study,
                 "--auth-file", str(auth), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["NumberOfSeriesRelatedInstances"] == 2
